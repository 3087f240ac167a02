#!/usr/bin/env bash
# The CNN probe's training against the same network trained the same way in PyTorch
# (benches/probe_torch.py: same layers, AdamW 1e-3 / 1e-4, batch 64, same epochs), on the same
# image folder and thread count, one process each under /usr/bin/time -v, as one table.
#   seconds: training plus the embedding pass (poisongate: the probe view's time in the JSON
#     report of `scan --embedder probe`; decoding and the detectors are not in it).
#   GFLOP/s: the convolutions' and linear layers' multiply-adds (x2) of that work (forward on
#     every image of each epoch, backward twice the forward, the first layer's input gradient
#     left out; one more forward to embed), over seconds.
#   peak MiB: the whole process (poisongate's includes decoding, the raw view and detectors).
# A last row times one 2048 x 2048 float32 matrix product (torch.mm) as the rate this machine
# reaches at all, the yardstick for the probe's share of FP32 peak.
# Usage: bash benches/probe.sh [IMAGE_FOLDER] [EPOCHS]
#   (default: MNIST's 10,000 test images, datasets/mnist/fetch.sh; 6 epochs, the default
#   rule's choice for 10,000 images)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/poisongate-target}
data=${1:-$(bash datasets/mnist/fetch.sh)}
epochs=${2:-6}
py=$(bash benches/venv.sh)
cargo build --release --locked --quiet
bin=$CARGO_TARGET_DIR/release/poisongate
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
threads=$(nproc)
export RAYON_NUM_THREADS=$threads OMP_NUM_THREADS=$threads

timed() {
  local name=$1
  shift
  /usr/bin/time -v "$@" >"$work/$name.out" 2>"$work/$name.time" || {
    # scan exits 1 when the gate fails; only 2 (or a crash) is an error here.
    local rc=$?
    if [ "$rc" != 1 ]; then
      cat "$work/$name.time" >&2
      exit 1
    fi
  }
  awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$work/$name.time" >"$work/$name.rss"
}
timed pg "$bin" scan "$data" --embedder probe --epochs "$epochs" --format json -q
timed py "$py" benches/probe_torch.py "$data" --epochs "$epochs"

"$py" - "$work" "$data" "$threads" <<'EOF'
import json, re, sys, time
import torch
work, data, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
full = json.load(open(f"{work}/pg.out"))
report, timings = full["detection"], full["timings"]
view = next(v for v in report["views"] if v["view"] == "probe")
train = view["training"]
py = dict(re.findall(r"(\w+)=([0-9.]+)", open(f"{work}/py.out").read()))
n = report["rows_used"]
assert int(py["images"]) == n, (py["images"], n)
assert train["epochs"] == int(py["epochs"]), (train["epochs"], py["epochs"])

# Multiply-adds per image of the image probe on h x w grey images (src/embed/probe.rs).
from PIL import Image
import os
folders = sorted(d for d in os.listdir(data) if os.path.isdir(os.path.join(data, d)))
with Image.open(os.path.join(data, folders[0], sorted(os.listdir(os.path.join(data, folders[0])))[0])) as im:
    w, h = im.size
classes = len(folders)
conv1 = h * w * 16 * 9
conv2 = (h // 2) * (w // 2) * 32 * 16 * 9
linear = (h // 4) * (w // 4) * 32 * 64 + 64 * classes
forward = conv1 + conv2 + linear
backward = 2 * forward - conv1  # no input gradient for the first layer
flops = 2 * n * (train["epochs"] * (forward + backward) + forward)

torch.set_num_threads(threads)
a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
torch.mm(a, b)
reps, start = 10, time.perf_counter()
for _ in range(reps):
    torch.mm(a, b)
gemm = 2 * 2048**3 * reps / (time.perf_counter() - start) / 1e9

print("| program | images | epochs | threads | seconds | GFLOP/s | share of gemm rate | final train accuracy | peak MiB |")
print("|---|---|---|---|---|---|---|---|---|")
probe_seconds = next(t["seconds"] for t in timings["views"] if t["view"] == "probe")
rows = [("poisongate (candle + conv3x3)", probe_seconds, train["accuracy"][-1], "pg"),
        ("PyTorch", float(py["seconds"]), float(py["train_accuracy"]), "py")]
for name, secs, acc, key in rows:
    rate = flops / secs / 1e9
    print(f"| {name} | {n} | {train['epochs']} | {threads} | {secs:.2f} | {rate:.1f} | "
          f"{100 * rate / gemm:.0f} % | {acc:.4f} | {open(f'{work}/{key}.rss').read()} |")
print(f"| torch.mm 2048x2048 (the machine's reachable FP32 rate) | | | {threads} | | {gemm:.1f} | 100 % | | |")
EOF
