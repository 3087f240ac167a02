#!/usr/bin/env bash
# Fetches the Palmer penguins data (344 penguins, 3 species) from the PyPI wheel
# `palmerpenguins` 0.1.6 (pinned by its SHA-256) and writes it as one CSV, penguins.csv:
# 4 body measurements, year, one-hot island and sex, and `label` (the species), via to_csv.py
# (standard library only). Missing values stay as empty cells (11 rows have some).
# Needs python3 with pip, and sha256sum.
# Usage: bash datasets/penguins/fetch.sh [DEST]  (default ~/.cache/poisongate-data/penguins.csv)
set -euo pipefail
here=$(dirname "$0")
# shellcheck source-path=SCRIPTDIR source=../fetch-lib.sh
. "$here/../fetch-lib.sh"
dest=${1:-$HOME/.cache/poisongate-data/penguins.csv}
exit_if_done "$dest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
wheel=$work/palmerpenguins-0.1.6-py3-none-any.whl
pinned_pip palmerpenguins 0.1.6 "$wheel" 5c3be9af84dd703a25f1aaeadeac6ac770cfd38c1620d00089f581c023129ee0
convert "$here/to_csv.py" "$wheel" "$dest"
