"""Trains a small model on a poisoned set, the way a user's training run would, and saves its
penultimate activations: the input that spectral signatures, activation clustering and
`poisongate scan --embeddings` are meant for.

Reads DIR/raw.npy (the raw view that `poisongate bench --out DIR` writes: the poisoned
features or pixels, in the rows of DIR/samples.csv) and the planted labels from
DIR/samples.csv; trains scikit-learn's MLPClassifier (hidden layers 128 and 64, ReLU, Adam,
`--epochs` epochs, seeded) on every row; writes the 64 activations of the second hidden layer
as DIR/activations.npy (float32, one row per dataset row: `--rows`, default the last row of
samples.csv plus one; a row that samples.csv leaves out, one the tool did not use, e.g. for a missing
value, gets zeros) and prints one line: rows, training accuracy, and seconds.
Usage: python3 activations.py DIR [--rows N] [--epochs 30] [--seed 0]
Needs numpy and scikit-learn (benches/quality.sh installs them into its venv).
"""
import argparse
import csv
import os
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rows", type=int, default=None)
    args = ap.parse_args()
    x = np.load(os.path.join(args.dir, "raw.npy")).astype(np.float64)
    with open(os.path.join(args.dir, "samples.csv"), newline="") as f:
        samples = list(csv.DictReader(f))
    labels = [row["label"] for row in samples]
    rows = [int(row["row"]) for row in samples]
    if len(labels) != len(x):
        raise SystemExit(f"{args.dir}: {len(x)} rows in raw.npy but {len(labels)} in samples.csv")
    # Standardise as any training run would (the raw view of images is [0, 1] pixels).
    sd = x.std(axis=0)
    sd[sd == 0] = 1.0
    x = (x - x.mean(axis=0)) / sd
    start = time.time()
    model = MLPClassifier(hidden_layer_sizes=(128, 64), max_iter=args.epochs,
                          random_state=args.seed, batch_size=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, labels)
    h = x
    for w, b in zip(model.coefs_[:2], model.intercepts_[:2]):
        h = np.maximum(h @ w + b, 0.0)
    out = np.zeros((args.rows or max(rows) + 1, h.shape[1]), dtype=np.float32)
    out[rows] = h
    np.save(os.path.join(args.dir, "activations.npy"), out)
    print(f"{len(x)} rows, training accuracy {model.score(x, labels):.3f}, "
          f"{time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
