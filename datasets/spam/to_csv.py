"""Writes the SpamAssassin JSON files as one CSV: `text,label`.

Each email's text is its Subject line followed by its body (everything after the first blank
line), whitespace collapsed and cut to the first 120 words, so that most emails fit the text
model's 256-token limit and a planted trigger phrase is not cut off with the tail. Groups
easy-ham-1/2 and hard-ham-1 are `ham`, spam-1/2 are `spam`. Rows are sorted by group and id.
Usage: python3 to_csv.py DATA_DIR OUT.csv
"""

import csv
import json
import pathlib
import re
import sys

WORDS = 120


def text_of(raw: str) -> str:
    head, _, body = raw.partition("\n\n")
    subject = ""
    for line in head.splitlines():
        if line.lower().startswith("subject:"):
            subject = line[len("subject:"):].strip()
            break
    words = re.split(r"\s+", f"{subject} {body}".strip())
    return " ".join(words[:WORDS])


def main() -> None:
    data, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    files = sorted(data.glob("*/*.json"), key=lambda p: (p.parent.name, p.name))
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for path in files:
            email = json.loads(path.read_text(encoding="utf-8"))
            label = "spam" if email["group"].startswith("spam") else "ham"
            writer.writerow([text_of(email["text"]), label])


if __name__ == "__main__":
    main()
