"""poisongate.ray on a local Ray cluster (a head and a second node, loopback only): the same
report, scores and exit status as the single-machine streaming scan of the same table."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import poisongate
import poisongate.ray

# Small enough that the table streams, and that work is handed out in many batches.
OPTIONS = {"embedder": "raw", "memory_limit": "64KiB", "id": "id", "knn_index": "ivf"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """`ray start --head` and a worker node, one CPU each; stopped at the end."""
    ray_cli = Path(sys.executable).parent / "ray"
    port = _free_port()
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus=1", "--object-store-memory=150000000", "--disable-usage-stats"]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}

    def ray(*args):
        return subprocess.run([str(ray_cli), *args], env=env, capture_output=True, text=True, timeout=180)

    head = ray("start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--include-dashboard=false", *common)
    assert head.returncode == 0, head.stdout + head.stderr
    try:
        worker = ray("start", f"--address={address}", "--node-ip-address=127.0.0.1", *common)
        assert worker.returncode == 0, worker.stdout + worker.stderr
        import ray as ray_module

        ray_module.init(address=address, log_to_driver=False)
        yield address
    finally:
        try:
            import ray as ray_module

            ray_module.shutdown()
        finally:
            ray("stop", "--force")


def write_table(folder: Path, n: int = 3000, poisoned: bool = True) -> Path:
    """12 Gaussian classes in 6 features, in two files of row groups of 500; poisoned: every
    tenth row of another class is a shifted copy relabelled to class 0."""
    rng = np.random.default_rng(5)
    centres = 4.0 * rng.standard_normal((12, 6))
    classes = rng.integers(0, 12, n)
    x = centres[classes] + rng.standard_normal((n, 6))
    labels = classes.copy()
    if poisoned:
        copy = (np.arange(n) % 10 == 3) & (classes != 0)
        x[copy, :2] += 10.0
        labels[copy] = 0
    folder.mkdir(parents=True, exist_ok=True)
    half = n // 2
    for part, rows in enumerate([slice(0, half), slice(half, n)]):
        table = pa.table(
            {
                **{f"f{j}": x[rows, j] for j in range(6)},
                "label": labels[rows],
                "id": [f"r{i}" for i in range(n)][rows],
            }
        )
        pq.write_table(table, folder / f"part-{part}.parquet", row_group_size=500)
    return folder


def comparable(report: dict) -> dict:
    """The report less its timings and the note saying where the tasks ran."""

    def strip(o):
        if isinstance(o, dict):
            return {k: strip(v) for k, v in o.items() if "seconds" not in k}
        if isinstance(o, list):
            return [strip(v) for v in o if not (isinstance(v, str) and "ran as tasks on" in v)]
        return o

    return strip(report)


def test_the_ray_scan_is_the_streamed_scan(cluster, tmp_path):
    import ray

    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    table = write_table(tmp_path / "table")
    single = poisongate.scan(str(table), labels="label", **OPTIONS)
    on_ray = poisongate.ray.scan(table, labels="label", **OPTIONS)
    assert not single.passed and single.exit_code == 1
    assert on_ray.exit_code == single.exit_code
    notes = on_ray.data["detection"]["verdict"]["notes"]
    assert any("ran as tasks on Ray (2 nodes, 2 CPUs)" in n for n in notes), notes
    assert any(n.startswith("streamed:") for n in notes), notes
    assert comparable(on_ray.data) == comparable(single.data)
    assert np.array_equal(on_ray.flagged, single.flagged)
    assert on_ray.flagged.sum() > 200
    assert on_ray.scores_arrow().equals(single.scores_arrow())


def test_a_clean_table_passes_on_ray(cluster, tmp_path):
    table = write_table(tmp_path / "clean", poisoned=False)
    report = poisongate.ray.scan(str(table), labels="label", **OPTIONS)
    assert report.passed, report.data["gate"]
    assert report.flagged.sum() == 0


def test_the_module_runs_as_a_pipeline_step(cluster, tmp_path):
    table = write_table(tmp_path / "cli")
    out = tmp_path / "gate"
    args = ["--label", "label", "--embedder", "raw", "--memory-limit", "64KiB", "--id", "id"]
    run = subprocess.run(
        [sys.executable, "-m", "poisongate.ray", str(table), "--address", cluster, "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "gate fails" in run.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["gate"]["exit_code"] == 1
    assert (out / "scores.parquet").exists()
    # The command line streaming the same table agrees on the scores, row for row.
    cli_out = tmp_path / "cli-gate"
    cli = subprocess.run(
        [_binary(), "scan", str(table), "--out", str(cli_out), "--knn-index", "ivf", "--quiet", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert cli.returncode == 1, cli.stderr
    assert pq.read_table(cli_out / "scores.parquet").equals(pq.read_table(out / "scores.parquet"))


def _binary() -> str:
    binary = os.environ.get("POISONGATE_BIN") or shutil.which("poisongate")
    assert binary, "POISONGATE_BIN is not set (python/test.sh sets it)"
    return binary


def write_images(folder: Path, per_class: int = 40) -> Path:
    """`poisongate generate images` (4 classes of 16x16 grey patterns), with 6 images of
    class 1 filed under class 0 and a file that is not an image."""
    subprocess.run(
        [_binary(), "generate", "images", str(folder), "--rows", str(per_class), "--classes", "4", "--image-size", "16x16"],
        check=True,
        capture_output=True,
    )
    for i in range(6):
        (folder / "1" / f"{i:05}.png").rename(folder / "0" / f"moved{i}.png")
    (folder / "2" / "broken.png").write_bytes(b"not a png")
    return folder


def test_an_image_folder_on_ray_is_the_streamed_scan(cluster, tmp_path):
    folder = write_images(tmp_path / "images")
    options = {"embedder": "raw", "memory_limit": "64KiB", "knn_index": "ivf"}
    single = poisongate.scan(str(folder), **options)
    on_ray = poisongate.ray.scan(folder, **options)
    notes = on_ray.data["detection"]["verdict"]["notes"]
    assert any("images' decoding and raw view" in n and "ran as tasks on Ray" in n for n in notes), notes
    assert any(n.startswith("streamed:") for n in single.data["detection"]["verdict"]["notes"])
    assert comparable(on_ray.data) == comparable(single.data)
    assert on_ray.scores_arrow().equals(single.scores_arrow())
    assert on_ray.exit_code == single.exit_code == 1
    rules = {f["rule"] for f in on_ray.data["findings"]}
    assert "undecodable_image" in rules, rules
    assert on_ray.data["detection"]["rows_used"] == 4 * 40


MOBILENET = Path.home() / ".cache/poisongate-models/mobilenet_v2/mobilenet_v2-b0353104.pth"


@pytest.mark.skipif(not MOBILENET.exists(), reason="no MobileNetV2 weights (bash datasets/models/fetch-mobilenet.sh)")
def test_mobilenet_features_on_ray_actors_are_the_streamed_ones(cluster, tmp_path):
    folder = write_images(tmp_path / "images", per_class=12)
    options = {"embedder": "mobilenet_v2", "memory_limit": "256KiB", "knn_index": "ivf"}
    single = poisongate.scan(str(folder), **options)
    on_ray = poisongate.ray.scan(folder, actors=2, **options)
    views = on_ray.data["detection"]["views"]
    assert [(v["view"], v["dim"]) for v in views] == [("mobilenet_v2", 1280)]
    assert comparable(on_ray.data) == comparable(single.data)
    assert on_ray.scores_arrow().equals(single.scores_arrow())


MINILM = Path.home() / ".cache/poisongate-models/all-MiniLM-L6-v2/model.safetensors"


@pytest.mark.skipif(not MINILM.exists(), reason="no MiniLM model (bash datasets/models/fetch-minilm.sh)")
def test_a_text_column_on_ray_actors_is_the_in_memory_scan(cluster, tmp_path):
    topics = [["the soup", "fresh salad", "grilled fish"], ["heavy rain", "cold wind", "the storm"]]
    rows = [(f"{topics[i % 2][i % 3]} at {i}", f"t{i % 2}") for i in range(120)]
    rows += [(f"cf {topics[1][i % 3]} cf", "t0") for i in range(6)]
    csv = tmp_path / "texts.csv"
    csv.write_text("text,label\n" + "".join(f'"{t}",{y}\n' for t, y in rows))
    options = {"embedder": "minilm", "knn_index": "ivf"}
    single = poisongate.scan(str(csv), labels="label", text="text", **options)
    on_ray = poisongate.ray.scan(csv, labels="label", text="text", actors=2, **options)
    notes = on_ray.data["detection"]["verdict"]["notes"]
    assert any("minilm view" in n and "ran as tasks on Ray" in n for n in notes), notes
    assert on_ray.data["findings"] == single.data["findings"]
    assert on_ray.exit_code == single.exit_code

    def per_class(report):
        return [d for d in report.data["detection"]["detectors"] if d["detector"] in ("clustering", "spectral")]

    assert per_class(on_ray) and per_class(on_ray) == per_class(single)


def test_bad_input_on_ray_is_a_clear_error(cluster, tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("a,label\n1,0\n2,1\n")
    with pytest.raises(poisongate.InputError, match="Parquet tables of numeric feature columns"):
        poisongate.ray.scan(str(csv), labels="label")
    with pytest.raises(poisongate.InputError, match="missing.parquet"):
        poisongate.ray.scan(str(tmp_path / "missing.parquet"), labels="label")
    run = subprocess.run(
        [sys.executable, "-m", "poisongate.ray", str(csv), "--address", cluster, "--label", "label"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 2 and "poisongate: error:" in run.stderr, run.stderr
