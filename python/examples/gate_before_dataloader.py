"""A pre-training gate: screen a PyTorch Dataset with poisongate before a DataLoader is built.

    python examples/gate_before_dataloader.py            # the bundled digits: the gate passes
    python examples/gate_before_dataloader.py --poison   # a BadNets trigger in 5 % of them

The dataset's samples go to poisongate as one feature table (one row per sample, in index
order) with their labels; if the gate fails, training does not start and the suspected indices
are printed. Works with any map-style dataset (``__len__`` and ``__getitem__`` returning
``(features, label)``), torch's or not.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa

import poisongate

DIGITS = Path(__file__).resolve().parents[2] / "datasets" / "digits" / "digits.csv"


def screen(dataset, **options) -> poisongate.Report:
    """Runs the gate on a map-style dataset of (features, label) pairs."""
    features, labels = [], []
    for i in range(len(dataset)):
        x, y = dataset[i]
        features.append(np.asarray(x, dtype=np.float32).ravel())
        labels.append(int(y))
    matrix = np.stack(features)
    table = pa.table({f"f{j}": matrix[:, j] for j in range(matrix.shape[1])})
    return poisongate.scan(table, labels=np.asarray(labels), **options)


def digits_dataset(poison: bool):
    """The bundled digits as a torch Dataset (a plain one without torch)."""
    data = np.loadtxt(DIGITS, delimiter=",", skiprows=1, dtype=np.float32)
    x, y = data[:, :-1], data[:, -1].astype(np.int64)
    if poison:
        # BadNets: a bright 2x2 corner patch (pixels px00, px01, px10, px11; values run 0-16)
        # on 5 % of the samples, relabelled as 0.
        rng = np.random.default_rng(1)
        chosen = rng.choice(len(y), size=len(y) // 20, replace=False)
        x[np.ix_(chosen, [0, 1, 8, 9])] = 16
        y[chosen] = 0
    try:
        import torch
        from torch.utils.data import TensorDataset

        return TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    except ImportError:

        class Digits:
            def __len__(self):
                return len(y)

            def __getitem__(self, i):
                return x[i], y[i]

        return Digits()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--poison", action="store_true", help="plant a BadNets trigger")
    args = parser.parse_args()
    dataset = digits_dataset(args.poison)
    report = screen(dataset, strict=False)
    if not report.passed:
        suspected = np.flatnonzero(report.flagged)
        print(f"gate failed: {len(suspected)} samples suspected, e.g. {suspected[:10].tolist()}")
        for reason in report.data["gate"]["reasons"]:
            print(" ", reason)
        return 1
    print(f"gate passed: {len(report.flagged)} samples, training can start")
    try:
        from torch.utils.data import DataLoader

        loader = DataLoader(dataset, batch_size=64, shuffle=True)
        print(f"DataLoader ready: {len(loader)} batches")
    except ImportError:
        print("(torch is not installed: no DataLoader built)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
