"""Writes the emoji-datasource-twitter images as an image folder labelled by emoji category:
OUT/<category>/<codepoints>.png, 64x64 8-bit RGB.

One image per entry of emoji.json whose `has_img_twitter` is true (skin-tone variants, which
live under `skin_variations`, are left out); the category `Component` (5 skin-tone swatches
and hair pieces) is left out. Category names become folder names: lower case, `&` dropped,
spaces to `_` (for example `Smileys & Emotion` -> `smileys_emotion`). The source PNGs are
RGBA or palette images with transparency; each is decoded here and composited onto white
(out = round(c * a / 255 + 255 * (1 - a / 255))). Standard library only.
Usage: python3 to_png.py PACKAGE_DIR OUT_DIR
"""
import json
import os
import struct
import sys
import zlib

SKIP = {"Component"}


def decode_png(data):
    """Returns (width, height, rows of RGBA bytes) for a non-interlaced 8-bit RGBA, RGB,
    grey, grey+alpha or 1/2/4/8-bit palette PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, palette, trns = 8, [], None, None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = [tuple(body[i:i + 3]) for i in range(0, len(body), 3)]
        elif kind == b"tRNS":
            trns = body
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    assert interlace == 0, "interlaced PNGs are not handled"
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[ctype]
    assert depth == 8 or ctype == 3, (depth, ctype)
    bits = channels * depth
    stride = (width * bits + 7) // 8
    bpp = max(1, bits // 8)
    raw = zlib.decompress(b"".join(idat))
    prev = bytearray(stride)
    rows = []
    for y in range(height):
        start = y * (stride + 1)
        ftype, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if ftype == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif ftype == 2:
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 255
        elif ftype == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif ftype == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
        else:
            assert ftype == 0, ftype
        prev = line
        rgba = bytearray()
        if ctype == 3:
            per_byte = 8 // depth
            mask = (1 << depth) - 1
            for x in range(width):
                byte = line[x // per_byte]
                index = (byte >> (8 - depth * (x % per_byte + 1))) & mask
                alpha = trns[index] if trns is not None and index < len(trns) else 255
                rgba += bytes(palette[index]) + bytes([alpha])
        elif ctype == 6:
            rgba = line
        elif ctype == 2:
            for x in range(width):
                rgba += line[3 * x:3 * x + 3] + b"\xff"
        elif ctype == 0:
            for x in range(width):
                rgba += bytes([line[x]] * 3) + b"\xff"
        elif ctype == 4:
            for x in range(width):
                rgba += bytes([line[2 * x]] * 3) + bytes([line[2 * x + 1]])
        rows.append(bytes(rgba))
    return width, height, rows


def on_white(rows):
    out = []
    for row in rows:
        rgb = bytearray()
        for i in range(0, len(row), 4):
            a = row[i + 3]
            for c in row[i:i + 3]:
                rgb.append((c * a + 255 * (255 - a) + 127) // 255)
        out.append(bytes(rgb))
    return out


def png_rgb(rows, width, height):
    raw = b"".join(b"\x00" + row for row in rows)

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def folder(category):
    return "_".join(category.lower().replace("&", " ").split())


def main(package, out):
    with open(os.path.join(package, "emoji.json"), encoding="utf-8") as f:
        entries = json.load(f)
    images = os.path.join(package, "img", "twitter", "64")
    for entry in sorted(entries, key=lambda e: e["sort_order"]):
        if not entry.get("has_img_twitter") or entry["category"] in SKIP:
            continue
        with open(os.path.join(images, entry["image"]), "rb") as f:
            width, height, rows = decode_png(f.read())
        target = os.path.join(out, folder(entry["category"]))
        os.makedirs(target, exist_ok=True)
        with open(os.path.join(target, entry["image"]), "wb") as f:
            f.write(png_rgb(on_white(rows), width, height))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
