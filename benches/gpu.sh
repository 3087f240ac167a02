#!/usr/bin/env bash
# The one-shot GPU check and benchmark, from prebuilt `--features cuda` binaries, as one table:
#   1. the CUDA cross-check tests (the library's `cuda_*` tests: k-NN, the probe's convolution
#      and training, MiniLM, MobileNetV2, each against the CPU path);
#   2. exact k-NN of N x 512 rows (k = 10; N = 1,000,000 on a GPU) against torch.cdist + topk
#      on the same device, both checked on 200 sampled queries against float64 distances
#      computed on the CPU;
#   3. probe training (10 classes of generated 28x28 images, 60,000 on a GPU, 6 epochs)
#      against the same network in PyTorch (benches/probe_torch.py);
#   4. MiniLM (stand-in weights of the real shapes: the real 87 MiB do not travel) against
#      sentence-transformers, and MobileNetV2 (the real weights) against torchvision, on the
#      same inputs and device, with the cosine between the two programs' vectors.
# Where no GPU answers (nvidia-smi), it runs the same steps on the CPU at smaller sizes (the
# CPU half); the CUDA tests then need the cuda build and are reported as not run.
#
# Usage:
#   bash benches/gpu.sh pack   here, with Rust: builds the binaries with `--features cuda`
#                              (nvcc from kernels/install-toolkit.sh) and packs them, the
#                              MobileNetV2 weights and MiniLM's config into .gpu/ (ignored by
#                              git; well under the device tool's 64 MiB carry limit)
#   bash benches/gpu.sh        on the GPU machine (device tool: carry [".gpu"]): writes logs
#                              and the table to $OUT (or a temporary folder) and prints the
#                              table; where no GPU answers it builds and runs the CPU
#                              binaries instead (the packed ones need the driver)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/poisongate-target}
pack=.gpu

# executable NAME ARGS...: the path cargo reports for a built test or bench target.
executable() {
  local name=$1
  shift
  cargo "$@" --no-run --message-format=json 2>/dev/null | python3 -c 'import json, sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == sys.argv[1] and m.get("executable"):
        print(m["executable"])' "$name" | tail -1
}

# safetensors_header FILE OUT.json: the tensor names, shapes and dtypes of FILE (its header),
# what gpu_torch.py's stand-in weights are made from.
safetensors_header() {
  python3 - "$1" "$2" <<'EOF'
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    json.dump(json.loads(f.read(n)), open(sys.argv[2], "w"))
EOF
}

if [ "${1:-}" = pack ]; then
  # shellcheck disable=SC1090
  source <(bash kernels/install-toolkit.sh)
  minilm=$(bash datasets/models/fetch-minilm.sh)
  mobilenet=$(bash datasets/models/fetch-mobilenet.sh)
  tests=$(executable poisongate test --release --locked --features cuda --lib)
  workloads=$(executable workloads bench --locked --features cuda --bench workloads)
  [ -x "$tests" ] && [ -x "$workloads" ] || { echo "gpu.sh pack: the build failed" >&2; exit 1; }
  rm -rf "$pack"
  mkdir -p "$pack/models/minilm" "$pack/models/mobilenet_v2"
  xz -T2 -6 -c "$tests" >"$pack/tests.xz"
  xz -T2 -6 -c "$workloads" >"$pack/workloads.xz"
  cp -r "$mobilenet/." "$pack/models/mobilenet_v2/"
  cp "$minilm"/{config.json,tokenizer.json,sentence_bert_config.json} "$pack/models/minilm/"
  safetensors_header "$minilm/model.safetensors" "$pack/models/minilm/header.json"
  grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo /.gpu/ >>.git/info/exclude
  du -sh "$pack"
  exit 0
fi

out=${OUT:-$(mktemp -d)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if nvidia-smi >"$out/nvidia-smi.txt" 2>&1; then
  device=cuda n=1000000 per_class=6000 texts=20000 images=2048 batch=256 image_batch=128
  py=python3
  export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
else
  device=cpu n=50000 per_class=1000 texts=1000 images=128 batch=64 image_batch=64
  py=$(bash benches/venv.sh)
fi
# The packed binaries are the cuda build: they need the driver, so only where a GPU answered.
if [ "$device" = cuda ] && [ -f "$pack/workloads.xz" ]; then
  xz -dc "$pack/workloads.xz" >"$work/workloads"
  xz -dc "$pack/tests.xz" >"$work/tests"
  chmod +x "$work/workloads" "$work/tests"
  bin=$work/workloads tests=$work/tests
  mobilenet_dir=$pack/models/mobilenet_v2 minilm_src=$pack/models/minilm
else
  bin=$(executable workloads bench --locked --bench workloads) tests=""
  mobilenet_dir=$(bash datasets/models/fetch-mobilenet.sh)
  minilm_src=$work/minilm-src
  real=$(bash datasets/models/fetch-minilm.sh)
  mkdir -p "$minilm_src"
  cp "$real"/{config.json,tokenizer.json,sentence_bert_config.json} "$minilm_src/"
  safetensors_header "$real/model.safetensors" "$minilm_src/header.json"
fi
export PYTHONUNBUFFERED=1
step() { echo "== $* ($(date +%T))" | tee -a "$out/steps.log"; }

step "1. CUDA cross-check tests"
if [ -n "$tests" ] && [ "$device" = cuda ]; then
  POISONGATE_MOBILENET=$mobilenet_dir POISONGATE_MINILM=$work/minilm \
    "$py" benches/gpu_torch.py standin "$minilm_src" "$work/minilm"
  POISONGATE_MOBILENET=$mobilenet_dir POISONGATE_MINILM=$work/minilm \
    "$tests" cuda_ --test-threads 1 >"$out/tests.log" 2>&1 || true
  grep '^test result' "$out/tests.log" | tail -1 >"$work/tests.result" || echo "did not finish" >"$work/tests.result"
else
  "$py" benches/gpu_torch.py standin "$minilm_src" "$work/minilm"
  echo "not run: no GPU or no cuda build" >"$work/tests.result"
fi

step "2. k-NN $n x 512"
"$py" benches/gpu_torch.py data "$n" 512 "$work/x.npy"
"$bin" knn "$device" "$work/x.npy" 10 "$work/nn.npy" >"$work/knn-ours.out" 2>"$out/knn-ours.log"
"$py" benches/gpu_torch.py knn "$work/x.npy" 10 "$work/nn.npy" "$device" >"$work/knn-torch.out" 2>"$out/knn-torch.log"
rm -f "$work/x.npy"

step "3. probe, $((per_class * 10)) images"
"$bin" cli generate images "$work/images" --rows "$per_class" --classes 10 --image-size 28x28 >/dev/null
"$bin" cli scan "$work/images" --embedder probe --device "$device" --epochs 6 --format json -q \
  >"$work/probe-ours.json" 2>"$out/probe-ours.log" || [ $? = 1 ]
"$py" benches/probe_torch.py "$work/images" --epochs 6 --device "$device" >"$work/probe-torch.out" 2>"$out/probe-torch.log"

step "4. MiniLM ($texts texts) and MobileNetV2 ($images images)"
"$py" - "$texts" "$work/texts.json" <<'EOF'
import json, sys
import numpy as np
words = ("the model data a of training is sample label image with for new free offer click "
         "meeting today report account please update your we will send money project team "
         "results week network price order contact information service time research").split()
rng = np.random.default_rng(2)
texts = [" ".join(rng.choice(words, rng.integers(8, 200))) for _ in range(int(sys.argv[1]))]
json.dump(texts, open(sys.argv[2], "w"))
EOF
POISONGATE_UNPINNED=1 "$bin" minilm "$device" "$work/texts.json" "$batch" "$work/minilm-ours.npy" "$work/minilm" \
  >"$work/minilm-ours.out" 2>"$out/minilm-ours.log"
"$py" benches/embedders_torch.py minilm "$work/texts.json" "$batch" "$work/minilm-torch.npy" "$work/minilm" "$device" \
  >"$work/minilm-torch.out" 2>"$out/minilm-torch.log"
"$py" - "$mobilenet_dir/test-images" "$images" "$work/images.json" <<'EOF'
import json, os, sys
photos = sorted(os.path.join(sys.argv[1], f) for f in os.listdir(sys.argv[1]))
json.dump([photos[i % len(photos)] for i in range(int(sys.argv[2]))], open(sys.argv[3], "w"))
EOF
"$bin" mobilenet "$device" "$work/images.json" "$image_batch" "$work/mobilenet-ours.npy" "$work/input.npy" "$mobilenet_dir" \
  >"$work/mobilenet-ours.out" 2>"$out/mobilenet-ours.log"
"$py" benches/embedders_torch.py mobilenet "$work/images.json" "$image_batch" "$work/mobilenet-torch.npy" "$work/input.npy" "$mobilenet_dir" "$device" \
  >"$work/mobilenet-torch.out" 2>"$out/mobilenet-torch.log"

step "table"
"$py" - "$work" "$device" <<'EOF' | tee "$out/table.md"
import json, re, sys
import numpy as np
work, device = sys.argv[1:]

def kv(name):
    return dict(re.findall(r"(\w+)=([\w.]+)", open(f"{work}/{name}").read()))

def cos(a, b):
    a, b = np.load(a).astype(np.float64), np.load(b).astype(np.float64)
    c = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return c.min()

print(f"| check ({device}) | size | poisongate | PyTorch | speed ratio | agreement |")
print("|---|---|---|---|---|---|")
print(f"| CUDA cross-check tests | | {open(f'{work}/tests.result').read().strip()} | | | |")
ko, kt = kv("knn-ours.out"), kv("knn-torch.out")
print(f"| exact k-NN, k 10 (torch.cdist + topk) | {kt['rows']} x {kt['dim']} | {float(ko['seconds']):.2f} s "
      f"| {float(kt['torch_seconds']):.2f} s | {float(kt['torch_seconds']) / float(ko['seconds']):.2f} "
      f"| recall on {kt['sampled']} sampled queries: ours {kt['recall_ours']}, torch {kt['recall_torch']} |")
pr = json.load(open(f"{work}/probe-ours.json"))["detection"]
view = next(v for v in pr["views"] if v["view"] == "probe")
pt = kv("probe-torch.out")
print(f"| probe training, {view['training']['epochs']} epochs | {pr['rows_used']} x 28x28 | {view['seconds']:.2f} s "
      f"| {float(pt['seconds']):.2f} s | {float(pt['seconds']) / view['seconds']:.2f} "
      f"| train accuracy ours {view['training']['accuracy'][-1]:.4f}, torch {pt['train_accuracy']} |")
for model, python, unit in [("minilm", "sentence-transformers", "texts"), ("mobilenet", "torchvision", "images")]:
    o, t = kv(f"{model}-ours.out"), kv(f"{model}-torch.out")
    ro, rt = int(o["items"]) / float(o["seconds"]), int(t["items"]) / float(t["seconds"])
    extra = ""
    if model == "mobilenet":
        same = np.load(f"{work}/input.npy.torch.npy")
        np.save(f"{work}/same-ours.npy", np.load(f"{work}/mobilenet-ours.npy")[: len(same)])
        extra = f"; same input tensor {cos(f'{work}/same-ours.npy', f'{work}/input.npy.torch.npy'):.6f}"
    print(f"| {model} vs {python}, batch {o['batch']} | {o['items']} {unit} | {ro:.1f} {unit}/s | {rt:.1f} {unit}/s "
          f"| {ro / rt:.2f} | least cosine {cos(f'{work}/{model}-ours.npy', f'{work}/{model}-torch.npy'):.6f}{extra} |")
EOF
echo "logs and table: $out"
