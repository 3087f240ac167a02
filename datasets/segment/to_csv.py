"""Writes river/datasets/segment.csv.zip (a zip holding one CSV) from the river wheel as a CSV
with its 18 numeric feature columns (names kept, `-` replaced by `_`; the source's misspelt
`vegde-sd` is kept as `vegde_sd`) and `label` (the `category` column: brickface, cement,
foliage, grass, path, sky or window). Rows keep the source order. Standard library only.
Usage: python3 to_csv.py WHEEL OUT.csv
"""
import csv
import io
import sys
import zipfile

MEMBER = "river/datasets/segment.csv.zip"


def main(wheel, out):
    inner = zipfile.ZipFile(io.BytesIO(zipfile.ZipFile(wheel).read(MEMBER)))
    (name,) = inner.namelist()
    rows = list(csv.reader(io.StringIO(inner.read(name).decode("utf-8"))))
    header = rows[0]
    assert header[-1] == "category" and len(header) == 19
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([h.replace("-", "_") for h in header[:-1]] + ["label"])
        for row in rows[1:]:
            assert len(row) == 19
            writer.writerow(row)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
