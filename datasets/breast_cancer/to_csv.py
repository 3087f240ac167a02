"""Writes sklearn/datasets/data/breast_cancer.csv from the scikit-learn wheel as a CSV with the
30 feature columns (scikit-learn's feature names, spaces replaced by `_`: mean_radius ...
worst_fractal_dimension) and `label` (malignant or benign). Rows keep the source order.
Standard library only. The source's first line is `n_rows,n_features,class names...`; each row
is the features followed by the class index (0 = malignant, 1 = benign).
Usage: python3 to_csv.py WHEEL OUT.csv
"""
import csv
import io
import sys
import zipfile

MEMBER = "sklearn/datasets/data/breast_cancer.csv"
STATS = ["radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity",
         "concave_points", "symmetry", "fractal_dimension"]
FEATURES = [f"mean_{s}" for s in STATS] + [f"{s}_error" for s in STATS] + [f"worst_{s}" for s in STATS]


def main(wheel, out):
    text = zipfile.ZipFile(wheel).read(MEMBER).decode("utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    n, d, classes = int(rows[0][0]), int(rows[0][1]), rows[0][2:]
    assert d == len(FEATURES) and len(rows) == n + 1 and classes == ["malignant", "benign"]
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(FEATURES + ["label"])
        for row in rows[1:]:
            assert len(row) == d + 1
            writer.writerow(row[:d] + [classes[int(row[d])]])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
