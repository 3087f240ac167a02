#!/usr/bin/env bash
# Makes (once) the Python venv the side-by-side benchmarks run what users would run instead:
# PyTorch, torchvision, sentence-transformers, scikit-learn and ART, pinned, from PyPI only.
# PyPI's Linux torch wheel is the CUDA build (it pulls NVIDIA's runtime wheels, a few GiB);
# on a machine without a GPU it runs on the CPU. Prints the venv's python.
# Usage: py=$(bash benches/venv.sh)   (venv at $BENCH_VENV, default ~/.cache/poisongate-bench-venv)
set -euo pipefail
venv=${BENCH_VENV:-$HOME/.cache/poisongate-bench-venv}
if ! "$venv/bin/python" -c "import torch, torchvision, sentence_transformers, sklearn, art" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip >&2
  "$venv/bin/pip" install --quiet numpy==2.4.6 scikit-learn==1.9.1 pillow \
    torch==2.15.0 torchvision==0.29.2 sentence-transformers==6.3.0 \
    adversarial-robustness-toolbox==1.20.1 >&2
fi
echo "$venv/bin/python"
