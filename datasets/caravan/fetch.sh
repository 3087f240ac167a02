#!/usr/bin/env bash
# Fetches the Caravan insurance data (5,822 customers, 85 numeric features, 348 bought caravan
# insurance: about 1:16) from the PyPI wheel `ISLP` 0.6.0 (pinned by its SHA-256) and writes it
# as one CSV, caravan.csv: the 85 feature columns and `label` (No or Yes), via to_csv.py
# (standard library only). Needs python3 with pip, and sha256sum.
# Usage: bash datasets/caravan/fetch.sh [DEST]  (default ~/.cache/poisongate-data/caravan.csv)
set -euo pipefail
here=$(dirname "$0")
# shellcheck source-path=SCRIPTDIR source=../fetch-lib.sh
. "$here/../fetch-lib.sh"
dest=${1:-$HOME/.cache/poisongate-data/caravan.csv}
exit_if_done "$dest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
wheel=$work/islp-0.6.0-py3-none-any.whl
pinned_pip ISLP 0.6.0 "$wheel" ca772cecca1747a2f84ee799a5503ddddbdf0e98f90c235494790c1d036c694b
convert "$here/to_csv.py" "$wheel" "$dest"
