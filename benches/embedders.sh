#!/usr/bin/env bash
# The pretrained embedders against what users run in Python, on the same inputs, batch and
# thread count, one process each under /usr/bin/time -v, as one table:
#   - all-MiniLM-L6-v2: poisongate (candle) vs sentence-transformers `encode`, on the first N
#     texts of the SpamAssassin set (datasets/spam/fetch.sh; a mean of 102 words, many cut at
#     256 tokens);
#   - MobileNetV2: poisongate (candle) vs torchvision, on the three fetched photos repeated to
#     M images (preprocessing timed, decoding not).
# cosine: the least and the mean cosine similarity between the two programs' vectors of each
# item (for MobileNetV2 also on the very same preprocessed input tensor, `same input`).
# ratio: poisongate's throughput over Python's.
# Usage: bash benches/embedders.sh [N=2000] [M=256] [BATCH=64]
#   The models come from datasets/models/fetch-*.sh; the Python side from benches/venv.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/poisongate-target}
n=${1:-2000}
m=${2:-256}
batch=${3:-64}
py=$(bash benches/venv.sh)
minilm_dir=$(bash datasets/models/fetch-minilm.sh)
mobilenet_dir=$(bash datasets/models/fetch-mobilenet.sh)
spam=$(bash datasets/spam/fetch.sh)
bin=$(cargo bench --bench workloads --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "workloads" and m.get("executable"):
        print(m["executable"])')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
threads=$(nproc)
export RAYON_NUM_THREADS=$threads OMP_NUM_THREADS=$threads

python3 - "$spam" "$n" "$work/texts.json" <<'EOF'
import csv, json, sys
csv.field_size_limit(1 << 30)
rows = list(csv.DictReader(open(sys.argv[1], newline="")))[: int(sys.argv[2])]
json.dump([r["text"] for r in rows], open(sys.argv[3], "w"))
EOF
python3 - "$mobilenet_dir/test-images" "$m" "$work/images.json" <<'EOF'
import json, os, sys
photos = sorted(os.path.join(sys.argv[1], f) for f in os.listdir(sys.argv[1]))
json.dump([photos[i % len(photos)] for i in range(int(sys.argv[2]))], open(sys.argv[3], "w"))
EOF

# run NAME COMMAND...: time it, keep its output line and peak RSS (MiB) as $work/NAME.{out,rss}
run() {
  local name=$1
  shift
  /usr/bin/time -v "$@" >"$work/$name.out" 2>"$work/$name.time" || {
    cat "$work/$name.time" >&2
    exit 1
  }
  awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$work/$name.time" >"$work/$name.rss"
}
run minilm-pg "$bin" minilm cpu "$work/texts.json" "$batch" "$work/minilm-pg.npy" "$minilm_dir"
run minilm-py "$py" benches/embedders_torch.py minilm "$work/texts.json" "$batch" "$work/minilm-py.npy" "$minilm_dir"
run mobilenet-pg "$bin" mobilenet cpu "$work/images.json" "$batch" "$work/mobilenet-pg.npy" "$work/input.npy" "$mobilenet_dir"
run mobilenet-py "$py" benches/embedders_torch.py mobilenet "$work/images.json" "$batch" "$work/mobilenet-py.npy" "$work/input.npy" "$mobilenet_dir"

"$py" - "$work" <<'EOF'
import re, sys
import numpy as np
work = sys.argv[1]

def field(name, key):
    return float(re.search(rf"{key}=([0-9.]+)", open(f"{work}/{name}.out").read()).group(1))

def cosines(a, b):
    a, b = np.load(a).astype(np.float64), np.load(b).astype(np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    c = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return f"{c.min():.6f} / {c.mean():.6f}"

print("| model | program | items | batch | threads | seconds | items/s | ratio | cosine min / mean | peak MiB |")
print("|---|---|---|---|---|---|---|---|---|---|")
for model, python in [("minilm", "sentence-transformers"), ("mobilenet", "torchvision")]:
    rate = {p: field(f"{model}-{p}", "items") / field(f"{model}-{p}", "seconds") for p in ("pg", "py")}
    cos = cosines(f"{work}/{model}-pg.npy", f"{work}/{model}-py.npy")
    for p, program in [("pg", "poisongate"), ("py", python)]:
        name = f"{model}-{p}"
        ratio = f"{rate['pg'] / rate['py']:.2f}" if p == "pg" else "1"
        print(f"| {model} | {program} | {field(name, 'items'):.0f} | {field(name, 'batch'):.0f} | "
              f"{field(name, 'threads'):.0f} | {field(name, 'seconds'):.2f} | {rate[p]:.1f} | {ratio} | "
              f"{cos if p == 'pg' else ''} | {open(f'{work}/{name}.rss').read()} |")
same = np.load(f"{work}/input.npy.torch.npy")
np.save(f"{work}/same-pg.npy", np.load(f"{work}/mobilenet-pg.npy")[: len(same)])
print(f"| mobilenet | same input tensor | {len(same)} | | | | | | "
      f"{cosines(f'{work}/same-pg.npy', f'{work}/input.npy.torch.npy')} | |")
EOF
