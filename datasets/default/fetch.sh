#!/usr/bin/env bash
# Fetches the simulated credit-card `Default` data of ISLR/ISLP (10,000 customers, 333 of whom
# defaulted: about 1:29) from the PyPI wheel `ISLP` 0.6.0 (pinned by its SHA-256) and writes it
# as one CSV, default.csv: student_yes, balance, income and `label` (No or Yes), via to_csv.py
# (standard library only). Needs python3 with pip, and sha256sum.
# Usage: bash datasets/default/fetch.sh [DEST]  (default ~/.cache/poisongate-data/default.csv)
set -euo pipefail
here=$(dirname "$0")
# shellcheck source-path=SCRIPTDIR source=../fetch-lib.sh
. "$here/../fetch-lib.sh"
dest=${1:-$HOME/.cache/poisongate-data/default.csv}
exit_if_done "$dest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
wheel=$work/islp-0.6.0-py3-none-any.whl
pinned_pip ISLP 0.6.0 "$wheel" ca772cecca1747a2f84ee799a5503ddddbdf0e98f90c235494790c1d036c694b
convert "$here/to_csv.py" "$wheel" "$dest"
