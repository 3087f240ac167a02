"""Writes ISLP/data/Caravan.csv from the ISLP wheel as a CSV with its 85 numeric feature
columns (names kept: MOSTYPE ... ABYSTAND) and `label` (the `Purchase` column: No or Yes).
Rows keep the source order. Standard library only.
Usage: python3 to_csv.py WHEEL OUT.csv
"""
import csv
import io
import sys
import zipfile

MEMBER = "ISLP/data/Caravan.csv"


def main(wheel, out):
    text = zipfile.ZipFile(wheel).read(MEMBER).decode("utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    header = rows[0]
    assert header[-1] == "Purchase" and len(header) == 86
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header[:-1] + ["label"])
        for row in rows[1:]:
            assert len(row) == 86 and row[-1] in ("No", "Yes")
            float(row[0])
            writer.writerow(row)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
