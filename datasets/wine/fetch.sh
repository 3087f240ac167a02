#!/usr/bin/env bash
# Fetches the Wine recognition data (UCI; 178 wines from three cultivars, 13 chemical
# measurements) from the scikit-learn 1.5.2 wheel for CPython 3.11 on manylinux x86_64 (pinned
# by its SHA-256; the script asks for that platform, so every machine gets the same file; the
# wheel datasets/digits/ came from) and writes it as one CSV, wine.csv: the 13 feature columns
# and `label`, via to_csv.py (standard library only). Needs python3 with pip, and sha256sum.
# Usage: bash datasets/wine/fetch.sh [DEST]  (default ~/.cache/poisongate-data/wine.csv)
set -euo pipefail
here=$(dirname "$0")
# shellcheck source-path=SCRIPTDIR source=../fetch-lib.sh
. "$here/../fetch-lib.sh"
dest=${1:-$HOME/.cache/poisongate-data/wine.csv}
exit_if_done "$dest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
wheel=$work/scikit_learn-1.5.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
pinned_pip scikit-learn 1.5.2 "$wheel" \
  f8b0ccd4a902836493e026c03256e8b206656f91fbcc4fde28c57a5b752561f1 \
  --platform manylinux2014_x86_64 --python-version 3.11 --implementation cp --abi cp311
convert "$here/to_csv.py" "$wheel" "$dest"
