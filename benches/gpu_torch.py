"""The Python side of benches/gpu.sh (NumPy and PyTorch, as the GPU machine has them).

data N D OUT.npy: N float32 rows of D values, seeded: 1,000 Gaussian groups (centres N(0, 1),
  noise N(0, 0.5) per value), the kind of clustered vectors a network's embeddings are.
knn DATA.npy K OURS.npy DEVICE: what a user writes instead of poisongate's search,
  torch.cdist + topk over blocks of 1,024 queries on DEVICE (K + 1 kept, the query itself
  dropped), timed after one warm-up block, results on the host. Then, on 200 seeded sampled
  queries, both answers (poisongate's OURS.npy and torch's) against exact float64 distances
  computed on the CPU: `recall` is the share of returned rows whose distance is within a
  float32 rounding margin of the true k-th distance. Prints one line of key=value.
standin MODEL_DIR OUT_DIR: a sentence-transformer folder with MODEL_DIR's config, tokenizer and
  tensor names and shapes (MODEL_DIR/header.json, the safetensors header of the real
  weights) but seeded random values (N(0, 0.05); layer-norm weights 1, biases 0), for
  timing and cross-checking where the real weights cannot travel.
"""
import json
import os
import shutil
import sys
import time

import numpy as np
import torch


def data(n, d, out):
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((1000, d), dtype=np.float32)
    x = np.lib.format.open_memmap(out, mode="w+", dtype=np.float32, shape=(n, d))
    for start in range(0, n, 65536):
        m = min(65536, n - start)
        g = rng.integers(0, 1000, m)
        x[start:start + m] = centres[g] + 0.5 * rng.standard_normal((m, d), dtype=np.float32)
    x.flush()


def knn(path, k, ours_path, device):
    x = np.load(path, mmap_mode="r")
    n, d = x.shape
    xt = torch.from_numpy(np.array(x)).to(device)
    block = 1024

    def search(lo, hi):
        dist = torch.cdist(xt[lo:hi], xt)
        return dist.topk(k + 1, largest=False).indices

    search(0, min(block, n)).cpu()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    parts = [search(i, min(i + block, n)).cpu() for i in range(0, n, block)]
    seconds = time.perf_counter() - start
    found = torch.cat(parts).numpy()
    # Drop the query itself (wherever ties put it) and keep k.
    theirs = np.array([[j for j in row if j != i][:k] for i, row in enumerate(found)])
    ours = np.load(ours_path)
    assert ours.shape == (n, k), ours.shape

    rng = np.random.default_rng(1)
    sample = rng.choice(n, size=min(200, n), replace=False)
    x64 = torch.from_numpy(np.array(x)).double()
    recall = {"ours": 0, "torch": 0}
    for q in sample:
        dq = ((x64 - x64[q]) ** 2).sum(1)
        dq[q] = float("inf")
        kth = dq.kthvalue(k).values.item()
        margin = 1e-5 * (kth + (x64[q] ** 2).sum().item())
        for name, rows in (("ours", ours[q]), ("torch", theirs[q])):
            recall[name] += int((dq[torch.from_numpy(rows.astype(np.int64))] <= kth + margin).sum())
    total = len(sample) * k
    print(f"rows={n} dim={d} k={k} device={device} torch_seconds={seconds:.3f} "
          f"recall_ours={recall['ours'] / total:.4f} recall_torch={recall['torch'] / total:.4f} "
          f"sampled={len(sample)}")


def standin(model_dir, out_dir):
    from safetensors.torch import save_file

    header = json.load(open(f"{model_dir}/header.json"))
    gen = torch.Generator().manual_seed(0)
    tensors = {}
    for name, meta in sorted(header.items()):
        if name == "__metadata__":
            continue
        shape = meta["shape"]
        if meta["dtype"] == "I64":  # position ids
            tensors[name] = torch.arange(shape[-1]).expand(shape).contiguous()
            continue
        if "LayerNorm.weight" in name:
            t = torch.ones(shape)
        elif name.endswith("bias"):
            t = torch.zeros(shape)
        else:
            t = 0.05 * torch.randn(shape, generator=gen)
        tensors[name] = t.float().contiguous()
    os.makedirs(out_dir, exist_ok=True)
    for f in ("config.json", "tokenizer.json", "sentence_bert_config.json"):
        shutil.copy(f"{model_dir}/{f}", f"{out_dir}/{f}")
    save_file(tensors, f"{out_dir}/model.safetensors")


if __name__ == "__main__":
    cmd, *a = sys.argv[1:]
    if cmd == "data":
        data(int(a[0]), int(a[1]), a[2])
    elif cmd == "knn":
        knn(a[0], int(a[1]), a[2], a[3])
    elif cmd == "standin":
        standin(a[0], a[1])
    else:
        raise SystemExit(f"unknown command {cmd}")
