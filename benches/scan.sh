#!/usr/bin/env bash
# A whole `poisongate scan` of an image folder, start to verdict, against the Python pipeline a
# user would run instead (benches/pipeline_python.py: Pillow decoding, scikit-learn's MLP
# 128-64 for 10 epochs, ART's spectral signatures and activation clustering, scikit-learn's
# k-NN 10), on the same folder and thread count, one process each under /usr/bin/time -v, as
# one table. seconds: wall time of the whole process (start-up, decoding and writing
# included). result: poisongate's gate (exit code 0 = passes) with what it flagged; the
# pipeline's own flags (spectral and clustering cut at ART's defaults, whose rules flag a
# share of every class by construction).
# Usage: bash benches/scan.sh [IMAGE_FOLDER...]
#   (default: MNIST's 10,000 test images and its 60,000 training images,
#   datasets/mnist/fetch.sh and fetch60k.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/poisongate-target}
if [ $# -eq 0 ]; then
  set -- "$(bash datasets/mnist/fetch.sh)" "$(bash datasets/mnist/fetch60k.sh)"
fi
py=$(bash benches/venv.sh)
cargo build --release --locked --quiet
bin=$CARGO_TARGET_DIR/release/poisongate
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
threads=$(nproc)
export RAYON_NUM_THREADS=$threads OMP_NUM_THREADS=$threads

# timed NAME COMMAND...: $work/NAME.{out,rc,secs,rss}
timed() {
  local name=$1 rc=0
  shift
  /usr/bin/time -v "$@" >"$work/$name.out" 2>"$work/$name.time" || rc=$?
  echo "$rc" >"$work/$name.rc"
  awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$work/$name.time" >"$work/$name.rss"
  awk '/Elapsed \(wall clock\)/ {n = split($NF, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s}' \
    "$work/$name.time" >"$work/$name.secs"
}

echo "| data | program | images | seconds | images/s | poisongate's speed-up | peak MiB | result |"
echo "|---|---|---|---|---|---|---|---|"
for data in "$@"; do
  name=$(basename "$data")
  timed "$name-pg" "$bin" scan "$data" --format json -q --out "$work/$name-report"
  timed "$name-py" "$py" benches/pipeline_python.py "$data"
  if [ "$(cat "$work/$name-pg.rc")" = 2 ] || [ "$(cat "$work/$name-py.rc")" != 0 ]; then
    cat "$work/$name-pg.time" "$work/$name-py.time" >&2
    exit 1
  fi
  python3 - "$work" "$name" <<'EOF'
import json, re, sys
work, name = sys.argv[1:]
secs = {p: float(open(f"{work}/{name}-{p}.secs").read()) for p in ("pg", "py")}
rss = {p: open(f"{work}/{name}-{p}.rss").read() for p in ("pg", "py")}
report = json.load(open(f"{work}/{name}-pg.out"))
det = report["detection"]
n = det["rows_used"]
verdict = det.get("verdict") or {}
rc = open(f"{work}/{name}-pg.rc").read().strip()
gate = "passes" if rc == "0" else "fails"
pg_result = (f"gate {gate} (exit {rc}): {verdict.get('flagged', 0)} suspected, "
             f"{verdict.get('label_issues', 0)} label issues")
py = dict(re.findall(r"(\w+)=([0-9.]+)", open(f"{work}/{name}-py.out").read()))
py_result = (f"spectral {py['flagged_spectral']}, clustering {py['flagged_clustering']}, "
             f"k-NN disagree {py['knn_disagree']}")
print(f"| {name} | poisongate scan | {n} | {secs['pg']:.1f} | {n / secs['pg']:.0f} | "
      f"{secs['py'] / secs['pg']:.2f}x | {rss['pg']} | {pg_result} |")
print(f"| {name} | Python pipeline | {py['images']} | {secs['py']:.1f} | "
      f"{int(py['images']) / secs['py']:.0f} | | {rss['py']} | {py_result} |")
EOF
done
