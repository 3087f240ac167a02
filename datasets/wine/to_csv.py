"""Writes sklearn/datasets/data/wine_data.csv from the scikit-learn wheel as a CSV with the 13
feature columns (scikit-learn's feature names, `/` replaced by `_`) and `label` (class_0,
class_1 or class_2, the three cultivars). Rows keep the source order. Standard library only.
The source's first line is `n_rows,n_features,class names...`; each row is the features
followed by the class index.
Usage: python3 to_csv.py WHEEL OUT.csv
"""
import csv
import io
import sys
import zipfile

MEMBER = "sklearn/datasets/data/wine_data.csv"
FEATURES = ["alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium", "total_phenols",
            "flavanoids", "nonflavanoid_phenols", "proanthocyanins", "color_intensity", "hue",
            "od280_od315_of_diluted_wines", "proline"]


def main(wheel, out):
    text = zipfile.ZipFile(wheel).read(MEMBER).decode("utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    n, d, classes = int(rows[0][0]), int(rows[0][1]), rows[0][2:]
    assert d == len(FEATURES) and len(rows) == n + 1
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(FEATURES + ["label"])
        for row in rows[1:]:
            assert len(row) == d + 1
            writer.writerow(row[:d] + [classes[int(row[d])]])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
