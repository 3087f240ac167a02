#!/usr/bin/env bash
# Fetches the Twemoji images (64x64, colour) from the npm package `emoji-datasource-twitter`
# 16.0.0 (tarball pinned by its sha512 integrity hash) and writes them as an image folder
# $DEST/<category>/<codepoints>.png labelled by Unicode emoji category (9 classes), via
# to_png.py (standard library only): one image per emoji (no skin-tone variants), the
# 5 `Component` emoji left out, transparency flattened onto white. Needs npm, openssl and python3.
# Usage: bash datasets/emoji/fetch.sh [DEST]  (default ~/.cache/poisongate-data/emoji)
set -euo pipefail
here=$(dirname "$0")
# shellcheck source-path=SCRIPTDIR source=../fetch-lib.sh
. "$here/../fetch-lib.sh"
dest=${1:-$HOME/.cache/poisongate-data/emoji}
exit_if_done "$dest" "$dest/.complete"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tarball=$work/emoji-datasource-twitter-16.0.0.tgz
pinned_npm emoji-datasource-twitter 16.0.0 "$tarball" \
  'sha512-7F+uCuHH+7Qnrc15P5tnbvKkg9E6tlzi4MnT2uW1RlN4pLYTza6cP/dstIfSDMtpjFLWuZewWg8jBbuL2eyELQ=='
tar xzf "$tarball" -C "$work" package/emoji.json package/img/twitter/64
convert "$here/to_png.py" "$work/package" "$dest"
