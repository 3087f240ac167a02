"""The pretrained embedders as users run them in Python, for benches/embedders.sh.

minilm TEXTS.json BATCH OUT.npy MODEL_DIR [DEVICE]: sentence-transformers' `encode` (batch_size=BATCH,
normalize_embeddings=True, max_seq_length from the folder's sentence_bert_config.json) of all-MiniLM-L6-v2 from the same folder poisongate reads
(datasets/models/fetch-minilm.sh), after one warm-up batch; writes the vectors.

mobilenet IMAGES.json BATCH OUT.npy INPUT.npy MODEL_DIR [DEVICE]: torchvision's mobilenet_v2 with the
same weights file, on the images decoded by Pillow (not timed), preprocessed by torchvision's
transform for those weights (Resize 256, CenterCrop 224, ToTensor, Normalize) and embedded in
batches of BATCH (features, global average pool: 1280 values), after one warm-up batch; writes
the features, and INPUT.npy's tensor (poisongate's preprocessed first batch) run through the
network to INPUT.npy's name with `.torch.npy` appended, for the same-input comparison.

DEVICE is `cpu` (the default) or `cuda`. Both print
`items=N batch=B threads=T device=D seconds=S` (S: the timed part, results back on the host).
"""
import json
import sys
import time

import numpy as np
import torch


def report(n, batch, device, seconds):
    print(f"items={n} batch={batch} threads={torch.get_num_threads()} device={device} "
          f"seconds={seconds:.3f}")


def minilm(texts_path, batch, out, model_dir, device):
    from sentence_transformers import SentenceTransformer

    texts = json.load(open(texts_path))
    model = SentenceTransformer(model_dir, device=device)
    # The folder has no modules.json, so sentence-transformers builds the mean-pooling model
    # itself and would keep the tokenizer's 512 tokens; the published model (and poisongate)
    # cut at sentence_bert_config.json's max_seq_length, 256.
    model.max_seq_length = json.load(open(f"{model_dir}/sentence_bert_config.json"))["max_seq_length"]
    model.encode(texts[:batch], batch_size=batch)
    start = time.perf_counter()
    vectors = model.encode(texts, batch_size=batch, normalize_embeddings=True)
    seconds = time.perf_counter() - start
    np.save(out, vectors.astype(np.float32))
    report(len(texts), batch, device, seconds)


def mobilenet(images_path, batch, out, input_path, model_dir, device):
    from PIL import Image
    from torchvision import transforms
    from torchvision.models import mobilenet_v2

    net = mobilenet_v2()
    net.load_state_dict(torch.load(f"{model_dir}/mobilenet_v2-b0353104.pth", map_location="cpu"))
    net.eval().to(device)

    def features(x):
        return torch.nn.functional.adaptive_avg_pool2d(net.features(x), 1).flatten(1)

    transform = transforms.Compose([
        transforms.Resize(256),
        transforms.CenterCrop(224),
        transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    images = []
    for p in json.load(open(images_path)):
        with Image.open(p) as im:
            images.append(im.convert("RGB"))
    with torch.inference_mode():
        same = features(torch.from_numpy(np.load(input_path)).to(device))
        np.save(input_path + ".torch.npy", same.cpu().numpy())
        features(torch.stack([transform(im) for im in images[:batch]]).to(device)).cpu()
        start = time.perf_counter()
        parts = [
            features(torch.stack([transform(im) for im in images[i:i + batch]]).to(device)).cpu()
            for i in range(0, len(images), batch)
        ]
        seconds = time.perf_counter() - start
    np.save(out, torch.cat(parts).numpy())
    report(len(images), batch, device, seconds)


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    if cmd == "minilm":
        minilm(args[0], int(args[1]), args[2], args[3], args[4] if len(args) > 4 else "cpu")
    elif cmd == "mobilenet":
        mobilenet(args[0], int(args[1]), args[2], args[3], args[4], args[5] if len(args) > 5 else "cpu")
    else:
        raise SystemExit(f"unknown command {cmd}")
