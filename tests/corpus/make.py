"""Generates the hostile-input corpus (issue 17) into a folder, with a manifest of what each
case must get. Nothing here is committed as a blob: every case is made from a few seeded
lines. Run by tests/corpus/run.sh.

Usage: python make.py OUT_DIR      (writes OUT_DIR/cases/... and OUT_DIR/manifest.json)

Each manifest entry: name, input (relative to OUT_DIR), args (extra scan options), expect:
  "error"  exit 2 with a message naming the input (or `names`, if given);
  "gate"   exit 0 or 1 (a report: a finding or a verdict, not an error);
  "either" exit 0, 1 or 2 (the input is legal but odd; only no panic, hang or blow-up counts).
Optional: "exit" (that exact status), "unprivileged" (run as `nobody` when run.sh is root).
"""

import io
import json
import os
import random
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

OUT = Path(sys.argv[1])
CASES = OUT / "cases"
manifest = []
rng = random.Random(17)


def case(name, data, expect, args=(), names=None, suffix=None):
    """Writes `data` (bytes, or a callable that writes the path) as case `name`."""
    path = CASES / (name + (suffix or ""))
    path.parent.mkdir(parents=True, exist_ok=True)
    if callable(data):
        data(path)
    else:
        path.write_bytes(data)
    manifest.append({"name": name, "input": str(path.relative_to(OUT)), "args": list(args),
                     "expect": expect, **({"names": names} if names else {})})


# ---------------------------------------------------------------- CSV
def csv_table(rows=40, cols=3, label=True):
    head = ",".join([f"x{j}" for j in range(cols)] + (["label"] if label else []))
    lines = [head]
    for i in range(rows):
        vals = [f"{(i * 7 + j) % 11 / 3:.3f}" for j in range(cols)]
        lines.append(",".join(vals + ([str(i % 2)] if label else [])))
    return "\n".join(lines) + "\n"


good = csv_table()
case("csv/plain", good.encode(), "gate", suffix=".csv")
case("csv/bom", b"\xef\xbb\xbf" + good.encode(), "either", suffix=".csv")
case("csv/crlf", good.replace("\n", "\r\n").encode(), "gate", suffix=".csv")
case("csv/header-only", b"x0,x1,label\n", "error", suffix=".csv")
case("csv/empty", b"", "error", suffix=".csv")
case("csv/duplicate-header", good.replace("x1", "x0", 1).encode(), "error", suffix=".csv")
case("csv/unclosed-quote", (good + '1,"2,3\n4,5,1\n').encode(), "either", suffix=".csv")
case("csv/nul-bytes", good.replace("0.", "0\x00.", 3).encode(), "either", suffix=".csv")
case("csv/invalid-utf8", good.encode().replace(b"label", b"lab\xff\xfeel"), "either", suffix=".csv")
case("csv/invalid-utf8-cell", (good + "1,2,\xff\n").encode("latin-1"), "either", suffix=".csv")
case("csv/ragged-rows", (good + "1,2\n3,4,5,6,7\n").encode(), "either", suffix=".csv")
case("csv/only-labels", ("label\n" + "\n".join(str(i % 2) for i in range(30)) + "\n").encode(),
     "error", suffix=".csv")
case("csv/nan-and-inf", (good + "nan,inf,-inf,1\n").encode(), "gate", suffix=".csv")
case("csv/text-in-numbers", (good + "abc,1,2,0\n").encode(), "gate", suffix=".csv")
case("csv/one-class", csv_table().replace(",1\n", ",0\n").encode(), "either", suffix=".csv")
case("csv/empty-label", (good + "1,2,3,\n").encode(), "gate", suffix=".csv")
case("csv/huge-number", (good + "1e308,1e309,-1e400,1\n").encode(), "either", suffix=".csv")
# 20k columns in CI (2.5-3 s with the debug build); CORPUS_FULL=1 makes it the 100k of issue 17
# (7.6 s and 815 MiB with the release build, 10.3 s with the debug build: too close to the
# limit for a CI run).
WIDE = 100_000 if os.environ.get("CORPUS_FULL") else 20_000
wide = ",".join(f"c{j}" for j in range(WIDE)) + ",label\n"
wide += "\n".join(",".join(str((i + j) % 5) for j in range(WIDE)) + f",{i % 2}" for i in range(12))
case(f"csv/{WIDE // 1000}k-columns", (wide + "\n").encode(), "either", suffix=".csv")
long_line = "x0,label\n" + "1," + "9" * 20_000_000 + "\n2,1\n"
case("csv/20MB-cell", long_line.encode(), "either", suffix=".csv")


def gigabyte_line(path):
    """A 1 GiB single line (written in 64 MiB blocks): refused at 64 MiB, naming line 2."""
    with open(path, "wb") as f:
        f.write(b"x0,label\n1,")
        block = b"9" * (64 << 20)
        for _ in range(16):
            f.write(block)
        f.write(b"\n2,1\n")


case("csv/1GiB-line", gigabyte_line, "error", suffix=".csv")
case("csv/single-line-no-newline", b"x0,x1,label", "error", suffix=".csv")
case("csv/binary-garbage", bytes(rng.randrange(256) for _ in range(4096)), "either", suffix=".csv")
case("csv/tsv-named-csv", good.replace(",", "\t").encode(), "either", suffix=".csv")
case("csv/semicolons", good.replace(",", ";").encode(), "either", suffix=".csv")
case("csv/quoted-header", good.replace("x0,x1,x2,label", '"x0","x1","x2","label"').encode(), "gate",
     suffix=".csv")
case("csv/trailing-commas", good.replace("\n", ",\n").encode(), "either", suffix=".csv")
case("csv/quoted-newlines", ('x0,label\n"1\n2",0\n3,1\n' * 10).encode(), "either", suffix=".csv")
for k in range(1, 11):  # truncated at ten points
    cut = len(good) * k // 11
    case(f"csv/truncated-{k}", good.encode()[:cut], "either", suffix=".csv")

# ---------------------------------------------------------------- Parquet
def parquet_bytes(table, **kw):
    buf = io.BytesIO()
    pq.write_table(table, buf, **kw)
    return buf.getvalue()


n = 60
base = pa.table({"x0": np.arange(n, dtype=np.float64) / 7, "x1": np.sin(np.arange(n)),
                 "label": pa.array([str(i % 3) for i in range(n)])})
pbytes = parquet_bytes(base, row_group_size=10, data_page_size=64)
case("parquet/plain", pbytes, "gate", suffix=".parquet")
# Truncated at every 1/20 of the file (pages and row-group boundaries among them) and at the
# footer's edges.
for k in range(1, 20):
    case(f"parquet/truncated-{k:02d}", pbytes[: len(pbytes) * k // 20], "error", suffix=".parquet")
for k in (1, 4, 8, 9):
    case(f"parquet/truncated-end-{k}", pbytes[:-k], "error", suffix=".parquet")
footer_len = struct.unpack("<I", pbytes[-8:-4])[0]
footer_start = len(pbytes) - 8 - footer_len
for k in range(20):
    b = bytearray(pbytes)
    pos = footer_start + rng.randrange(footer_len)
    b[pos] ^= 1 << rng.randrange(8)
    case(f"parquet/footer-bitflip-{k:02d}", bytes(b), "either", suffix=".parquet")
for k in range(24):
    b = bytearray(pbytes)
    pos = 4 + rng.randrange(footer_start - 4)
    b[pos] ^= 0xFF
    case(f"parquet/page-byteflip-{k:02d}", bytes(b), "either", suffix=".parquet")
b = bytearray(pbytes)
b[-8:-4] = struct.pack("<I", 0xFFFFFFF0)
case("parquet/footer-claims-4GB", bytes(b), "error", suffix=".parquet")
case("parquet/magic-only", b"PAR1PAR1", "error", suffix=".parquet")
case("parquet/zero-bytes", b"", "error", suffix=".parquet")
case("parquet/zero-rows", parquet_bytes(base.slice(0, 0)), "error", suffix=".parquet")
nested = pa.table({"x0": np.arange(n, dtype=np.float64),
                   "nested": pa.array([{"a": i, "b": [i, i]} for i in range(n)]),
                   "list": pa.array([[i] * 3 for i in range(n)]),
                   "label": pa.array([str(i % 2) for i in range(n)])})
case("parquet/nested-types", parquet_bytes(nested), "either", suffix=".parquet")
dict_labels = pa.table({"x0": np.arange(n, dtype=np.float64),
                        "label": pa.array([str(i % 3) for i in range(n)]).dictionary_encode()})
case("parquet/dictionary-labels", parquet_bytes(dict_labels), "gate", suffix=".parquet")
null_labels = pa.table({"x0": np.arange(n, dtype=np.float64),
                        "label": pa.array([None if i % 5 == 0 else str(i % 2) for i in range(n)])})
case("parquet/null-labels", parquet_bytes(null_labels), "gate", suffix=".parquet")
all_null = pa.table({"x0": np.arange(n, dtype=np.float64), "label": pa.nulls(n, pa.string())})
case("parquet/all-null-labels", parquet_bytes(all_null), "either", suffix=".parquet")
many = 1_000_000
distinct = pa.table({"x0": np.arange(many, dtype=np.float32),
                     "label": pa.array([f"c{i}" for i in range(many)])})
case("parquet/1M-distinct-labels", parquet_bytes(distinct), "error", suffix=".parquet")
float_labels = pa.table({"x0": np.arange(n, dtype=np.float64), "label": np.arange(n) / 3.0})
case("parquet/float-labels", parquet_bytes(float_labels), "either", suffix=".parquet")
bool_feats = pa.table({"x0": pa.array([i % 2 == 0 for i in range(n)]),
                       "x1": pa.array([None] * n, pa.float64()),
                       "label": pa.array([str(i % 2) for i in range(n)])})
case("parquet/bool-and-null-features", parquet_bytes(bool_feats), "either", suffix=".parquet")
case("parquet/csv-named-parquet", good.encode(), "error", suffix=".parquet")

# ---------------------------------------------------------------- images (PNG/JPEG bytes)
def img_bytes(im, fmt, **kw):
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def folder(name, files, expect="either"):
    """An image folder: class a holds `files` (name -> bytes) plus 6 good images; class b 6."""
    def write(path):
        for cls in ("a", "b"):
            (path / cls).mkdir(parents=True, exist_ok=True)
            for i in range(6):
                im = Image.new("RGB", (16, 16), (40 * i % 255, 100 if cls == "a" else 200, 30))
                (path / cls / f"good{i}.png").write_bytes(img_bytes(im, "PNG"))
        for fname, data in files.items():
            (path / "a" / fname).write_bytes(data)
    case(name, write, expect)


rgb = Image.new("RGB", (16, 16), (10, 200, 30))
png = img_bytes(rgb, "PNG")
jpg = img_bytes(rgb, "JPEG")
folder("images/plain", {}, "gate")
for k in range(1, 9):
    folder(f"images/png-truncated-{k}", {"bad.png": png[: len(png) * k // 9]}, "gate")
    folder(f"images/jpeg-truncated-{k}", {"bad.jpg": jpg[: len(jpg) * k // 9]}, "gate")
for k in range(10):
    b = bytearray(png)
    b[8 + rng.randrange(len(png) - 8)] ^= 0xFF
    folder(f"images/png-bitflip-{k}", {"bad.png": bytes(b)}, "gate")
    b = bytearray(jpg)
    b[2 + rng.randrange(len(jpg) - 2)] ^= 0xFF
    folder(f"images/jpeg-bitflip-{k}", {"bad.jpg": bytes(b)}, "gate")


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header(w, h, depth=8, color=2, idat=b""):
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, 0))
            + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b""))


folder("images/dimension-bomb", {"bomb.png": png_header(100_000, 100_000, idat=zlib.compress(b"\0" * 1000))}, "gate")
folder("images/dimension-bomb-wide", {"bomb.png": png_header(4_000_000, 1, idat=zlib.compress(b"\0" * 100))}, "gate")
zbomb = zlib.compress(b"\0" * (50_000_000), 9)  # 50 MB of zeros, ~50 KB compressed
folder("images/zlib-bomb", {"bomb.png": png_header(5000, 3333, idat=zbomb)}, "either")
folder("images/16-bit", {"deep.png": img_bytes(Image.new("I;16", (16, 16), 40000), "PNG")}, "gate")
folder("images/palette", {"pal.png": img_bytes(rgb.convert("P"), "PNG")}, "gate")
folder("images/grey-alpha", {"la.png": img_bytes(rgb.convert("LA"), "PNG")}, "gate")
folder("images/cmyk-jpeg", {"cmyk.jpg": img_bytes(rgb.convert("CMYK"), "JPEG")}, "gate")
folder("images/progressive-jpeg", {"prog.jpg": img_bytes(rgb, "JPEG", progressive=True)}, "gate")
frames = [Image.new("RGB", (16, 16), (i * 40, 0, 0)) for i in range(3)]
apng = io.BytesIO()
frames[0].save(apng, "PNG", save_all=True, append_images=frames[1:])
folder("images/animated-png", {"anim.png": apng.getvalue()}, "gate")
folder("images/not-a-png", {"fake.png": b"this is text, not a picture\n" * 10}, "gate")
folder("images/zero-bytes", {"empty.png": b""}, "gate")
folder("images/jpeg-named-png", {"swap.png": jpg}, "either")
folder("images/other-size", {"big.png": img_bytes(Image.new("RGB", (64, 40)), "PNG")}, "either")
folder("images/1x1", {"dot.png": img_bytes(Image.new("RGB", (1, 1)), "PNG")}, "either")


def two_classes(path, per_class=5, classes=("a", "b")):
    """Class folders a and b under `path`, with `per_class` good PNGs in each of `classes`."""
    (path / "a").mkdir(parents=True)
    (path / "b").mkdir(parents=True)
    for cls in classes:
        for i in range(per_class):
            (path / cls / f"{i}.png").write_bytes(png)


def empty_class(path):
    two_classes(path, 6, classes=("a",))


case("images/empty-class", empty_class, "either")


def symlinks(kind):
    def write(path):
        two_classes(path)
        if kind == "loop":
            os.symlink("..", path / "a" / "loop")
        elif kind == "outside":
            os.symlink("/etc/hostname", path / "a" / "outside.png")
        elif kind == "dangling":
            os.symlink("no-such-file.png", path / "b" / "dangling.png")
    return write


for kind in ("loop", "outside", "dangling"):
    case(f"folders/symlink-{kind}", symlinks(kind), "either")


def nonutf8(path):
    two_classes(path)
    with open(os.fsencode(path / "a") + b"/\xff\xfe.png", "wb") as f:
        f.write(png)


case("folders/non-utf8-name", nonutf8, "either")


def big_class(path):
    (path / "a").mkdir(parents=True)
    (path / "b").mkdir(parents=True)
    tiny = img_bytes(Image.new("L", (8, 8), 3), "PNG")
    for i in range(100_000):
        (path / "a" / f"{i}.png").write_bytes(tiny)
    for i in range(20):
        (path / "b" / f"{i}.png").write_bytes(img_bytes(Image.new("L", (8, 8), 200), "PNG"))


# Unreadable inputs (mode 000). Root reads them anyway, so run.sh runs these cases as the
# user `nobody` when it runs as root ("unprivileged": true).
def unreadable(kind):
    def write(path):
        if kind == "csv":
            path.write_text(good)
            os.chmod(path, 0)
            return
        two_classes(path)
        if kind == "image":
            os.chmod(path / "a" / "0.png", 0)
        else:  # a class folder that cannot be listed
            os.chmod(path / "b", 0)
    return write


for kind, expect, suffix in (("csv", "error", ".csv"), ("image", "gate", ""),
                             ("class-folder", "error", "")):
    case(f"folders/unreadable-{kind}", unreadable(kind), expect, suffix=suffix,
         names="unreadable-class-folder/b" if kind == "class-folder" else None)
    manifest[-1]["unprivileged"] = True
    if kind == "image":  # the unreadable image is an `undecodable_image` error finding
        manifest[-1]["exit"] = 1

case("folders/100k-files-in-one-class", big_class, "either", args=["--validate-only"])
case("folders/empty-folder", lambda p: p.mkdir(parents=True), "error")

# ---------------------------------------------------------------- .npy for --embeddings
def npy(arr, fortran=False):
    buf = io.BytesIO()
    np.save(buf, np.asfortranarray(arr) if fortran else arr)
    return buf.getvalue()


table_for_npy = CASES / "npy" / "table.csv"
table_for_npy.parent.mkdir(parents=True, exist_ok=True)
table_for_npy.write_text(good)
rows = good.count("\n") - 1
emb = np.random.default_rng(0).normal(size=(rows, 4)).astype(np.float32)


def npy_case(name, data, expect):
    path = CASES / "npy" / f"{name}.npy"
    path.write_bytes(data)
    manifest.append({"name": f"npy/{name}", "input": str(table_for_npy.relative_to(OUT)),
                     "args": ["--embeddings", str(path.resolve())], "expect": expect,
                     "names": f"{name}.npy" if expect == "error" else None})


npy_case("good", npy(emb), "gate")
npy_case("fortran-order", npy(emb, fortran=True), "either")  # refused, named: candle reads C order only
npy_case("int64", npy(emb.astype(np.int64)), "error")
npy_case("complex", npy(emb.astype(np.complex64)), "error")
npy_case("3d", npy(emb.reshape(rows, 2, 2)), "error")
npy_case("wrong-rows", npy(emb[:-1]), "error")
npy_case("nan", npy(np.where(np.arange(rows * 4).reshape(rows, 4) == 5, np.nan, emb)), "error")
npy_case("short-data", npy(emb)[:-17], "error")
header = npy(emb)
npy_case("header-claims-terabytes", header.replace(f"({rows}, 4)".encode(), b"(9999999999999, 4)")
         if f"({rows}, 4)".encode() in header else header[:10], "error")
npy_case("not-npy", b"hello", "error")
npy_case("empty", b"", "error")
npy_case("object-dtype", b"\x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': False, 'shape': (40, 4), }" + b" " * 50 + b"\n", "error")

# ---------------------------------------------------------------- .pth weights (--model)
import pickle


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/poisongate-corpus-pwned",))


def pth_case(name, data):
    path = CASES / "pth" / f"{name}.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    manifest.append({"name": f"pth/{name}", "input": "cases/images/plain",
                     "args": ["--embedder", "mobilenet_v2", "--model", str(path.resolve())],
                     "expect": "error", "names": f"{name}.pth"})


legacy_head = b"".join(pickle.dumps(x, protocol=2) for x in (0x1950A86A20F9469CFC6C, 1001, {}))
pth_case("reduce-os-system", legacy_head + pickle.dumps(Exploit(), protocol=2))
pth_case("forbidden-global", legacy_head + b"\x80\x02cbuiltins\neval\nq\x00X\x04\x00\x00\x001+1q\x01\x85q\x02Rq\x03.")
pth_case("deep-nesting", legacy_head + b"\x80\x02" + b"]" * 200_000 + b"." )
pth_case("huge-memo-index", legacy_head + b"\x80\x02j\xff\xff\xff\x7f.")
pth_case("huge-string-length", legacy_head + b"\x80\x02X\xff\xff\xff\x7fabc.")
pth_case("empty", b"")
pth_case("magic-only", pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2))


def zipped_pickle(payload):
    """A torch zip-format file whose data.pkl is `payload`."""
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", payload)
    return buf.getvalue()


pth_case("zip-with-exploit", zipped_pickle(pickle.dumps(Exploit(), protocol=2)))

# ---------------------------------------------------------------- schema TOML
schemas = {
    "wrong-type": 'columns.x0 = { min = "zero" }\n',
    "unknown-key": "columns.x0 = { minimum = 0 }\n",
    "not-toml": "columns = [[[\n",
    "binary": "\x00\x01\x02",
    "huge-number": "columns.x0 = { min = 1e999 }\n",
    "nested-deep": "a = " + "[" * 5000 + "]" * 5000 + "\n",
}
for name, text in schemas.items():
    path = CASES / "schema" / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("latin-1"))
    manifest.append({"name": f"schema/{name}", "input": str(table_for_npy.relative_to(OUT)),
                     "args": ["--schema", str(path.resolve())], "expect": "error",
                     "names": f"{name}.toml"})

# ---------------------------------------------------------------- fuzzer findings
# Kept byte for byte in tests/corpus/found/ (each under 3 KB; its README says what they did).
FOUND = Path(__file__).resolve().parent / "found"
for path in sorted(FOUND.glob("*.parquet")):
    case(f"found/{path.stem}", path.read_bytes(), "error", suffix=path.suffix)

for m in manifest:
    if m.get("names") is None:
        m.pop("names", None)
(OUT / "manifest.json").write_text(json.dumps(manifest, indent=1))
print(len(manifest))
