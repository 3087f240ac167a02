#!/usr/bin/env bash
# Wall time and peak memory of `poisongate scan` on a generated 1,000,000-row x 64-column
# Parquet file (release build, --validate-only: reading and validation), as a table. Usage: bash benches/validate_1m.sh [ROWS]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/poisongate-target}
rows=${1:-1000000}
cargo build --release --locked --quiet
bin=$CARGO_TARGET_DIR/release/poisongate
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" generate tabular "$work/t.parquet" --rows "$rows" --features 64 --classes 10 --seed 1
size=$(du -m "$work/t.parquet" | cut -f1)
printf '%-28s %10s %12s %14s %6s\n' case rows wall_s peak_rss_MiB exit
for run in 1 2 3; do
  set +e
  /usr/bin/time -v "$bin" scan "$work/t.parquet" --validate-only --format json --quiet \
    >"$work/report.json" 2>"$work/time.txt"
  code=$?
  set -e
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time.txt" |
    awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }')
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$work/time.txt")
  printf '%-28s %10s %12s %14s %6s\n' "scan parquet ${size}MB #$run" "$rows" "$wall" "$rss" "$code"
done
