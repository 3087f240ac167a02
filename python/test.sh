#!/usr/bin/env bash
# Builds the Python package's wheel with maturin, installs it into a venv made from PyPI
# (pinned), and runs its pytest suite. Part of the README's test command and of .ci/run.
# Usage: bash python/test.sh [PYTEST ARGS...]
#   venv at $POISONGATE_PY_VENV (default ~/.cache/poisongate-py-venv); the Rust build shares
#   $CARGO_TARGET_DIR (default ~/.cache/poisongate-target).
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/poisongate-target}
venv=${POISONGATE_PY_VENV:-$HOME/.cache/poisongate-py-venv}
# Bump when the list changes, so that an existing venv is brought up to date.
pins="maturin==1.15.0 pytest==9.0.3 numpy==2.4.6 pyarrow==25.0.1 pandas==2.3.3 polars==1.44.2 datasets==5.0.1 ray[data]==2.60.0"
if [ "$(cat "$venv/.pins" 2>/dev/null)" != "$pins" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip >&2
  # shellcheck disable=SC2086
  (set -f; "$venv/bin/pip" install --quiet $pins) >&2
  echo "$pins" >"$venv/.pins"
fi
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
# The dev profile (the tests' build, optimised dependencies) keeps the build short; release
# wheels come from `maturin build --release`.
"$venv/bin/maturin" build --quiet --profile dev --locked --interpreter "$venv/bin/python" \
  --out "$wheels" >&2
"$venv/bin/pip" install --quiet --force-reinstall --no-deps "$wheels"/*.whl
# The command line, for the tests that compare the two.
(cd .. && cargo build --quiet --locked --bin poisongate)
export POISONGATE_BIN=$CARGO_TARGET_DIR/debug/poisongate
"$venv/bin/python" -m pytest -q tests "$@"
