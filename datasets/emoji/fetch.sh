#!/usr/bin/env bash
# Fetches the Twemoji images (64x64, colour) from the npm package `emoji-datasource-twitter`
# 16.0.0 (tarball pinned by its sha512 integrity hash) and writes them as an image folder
# $DEST/<category>/<codepoints>.png labelled by Unicode emoji category (9 classes), via
# to_png.py (standard library only): one image per emoji (no skin-tone variants), the
# 5 `Component` emoji left out, transparency flattened onto white. Needs npm, openssl and python3.
# Usage: bash datasets/emoji/fetch.sh [DEST]  (default ~/.cache/poisongate-data/emoji)
set -euo pipefail
dest=${1:-$HOME/.cache/poisongate-data/emoji}
if [ -f "$dest/.complete" ]; then
  echo "$dest"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent emoji-datasource-twitter@16.0.0 >/dev/null 2>&1)
tarball=$work/emoji-datasource-twitter-16.0.0.tgz
expected='sha512-7F+uCuHH+7Qnrc15P5tnbvKkg9E6tlzi4MnT2uW1RlN4pLYTza6cP/dstIfSDMtpjFLWuZewWg8jBbuL2eyELQ=='
actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
if [ "$actual" != "$expected" ]; then
  echo "$tarball: integrity $actual, expected $expected" >&2
  exit 1
fi
tar xzf "$tarball" -C "$work" package/emoji.json package/img/twitter/64
rm -rf "$dest.partial"
python3 "$(dirname "$0")/to_png.py" "$work/package" "$dest.partial"
touch "$dest.partial/.complete"
rm -rf "$dest"
mv "$dest.partial" "$dest"
echo "$dest"
