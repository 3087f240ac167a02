"""Writes ISLP/data/Default.csv from the ISLP wheel as a numeric CSV: student_yes (1 when
`student` is Yes, else 0), balance, income, and `label` (the `default` column: No or Yes).
Rows keep the source order. Standard library only.
Usage: python3 to_csv.py WHEEL OUT.csv
"""
import csv
import io
import sys
import zipfile

MEMBER = "ISLP/data/Default.csv"


def main(wheel, out):
    text = zipfile.ZipFile(wheel).read(MEMBER).decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 10000
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["student_yes", "balance", "income", "label"])
        for row in rows:
            assert row["student"] in ("No", "Yes") and row["default"] in ("No", "Yes")
            writer.writerow(["1" if row["student"] == "Yes" else "0", row["balance"], row["income"],
                             row["default"]])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
