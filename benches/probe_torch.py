"""poisongate's image probe rebuilt in PyTorch (CPU), trained the same way, for benches/probe.sh.

The network of src/embed/probe.rs for images of at most 32 px a side: conv 3x3 (16, padding 1),
ReLU, max-pool 2; conv 3x3 (32), ReLU, max-pool 2; linear to 64, ReLU (the embedding); a linear
head. PyTorch's default initialisation, AdamW (lr 1e-3, weight decay 1e-4), batch 64, the
same epoch rule (enough epochs for about 800 steps, 3 to 30), a reshuffle every epoch, then
the 64 features of every image in batches of 1,024.

Reads an image folder ROOT/<class>/<image>.png (decoding is not timed) and prints one line:
`images=N epochs=E seconds=S train_accuracy=A threads=T` (seconds: training plus embedding).
Usage: python3 probe_torch.py ROOT [--epochs E] [--seed 0] [--device cpu|cuda]
"""
import argparse
import os
import time

import numpy as np
import torch
from PIL import Image
from torch import nn

TARGET_STEPS, BATCH = 800, 64


def load(root):
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    images, labels = [], []
    for label, name in enumerate(classes):
        folder = os.path.join(root, name)
        for f in sorted(os.listdir(folder)):
            with Image.open(os.path.join(folder, f)) as im:
                images.append(np.asarray(im.convert("L"), dtype=np.uint8))
            labels.append(label)
    x = torch.from_numpy(np.stack(images)).float().div_(255.0).unsqueeze(1)
    return x, torch.tensor(labels), len(classes)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    dev = torch.device(args.device)
    torch.manual_seed(args.seed)
    x, y, classes = load(args.root)
    n, _, h, w = x.shape
    if max(h, w) > 32:
        raise SystemExit(f"{args.root}: {h}x{w} images; this rebuild covers at most 32 px a side")
    epochs = args.epochs or min(max(-(-TARGET_STEPS * BATCH // n), 3), 30)
    features = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * (h // 4) * (w // 4), 64), nn.ReLU(),
    )
    head = nn.Linear(64, classes)
    features.to(dev)
    head.to(dev)
    x, y = x.to(dev), y.to(dev)
    params = list(features.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(n, device=dev)
        correct = 0
        for i in range(0, n, BATCH):
            idx = order[i:i + BATCH]
            logits = head(features(x[idx]))
            loss = loss_fn(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            correct += (logits.argmax(1) == y[idx]).sum()
    with torch.no_grad():
        emb = torch.cat([features(x[i:i + 1024]) for i in range(0, n, 1024)]).cpu()
    seconds = time.perf_counter() - start
    assert emb.shape == (n, 64) and torch.isfinite(emb).all()
    print(f"device={args.device} images={n} epochs={epochs} seconds={seconds:.2f} "
          f"train_accuracy={int(correct) / n:.4f} threads={torch.get_num_threads()}")


if __name__ == "__main__":
    main()
