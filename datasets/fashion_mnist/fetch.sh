#!/usr/bin/env bash
# Fetches the Fashion-MNIST test split (10,000 28x28 grey images, 10 classes) from Debian's
# package `dataset-fashion-mnist` 0.0~git20200523.55506a9-1 (bookworm, main; the .deb pinned by
# its SHA-256; neither PyPI nor npm ships Fashion-MNIST) and writes it as an image folder
# $DEST/<class>/<index>.png, <index> being the image's position in the test split, via
# to_png.py (standard library only). Needs apt-get (with package lists: run `apt-get update`
# once), dpkg-deb, sha256sum and python3. Nothing is installed: the .deb is only unpacked.
# Usage: bash datasets/fashion_mnist/fetch.sh [DEST]
#   (default ~/.cache/poisongate-data/fashion-mnist10k)
set -euo pipefail
here=$(dirname "$0")
# shellcheck source-path=SCRIPTDIR source=../fetch-lib.sh
. "$here/../fetch-lib.sh"
dest=${1:-$HOME/.cache/poisongate-data/fashion-mnist10k}
exit_if_done "$dest" "$dest/.complete"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
version='0.0~git20200523.55506a9-1'
deb=$work/dataset-fashion-mnist_${version}_all.deb
pinned_deb dataset-fashion-mnist "$version" "$deb" \
  39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0
dpkg-deb -x "$deb" "$work/x"
convert "$here/to_png.py" "$work/x/usr/share/datasets/fashion-mnist" "$dest"
