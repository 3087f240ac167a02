#!/usr/bin/env bash
# Fetches the UCI Image Segmentation data (2,310 3x3 regions of outdoor photos, 18 numeric
# features, 7 classes of 330) from the `river` 0.22.0 wheel for CPython 3.11 on manylinux
# x86_64 (pinned by its SHA-256; the script asks for that platform, so every machine gets the
# same file) and writes it as one CSV, segment.csv: the 18 features and `label`, via to_csv.py
# (standard library only). Needs python3 with pip, and sha256sum.
# Usage: bash datasets/segment/fetch.sh [DEST]  (default ~/.cache/poisongate-data/segment.csv)
set -euo pipefail
here=$(dirname "$0")
# shellcheck source-path=SCRIPTDIR source=../fetch-lib.sh
. "$here/../fetch-lib.sh"
dest=${1:-$HOME/.cache/poisongate-data/segment.csv}
exit_if_done "$dest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
wheel=$work/river-0.22.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
pinned_pip river 0.22.0 "$wheel" \
  c982d614db62d9f67ef1c4a0259fe2063aef60df70f728dde9dfa50370d29720 \
  --platform manylinux2014_x86_64 --python-version 3.11 --implementation cp --abi cp311
convert "$here/to_csv.py" "$wheel" "$dest"
