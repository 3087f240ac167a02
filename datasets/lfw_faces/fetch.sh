#!/usr/bin/env bash
# Fetches scikit-image's `lfw_subset` (200 grey 25x25 crops from Labeled Faces in the Wild:
# 100 faces, 100 non-face background patches) from the scikit-image 0.26.0 wheel for CPython
# 3.11 on manylinux x86_64 (pinned by its SHA-256; the script asks for that platform, so every
# machine gets the same file, the one datasets/models/fetch-mobilenet.sh uses) and writes it as
# an image folder $DEST/{face,non_face}/<index>.png via to_png.py (standard library only).
# Needs python3 with pip, and sha256sum.
# Usage: bash datasets/lfw_faces/fetch.sh [DEST]  (default ~/.cache/poisongate-data/lfw_faces)
set -euo pipefail
here=$(dirname "$0")
# shellcheck source-path=SCRIPTDIR source=../fetch-lib.sh
. "$here/../fetch-lib.sh"
dest=${1:-$HOME/.cache/poisongate-data/lfw_faces}
exit_if_done "$dest" "$dest/.complete"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
wheel=$work/scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl
pinned_pip scikit-image 0.26.0 "$wheel" \
  74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af \
  --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp --abi cp311
convert "$here/to_png.py" "$wheel" "$dest"
