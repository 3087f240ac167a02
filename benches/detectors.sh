#!/usr/bin/env bash
# Wall time and peak memory of each detector on synthetic embeddings (default 200,000 x 128,
# 10 classes), one process per detector under /usr/bin/time -v, as a table.
# Usage: bash benches/detectors.sh [N] [D] [DETECTORS] [SPREAD]
#   DETECTORS: a space-separated subset of
#   "spectral clustering knn-exact knn-hnsw shift shift-planted"
#   SPREAD: the class centres' standard deviation against unit noise (default 3; 0 = one
#   centre for all classes, structureless rows)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/poisongate-target}
n=${1:-200000}
d=${2:-128}
detectors=${3:-spectral clustering knn-exact knn-hnsw shift shift-planted}
spread=${4:-3}
bin=$(cargo bench --bench detectors --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "detectors" and m.get("executable"):
        print(m["executable"])')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '%-12s %9s %5s %10s %12s %12s %12s\n' detector n d seconds peak_MiB matrix_MiB peak/matrix
for det in $detectors; do
  /usr/bin/time -v "$bin" "$det" "$n" "$d" "$spread" >"$work/out" 2>"$work/time"
  secs=$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' "$work/out")
  mat=$(sed -n 's/.*matrix_mib=\([0-9.]*\).*/\1/p' "$work/out")
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$work/time")
  ratio=$(python3 -c "print(f'{$rss / $mat:.2f}')")
  printf '%-12s %9s %5s %10s %12s %12s %12s\n' "$det" "$n" "$d" "$secs" "$rss" "$mat" "$ratio"
done
