#!/usr/bin/env bash
# Time and memory of a scan on a local Ray cluster (`python -m poisongate.ray`: a head and a
# second node, --cpus CPUs each, loopback only) against `poisongate scan` streaming the same
# table on its own, with the same arguments, one after the other (never at once).
# Data: `poisongate generate tabular --features 64 --classes 10 --groups 20 --seed 1
# --shards 8` (clean: both should pass), or with --images an image folder from
# `poisongate generate images --classes 10 --image-size WxH --seed 1` (SIZE images in all).
# --memory adds the in-memory scan of the same data (--memory-limit 1TiB) as a third row.
# --texts writes a CSV of SIZE sentences in 10 topics (columns text, label) instead; pass
# "--text-col text --label label" in --args. A text table is not streamed by the command line,
# so --texts runs the Ray scan and the in-memory one only.
#
# Usage: bash benches/ray.sh [--sizes 200000,1000000] [--limit 512MiB] [--cpus 1]
#        [--args "--embedder raw --knn-index ivf"] [--work DIR] [--images 32x32] [--memory]
#        [--texts]
# Builds the release CLI and a release wheel into a venv at $POISONGATE_RAY_VENV (default
# ~/.cache/poisongate-ray-venv, Ray from PyPI, pinned). Prints one table row per run:
# the driver's peak RSS (/usr/bin/time -v) and, for Ray, the peak of the sum of every Ray
# process's RSS sampled each second. Logs are kept under $OUT when it is set.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/poisongate-target}
sizes=200000,1000000
limit=512MiB
cpus=1
args="--embedder raw --knn-index ivf"
work=${TMPDIR:-/tmp}
images=
memory=
texts=
while [ $# -gt 0 ]; do
  case $1 in
    --sizes) sizes=$2; shift 2 ;;
    --limit) limit=$2; shift 2 ;;
    --cpus) cpus=$2; shift 2 ;;
    --args) args=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --images) images=$2; shift 2 ;;
    --memory) memory=1; shift ;;
    --texts) texts=1; memory=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
venv=${POISONGATE_RAY_VENV:-$HOME/.cache/poisongate-ray-venv}
pins="maturin==1.15.0 numpy==2.4.6 pyarrow==25.0.1 pandas==2.3.3 ray[data]==2.60.0"
if [ "$(cat "$venv/.pins" 2>/dev/null)" != "$pins" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip >&2
  # shellcheck disable=SC2086
  (set -f; "$venv/bin/pip" install --quiet $pins) >&2
  echo "$pins" >"$venv/.pins"
fi
cargo build --release --locked --quiet
bin=$CARGO_TARGET_DIR/release/poisongate
wheels=$(mktemp -d)
(cd python && "$venv/bin/maturin" build --quiet --release --locked --interpreter "$venv/bin/python" --out "$wheels") >&2
"$venv/bin/pip" install --quiet --force-reinstall --no-deps "$wheels"/*.whl
rm -rf "$wheels"

data=$(mktemp -d -p "$work")
keep=${OUT:-}
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
address=127.0.0.1:$port
export RAY_USAGE_STATS_ENABLED=0
stop() { "$venv/bin/ray" stop --force >/dev/null 2>&1 || true; rm -rf "$data"; }
trap stop EXIT
common=(--num-cpus="$cpus" --object-store-memory=1000000000 --disable-usage-stats --node-ip-address=127.0.0.1)
"$venv/bin/ray" start --head --port="$port" --include-dashboard=false "${common[@]}" >"$data/head.log" 2>&1
"$venv/bin/ray" start --address="$address" "${common[@]}" >"$data/worker.log" 2>&1

# The peak of the summed RSS (MiB) of every Ray process and the driver, sampled each second,
# until the file $1.stop exists.
sample() {
  local peak=0 now
  while [ ! -e "$1.stop" ]; do
    now=$(ps -eo rss=,args= | awk '/ray::|raylet|gcs_server|poisongate.ray|default_worker/ && !/awk/ {s += $1} END {printf "%.0f", s / 1024}')
    [ "$now" -gt "$peak" ] && peak=$now
    sleep 1
  done
  echo "$peak" >"$1"
}

row() { # mode rows file command...
  local mode=$1 rows=$2 file=$3
  shift 3
  local log=$data/$mode-$rows
  rm -f "$log.peak" "$log.peak.stop"
  sample "$log.peak" &
  local sampler=$!
  set +e
  /usr/bin/time -v "$@" >"$log.out" 2>"$log.time"
  local code=$?
  set -e
  touch "$log.peak.stop"
  wait "$sampler"
  local wall rss cluster knn
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$log.time" |
    awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }')
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$log.time")
  cluster=$([ "$mode" = ray ] && cat "$log.peak" || echo -)
  knn=$(python3 - "$log.dir/report.json" <<'PY'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except Exception:
    print("- -"); sys.exit()
t = {d.get("detector"): d.get("seconds") for d in r["timings"]["detectors"]}
p = {}
for d in (r.get("detection") or {}).get("detectors", []):
    if d["detector"] == "knn":
        p = dict(d["parameters"])
print(f'{t.get("knn", "-")} {str(p.get("recall_sampled", "-")).split(" ")[0]}@{p.get("probe", "-")}')
PY
)
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$mode" "$rows" "$wall" "$rss" "$cluster" "$knn" "$code"
  if [ -n "$keep" ]; then mkdir -p "$keep"; cp "$log.out" "$log.time" "$keep/"; cp "$log.dir/report.json" "$keep/$mode-$rows.json" 2>/dev/null || true; fi
}
echo "| run | rows | wall s | driver peak RSS MiB | Ray processes peak MiB | k-NN s, recall@probe | exit |"
echo "|---|---|---|---|---|---|---|"
IFS=, read -ra list <<<"$sizes"
for rows in "${list[@]}"; do
  file=$data/t$rows
  if [ -n "$texts" ]; then
    file=$file.csv
    python3 - "$file" "$rows" <<'PY'
import random, sys
path, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(1)
topics = [
    ["soup", "salad", "bread", "pasta", "curry"], ["rain", "wind", "storm", "fog", "snow"],
    ["goal", "striker", "referee", "penalty", "league"], ["guitar", "concert", "album", "drummer", "song"],
    ["engine", "brakes", "tyres", "gearbox", "fuel"], ["doctor", "fever", "clinic", "vaccine", "nurse"],
    ["market", "shares", "profit", "bank", "loan"], ["garden", "roses", "soil", "seeds", "hedge"],
    ["train", "station", "ticket", "platform", "delay"], ["laptop", "keyboard", "screen", "battery", "update"],
]
filler = ["the", "a", "this", "our", "their", "new", "old", "big", "small", "good", "bad", "today", "again"]
with open(path, "w") as f:
    f.write("text,label\n")
    for i in range(n):
        c = i % 10
        words = [rng.choice(topics[c]) for _ in range(3)] + [rng.choice(filler) for _ in range(rng.randint(4, 20))]
        rng.shuffle(words)
        f.write(f'"{" ".join(words)}",topic{c}\n')
PY
  elif [ -n "$images" ]; then
    "$bin" generate images "$file" --rows $((rows / 10)) --classes 10 --image-size "$images" --seed 1
  else
    "$bin" generate tabular "$file" --rows "$rows" --features 64 --classes 10 --groups 20 --seed 1 --shards 8
  fi
  # shellcheck disable=SC2086
  row ray "$rows" "$file" "$venv/bin/python" -m poisongate.ray "$file" --address "$address" \
    --memory-limit "$limit" --work-dir "$data" --out "$data/ray-$rows.dir" $args
  if [ -z "$texts" ]; then
    # shellcheck disable=SC2086
    row streamed "$rows" "$file" "$bin" scan "$file" --memory-limit "$limit" --work-dir "$data" \
      --out "$data/streamed-$rows.dir" --quiet $args
  fi
  if [ -n "$memory" ]; then
    # shellcheck disable=SC2086
    row memory "$rows" "$file" "$bin" scan "$file" --memory-limit 1TiB \
      --out "$data/memory-$rows.dir" --quiet $args
  fi
  if [ -n "$texts" ]; then
    echo "<!-- $rows texts: no streamed run to compare scores.parquet with -->"
  elif cmp -s "$data/ray-$rows.dir/scores.parquet" "$data/streamed-$rows.dir/scores.parquet"; then
    echo "<!-- $rows rows: scores.parquet identical -->"
  else
    echo "<!-- $rows rows: scores.parquet DIFFERS -->"
  fi
  rm -rf "$file" "$data/ray-$rows.dir" "$data/streamed-$rows.dir" "$data/memory-$rows.dir"
done
