#!/usr/bin/env bash
# Fetches the Palmer penguins data (344 penguins, 3 species) from the PyPI wheel
# `palmerpenguins` 0.1.6 (pinned by its SHA-256) and writes it as one CSV, penguins.csv:
# 4 body measurements, year, one-hot island and sex, and `label` (the species), via to_csv.py
# (standard library only). Missing values stay as empty cells (11 rows have some).
# Needs python3 with pip, and sha256sum.
# Usage: bash datasets/penguins/fetch.sh [DEST]  (default ~/.cache/poisongate-data/penguins.csv)
set -euo pipefail
dest=${1:-$HOME/.cache/poisongate-data/penguins.csv}
if [ -f "$dest" ]; then
  echo "$dest"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps --only-binary :all: --dest "$work" palmerpenguins==0.1.6 >&2
wheel=$work/palmerpenguins-0.1.6-py3-none-any.whl
echo "5c3be9af84dd703a25f1aaeadeac6ac770cfd38c1620d00089f581c023129ee0  $wheel" | sha256sum --check --quiet
mkdir -p "$(dirname "$dest")"
python3 "$(dirname "$0")/to_csv.py" "$wheel" "$dest.partial"
mv "$dest.partial" "$dest"
echo "$dest"
