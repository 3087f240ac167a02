#!/usr/bin/env bash
# Time and peak memory of `poisongate scan` on generated Parquet tables under a memory limit
# (the streaming scan, issue 18: a table whose in-memory scan is estimated over the limit is
# streamed; the "streamed" column says which ran), with the in-memory scan beside it where
# it fits (--memory-limit 1TiB).
# Data: `poisongate generate tabular --features 64 --classes 10 --groups 20` (each class 20
# Gaussian groups: clean data, so the gate should pass), seed 1.
#
# Usage: bash benches/stream.sh [--sizes 1000000,5000000] [--limit 3GiB] [--memory-too 1000000]
#        [--args "--embedder raw --knn-index ivf"] [--work DIR] [--csv]
# --csv: the same tables as CSV (a streamed CSV is read from a Parquet copy).
# --memory-too: sizes at which the in-memory scan (same arguments, no limit) also runs.
# Prints one table row per run; full logs and reports are kept under $OUT (default a temp
# folder, removed) when OUT is set.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/poisongate-target}
sizes=1000000,5000000
limit=3GiB
memory_too=1000000
args="--embedder raw --knn-index ivf"
work=${TMPDIR:-/tmp}
ext=parquet
while [ $# -gt 0 ]; do
  case $1 in
    --sizes) sizes=$2; shift 2 ;;
    --limit) limit=$2; shift 2 ;;
    --memory-too) memory_too=$2; shift 2 ;;
    --args) args=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --csv) ext=csv; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
cargo build --release --locked --quiet
bin=$CARGO_TARGET_DIR/release/poisongate
data=$(mktemp -d -p "$work")
keep=${OUT:-}
trap 'rm -rf "$data"' EXIT
row() { # mode rows file extra-args...
  local mode=$1 rows=$2 file=$3
  shift 3
  local log=$data/$mode-$rows
  set +e
  /usr/bin/time -v "$bin" scan "$file" $args "$@" --work-dir "$data" --format json --quiet \
    >"$log.json" 2>"$log.time"
  local code=$?
  set -e
  local wall rss knn recall streamed
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$log.time" |
    awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }')
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$log.time")
  read -r knn recall streamed < <(python3 - "$log.json" <<'PY'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except Exception:
    print("- - -"); sys.exit()
t = {d.get("detector"): d.get("seconds") for d in r["timings"]["detectors"]}
det = r.get("detection") or {}
p = {}
for d in det.get("detectors", []):
    if d["detector"] == "knn":
        p = dict(d["parameters"]) if isinstance(d["parameters"], list) else d["parameters"]
rec = str(p.get("recall_sampled", "-")).split(" ")[0]
probe = p.get("probe", "-")
notes = " ".join(det.get("verdict", {}).get("notes", []))
streamed = "yes" if "streamed:" in notes else "no"
print(f'{t.get("knn", "-")} {rec}@{probe} {streamed}')
PY
)
  printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$mode" "$streamed" "$rows" "$wall" "$rss" "$knn" "$recall" "$code"
  if [ -n "$keep" ]; then mkdir -p "$keep"; cp "$log.json" "$log.time" "$keep/"; fi
}
echo "| run | streamed | rows | wall s | peak RSS MiB | k-NN s | recall@probe | exit |"
echo "|---|---|---|---|---|---|---|---|"
IFS=, read -ra list <<<"$sizes"
for rows in "${list[@]}"; do
  file=$data/t$rows.$ext
  "$bin" generate tabular "$file" --rows "$rows" --features 64 --classes 10 --groups 20 --seed 1
  row "--memory-limit $limit" "$rows" "$file" --memory-limit "$limit"
  if [[ ",$memory_too," == *",$rows,"* ]]; then
    row "--memory-limit 1TiB" "$rows" "$file" --memory-limit 1TiB
  fi
  rm -f "$file"
done
