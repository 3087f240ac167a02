"""What a user would run instead of `poisongate scan` on an image folder, for benches/scan.sh.

Decode the PNGs (Pillow); train scikit-learn's MLPClassifier (hidden layers 128 and 64, ReLU,
Adam, 10 epochs, seeded) on the standardised pixels; take the 64 activations of the second
hidden layer; then, per class, ART's spectral signatures (its `spectral_signature_scores`, cut
at ART's default quantile 1 - 1.5 x 0.33), ART's activation clustering (`cluster_activations`:
FastICA to 10 dimensions, 2-means; `ClusteringAnalyzer.analyze_by_size`), and the share of each
sample's 10 nearest neighbours (scikit-learn, exact, on the activations) that carry its label.

Prints one line: `images=N seconds=S decode=.. train=.. spectral=.. clustering=.. knn=..
train_accuracy=A flagged_spectral=.. flagged_clustering=.. knn_disagree=..` (seconds: the
whole run after start-up, decoding included).
Usage: python3 pipeline_python.py ROOT [--epochs 10] [--seed 0]
"""
import argparse
import os
import time
import warnings

import numpy as np
from PIL import Image
from sklearn.exceptions import ConvergenceWarning
from sklearn.neighbors import NearestNeighbors
from sklearn.neural_network import MLPClassifier

from art.defences.detector.poison.activation_defence import cluster_activations
from art.defences.detector.poison.clustering_analyzer import ClusteringAnalyzer
from art.defences.detector.poison.spectral_signature_defense import SpectralSignatureDefense


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    times = {}
    t = start = time.perf_counter()

    classes = sorted(d for d in os.listdir(args.root) if os.path.isdir(os.path.join(args.root, d)))
    pixels, labels = [], []
    for label, name in enumerate(classes):
        folder = os.path.join(args.root, name)
        for f in sorted(os.listdir(folder)):
            with Image.open(os.path.join(folder, f)) as im:
                pixels.append(np.asarray(im.convert("L"), dtype=np.float32).ravel() / 255.0)
            labels.append(label)
    x, y = np.stack(pixels), np.array(labels)
    times["decode"], t = time.perf_counter() - t, time.perf_counter()

    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    mlp = MLPClassifier(hidden_layer_sizes=(128, 64), max_iter=args.epochs, random_state=args.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit(x, y)
    accuracy = mlp.score(x, y)
    h = np.maximum(x @ mlp.coefs_[0] + mlp.intercepts_[0], 0)
    act = np.maximum(h @ mlp.coefs_[1] + mlp.intercepts_[1], 0)
    times["train"], t = time.perf_counter() - t, time.perf_counter()

    by_class = [act[y == c] for c in range(len(classes))]
    flagged_spectral = 0
    for feats in by_class:
        score = SpectralSignatureDefense.spectral_signature_scores(feats).ravel()
        flagged_spectral += int((score >= np.quantile(score, 1 - 1.5 * 0.33)).sum())
    times["spectral"], t = time.perf_counter() - t, time.perf_counter()

    clusters, _ = cluster_activations(by_class, nb_clusters=2, nb_dims=10, reduce="FastICA")
    assigned_clean, _, _ = ClusteringAnalyzer().analyze_by_size(clusters)
    flagged_clustering = int(sum((1 - a).sum() for a in assigned_clean))
    times["clustering"], t = time.perf_counter() - t, time.perf_counter()

    _, idx = NearestNeighbors(n_neighbors=11).fit(act).kneighbors(act)
    agree = (y[idx[:, 1:]] == y[:, None]).mean(1)
    times["knn"] = time.perf_counter() - t

    total = time.perf_counter() - start
    stages = " ".join(f"{k}={v:.2f}" for k, v in times.items())
    print(f"images={len(y)} seconds={total:.2f} {stages} train_accuracy={accuracy:.4f} "
          f"flagged_spectral={flagged_spectral} flagged_clustering={flagged_clustering} "
          f"knn_disagree={int((agree < 0.5).sum())}")


if __name__ == "__main__":
    main()
