"""Writes skimage/data/lfw_subset.npy (float64, shape (200, 25, 25), values in 0..1) from the
scikit-image wheel as 25x25 8-bit grey PNGs: OUT/face/<index>.png for images 0..99 and
OUT/non_face/<index>.png for images 100..199 (scikit-image's documented order), <index> being
the position in the array. Grey level = round(value * 255), clamped to 0..255.
Standard library only (the .npy header is parsed by hand).
Usage: python3 to_png.py WHEEL OUT_DIR
"""
import ast
import os
import struct
import sys
import zipfile
import zlib


def png(pixels, width, height):
    raw = b"".join(b"\x00" + bytes(pixels[y * width:(y + 1) * width]) for y in range(height))

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def main(wheel, out):
    data = zipfile.ZipFile(wheel).read("skimage/data/lfw_subset.npy")
    assert data[:6] == b"\x93NUMPY" and data[6] == 1
    (header_len,) = struct.unpack("<H", data[8:10])
    header = ast.literal_eval(data[10:10 + header_len].decode("latin1"))
    assert header == {"descr": "<f8", "fortran_order": False, "shape": (200, 25, 25)}, header
    body = data[10 + header_len:]
    n, h, w = header["shape"]
    values = struct.unpack(f"<{n * h * w}d", body)
    for name in ("face", "non_face"):
        os.makedirs(os.path.join(out, name), exist_ok=True)
    for i in range(n):
        pixels = [min(255, max(0, round(v * 255))) for v in values[i * h * w:(i + 1) * h * w]]
        name = "face" if i < 100 else "non_face"
        with open(os.path.join(out, name, f"{i:03}.png"), "wb") as f:
            f.write(png(pixels, w, h))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
