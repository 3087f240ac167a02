"""Writes the Fashion-MNIST test split (IDX files t10k-images-idx3-ubyte.gz and
t10k-labels-idx1-ubyte.gz) as 28x28 8-bit grey PNGs: OUT/<class>/<index>.png, where <index>
(00000..09999) is the image's position in the test split and <class> the label's name.
Pixel bytes are written unchanged (0 = background). Standard library only.
Usage: python3 to_png.py SRC_DIR OUT_DIR
"""
import gzip
import os
import struct
import sys
import zlib

CLASSES = ["tshirt_top", "trouser", "pullover", "dress", "coat",
           "sandal", "shirt", "sneaker", "bag", "ankle_boot"]


def png(pixels, width, height):
    raw = b"".join(b"\x00" + pixels[y * width:(y + 1) * width] for y in range(height))

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def main(src, out):
    with gzip.open(os.path.join(src, "t10k-labels-idx1-ubyte.gz")) as f:
        magic, n = struct.unpack(">II", f.read(8))
        assert magic == 2049
        labels = f.read()
    with gzip.open(os.path.join(src, "t10k-images-idx3-ubyte.gz")) as f:
        magic, m, rows, cols = struct.unpack(">IIII", f.read(16))
        assert magic == 2051 and m == n == len(labels) and (rows, cols) == (28, 28)
        images = f.read()
    assert len(images) == n * rows * cols
    for name in CLASSES:
        os.makedirs(os.path.join(out, name), exist_ok=True)
    size = rows * cols
    for i in range(n):
        path = os.path.join(out, CLASSES[labels[i]], f"{i:05}.png")
        with open(path, "wb") as f:
            f.write(png(images[i * size:(i + 1) * size], cols, rows))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
