"""The Python package on 50,000 x 128 embeddings: its call against the same scan through the
command line, and against what a Python user would run instead (ART's spectral signatures and
activation clustering, cleanlab's label issues on k-NN predicted probabilities), on the same
arrays. Run by benches/python_api.sh, which prints the table.

Usage: python python_api.py make DIR            # the data: DIR/emb.npy, DIR/labels.parquet, DIR/truth.npy
       python python_api.py poisongate DIR      # poisongate.scan on the arrays in memory
       python python_api.py art DIR | cleanlab DIR
Each run prints one line `seconds=S flagged=F precision=P recall=R f1=F1` (seconds: the
detection call alone, after the arrays are loaded).
"""

import sys
import time
from pathlib import Path

import numpy as np

N, D, CLASSES, RATE, SEED = 50_000, 128, 10, 0.05, 0


def make(out: Path) -> None:
    """Ten Gaussian classes in 128-d (a model's penultimate layer, roughly); 5 % of the rows
    get a trigger direction added and the target label 0, as a learned backdoor looks in the
    activations."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(SEED)
    centres = rng.normal(0, 1.0, (CLASSES, D)) * 3
    y = rng.integers(0, CLASSES, N)
    x = centres[y] + rng.normal(0, 1.0, (N, D))
    poisoned = np.zeros(N, dtype=bool)
    chosen = rng.choice(np.flatnonzero(y != 0), size=int(RATE * N), replace=False)
    trigger = rng.normal(0, 1.0, D)
    trigger *= 4 / np.linalg.norm(trigger)
    x[chosen] = centres[0] + rng.normal(0, 1.0, (len(chosen), D)) + trigger * 2
    y[chosen] = 0
    poisoned[chosen] = True
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "emb.npy", x.astype(np.float32))
    np.save(out / "truth.npy", poisoned)
    pq.write_table(pa.table({"label": y.astype(np.int64)}), out / "labels.parquet")


def score(flagged: np.ndarray, truth: np.ndarray) -> str:
    tp = int((flagged & truth).sum())
    p = tp / max(int(flagged.sum()), 1)
    r = tp / max(int(truth.sum()), 1)
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return f"flagged={int(flagged.sum())} precision={p:.3f} recall={r:.3f} f1={f1:.3f}"


def main() -> None:
    what, data = sys.argv[1], Path(sys.argv[2])
    if what == "make":
        make(data)
        return
    import pyarrow.parquet as pq

    x = np.load(data / "emb.npy")
    y = pq.read_table(data / "labels.parquet").column("label").to_numpy()
    truth = np.load(data / "truth.npy")
    start = time.perf_counter()
    if what == "poisongate":
        import poisongate

        report = poisongate.scan(
            pq.read_table(data / "labels.parquet"), embeddings=x, embedder="precomputed"
        )
        flagged = report.flagged
    elif what == "art":
        from art.defences.detector.poison.activation_defence import cluster_activations
        from art.defences.detector.poison.clustering_analyzer import ClusteringAnalyzer
        from art.defences.detector.poison.spectral_signature_defense import (
            SpectralSignatureDefense,
        )

        flagged = np.zeros(N, dtype=bool)
        rows = [np.flatnonzero(y == c) for c in range(CLASSES)]
        for r in rows:
            s = SpectralSignatureDefense.spectral_signature_scores(x[r]).ravel()
            flagged[r[s >= np.quantile(s, 1 - 1.5 * 0.33)]] = True
        spectral = flagged.copy()
        clusters, _ = cluster_activations(
            [x[r] for r in rows], nb_clusters=2, nb_dims=10, reduce="FastICA"
        )
        clean, _, _ = ClusteringAnalyzer().analyze_by_size(clusters)
        clustering = np.zeros(N, dtype=bool)
        for r, c in zip(rows, clean):
            clustering[r[np.asarray(c) == 0]] = True
        flagged = spectral  # reported: spectral signatures; clustering below
        seconds = time.perf_counter() - start
        print(f"seconds={seconds:.2f} {score(spectral, truth)} "
              f"clustering_{score(clustering, truth).replace(' ', ' clustering_')}")
        return
    elif what == "cleanlab":
        from cleanlab.filter import find_label_issues
        from sklearn.model_selection import cross_val_predict
        from sklearn.neighbors import KNeighborsClassifier

        probs = cross_val_predict(
            KNeighborsClassifier(n_neighbors=10), x, y, cv=5, method="predict_proba"
        )
        flagged = find_label_issues(y, probs)
    else:
        raise SystemExit(f"unknown run {what}")
    seconds = time.perf_counter() - start
    print(f"seconds={seconds:.2f} {score(np.asarray(flagged, dtype=bool), truth)}")


if __name__ == "__main__":
    main()
