"""Builds the digits fixtures from scikit-learn's bundled copy of the UCI digits test set.

Run from this folder (needs pyarrow and pillow; the sklearn wheel is only unpacked, not
installed):

    python3 -m pip download --no-deps --only-binary=:all: scikit-learn==1.5.2 -d /tmp/skl
    unzip -o /tmp/skl/scikit_learn-1.5.2-*.whl 'sklearn/datasets/data/digits.csv.gz' -d /tmp/skl
    python3 make.py /tmp/skl/sklearn/datasets/data/digits.csv.gz

Writes digits.csv, digits.parquet, digits_png.parquet and images/<digit>/<row>.png (the
first IMAGES_PER_CLASS rows of each digit). Pixels 0..16 become grey levels round(v*255/16).
"""
import csv
import gzip
import io
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

IMAGES_PER_CLASS = 20


def main(source):
    with gzip.open(source, "rt") as f:
        rows = [[int(v) for v in line] for line in csv.reader(f)]
    assert len(rows) == 1797 and all(len(r) == 65 for r in rows)
    names = [f"px{r}{c}" for r in range(8) for c in range(8)]
    labels = [r[64] for r in rows]

    with open("digits.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(names + ["label"])
        w.writerows(rows)

    table = pa.table({**{n: pa.array([r[i] for r in rows], pa.int8()) for i, n in enumerate(names)},
                      "label": pa.array(labels, pa.int64())})
    pq.write_table(table, "digits.parquet", compression="zstd")

    def png(r):
        img = Image.new("L", (8, 8))
        img.putdata([round(v * 255 / 16) for v in r[:64]])
        buf = io.BytesIO()
        img.save(buf, format="PNG", optimize=True)
        return buf.getvalue()

    pngs = [png(r) for r in rows]
    image = pa.StructArray.from_arrays(
        [pa.array(pngs, pa.binary()), pa.array([f"{i:04}.png" for i in range(len(rows))])],
        names=["bytes", "path"])
    pq.write_table(pa.table({"image": image, "label": pa.array(labels, pa.int64())}),
                   "digits_png.parquet", compression="zstd")

    seen = {}
    for i, (r, b) in enumerate(zip(rows, pngs)):
        d = r[64]
        if seen.get(d, 0) >= IMAGES_PER_CLASS:
            continue
        seen[d] = seen.get(d, 0) + 1
        os.makedirs(f"images/{d}", exist_ok=True)
        with open(f"images/{d}/{i:04}.png", "wb") as f:
            f.write(b)


if __name__ == "__main__":
    main(sys.argv[1])
