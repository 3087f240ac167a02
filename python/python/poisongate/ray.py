"""poisongate on a Ray cluster: the streaming scan with its heavy steps as Ray work.

::

    import poisongate.ray
    report = poisongate.ray.scan("s3-mounted/train/", labels="y", address="auto")

or, as a pipeline step (exit code 0 passes, 1 fails, 2 bad input or options)::

    python -m poisongate.ray train/ --address auto --label y --out gate/

The driver (this process) reads and validates the Parquet table column by column, as
``poisongate scan`` does when a table does not fit in memory, and keeps the verdict. On the
cluster:

- the raw view is a Ray Data ``map_batches`` over the table's row groups (each worker reads
  its row groups' feature columns with PyArrow and scales them with the driver's centres);
- for an image folder, the driver lists it and reads every header; Ray Data actors decode
  shards of 256 images and compute their view (the pixels, or MobileNetV2's features with
  its network loaded once an actor; ``num_gpus=`` makes them GPU actors);
- for a table with a text column (``text="column"``), the driver reads and validates it in
  memory, and Ray Data actors compute its MiniLM view on shards of 1,024 texts;
- activation clustering, spectral signatures and the shifted-copy test are Ray tasks, one a
  class;
- k-NN label consistency is Ray tasks over the inverted file's partitions (each partition's
  queries against their nearest partitions).

Every worker runs the same engine (``poisongate._poisongate.run_task``), so the report, the
scores and the exit status are those of ``poisongate scan`` streaming the same table with the
same options; only the timings and one note differ. Every node needs this package installed
(``pip install poisongate``) and the table at the same path (a shared file system).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Iterator

from . import Report, UsageError, _option_args
from . import _poisongate as _native

__all__ = ["scan", "RayTasks"]


def _run_task(stage: str, spec: bytes, item: bytes, *shared: bytes) -> bytes:
    """A Ray task: one item of a step, with the shared blobs it reads (Ray resolves their
    object references before the call)."""
    from poisongate import _poisongate

    return _poisongate.run_task(stage, spec, item, list(shared))


def _embed_batch(batch: Any, spec: bytes, columns: list[str]) -> Any:
    """Ray Data ``map_batches``: each row names a row group (file, number, first row); the
    answer has the first row and the raw view's values (little-endian f32, row-major)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from poisongate import _poisongate

    firsts, values = [], []
    files = batch.column("file").to_pylist()
    groups = batch.column("row_group").to_pylist()
    for path, group, first in zip(files, groups, batch.column("first").to_pylist()):
        table = pq.ParquetFile(path).read_row_group(group, columns=columns)
        values.append(_poisongate.embed_shard(spec, table, f"{path} (row group {group})"))
        firsts.append(first)
    return pa.table({"first": pa.array(firsts, pa.int64()), "values": pa.array(values, pa.large_binary())})


class _ShardActor:
    """Ray Data ``map_batches`` actor of an embedding step (``images`` or ``texts``): the
    engine's worker, with its model loaded once per actor. Each row is one shard (its bytes);
    the answer is the shard's view rows (and, for images, each image's status), as bytes."""

    def __init__(self, stage: str, spec: bytes):
        from poisongate import _poisongate

        self._worker = _poisongate.ShardWorker(stage, spec)

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        answers = [self._worker.run(item) for item in batch.column("item").to_pylist()]
        return pa.table({"answer": pa.array(answers, pa.large_binary())})


class RayTasks:
    """Runs the streaming scan's steps on the Ray cluster this process is connected to.

    Args:
        num_cpus: CPUs a task or an image actor reserves (the engine's per-class and k-NN
            tasks are single-threaded; an image actor decodes its shard on every core it
            finds).
        num_gpus: GPUs an image actor reserves (0: CPU actors). A GPU actor computes the
            MobileNetV2 view on its GPU when the package was built with CUDA.
        actors: most image actors at once; None: as many as the cluster's CPUs (or GPUs)
            allow.
    """

    def __init__(self, num_cpus: float = 1, num_gpus: float = 0, actors: int | None = None):
        import ray

        self._ray = ray
        self._task = ray.remote(num_cpus=num_cpus)(_run_task)
        self._num_cpus = num_cpus
        self._num_gpus = num_gpus
        self._actors = actors
        # Blobs many tasks read (the k-NN partitions), in the object store once each.
        self._shared: list[Any] = []

    def describe(self) -> str:
        ray = self._ray
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        cpus = int(ray.cluster_resources().get("CPU", 0))
        return f"Ray ({len(nodes)} nodes, {cpus} CPUs)"

    def map(self, stage: str, spec: bytes, items: list[tuple[bytes, list[int]]]) -> list[bytes]:
        """Runs ``stage`` on each item (its bytes and the handles of the shared blobs it
        reads); the answers in order."""
        ray = self._ray
        spec_ref = ray.put(spec)
        shared = self._shared
        return ray.get(
            [self._task.remote(stage, spec_ref, item, *(shared[h] for h in handles)) for item, handles in items]
        )

    def share(self, blob: bytes) -> int:
        """Puts ``blob`` in the object store; its handle for :meth:`map`'s items."""
        self._shared.append(self._ray.put(blob))
        return len(self._shared) - 1

    def release(self) -> None:
        """Drops the shared blobs (their object references)."""
        self._shared = []

    def embed(self, spec: bytes, files: list[str], columns: list[str]) -> Iterator[tuple[int, bytes]]:
        import pyarrow.parquet as pq

        ray = self._ray
        shards = []
        first = 0
        for path in files:
            meta = pq.ParquetFile(path).metadata
            for group in range(meta.num_row_groups):
                shards.append({"file": path, "row_group": group, "first": first})
                first += meta.row_group(group).num_rows
        if not shards:
            return
        ds = ray.data.from_items(shards, override_num_blocks=len(shards)).map_batches(
            _embed_batch,
            fn_kwargs={"spec": spec, "columns": columns},
            batch_format="pyarrow",
            batch_size=1,
            num_cpus=self._num_cpus,
        )
        for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            for first, values in zip(batch.column("first").to_pylist(), batch.column("values").to_pylist()):
                yield first, values


    def _actor_pool(self) -> Any:
        from ray.data import ActorPoolStrategy

        most = self._actors
        if most is None:
            resources = self._ray.cluster_resources()
            if self._num_gpus:
                most = int(resources.get("GPU", 0) // self._num_gpus)
            else:
                most = int(resources.get("CPU", 1) // max(self._num_cpus, 1e-9))
        return ActorPoolStrategy(min_size=1, max_size=max(int(most), 1))

    def embed_shards(self, stage: str, spec: bytes, items: list[bytes]) -> Iterator[bytes]:
        """Embeds each shard (images: decoded and embedded; texts: MiniLM) on Ray Data actors,
        one shard a batch; yields the answers as they come."""
        ray = self._ray
        if not items:
            return
        ds = ray.data.from_items([{"item": i} for i in items], override_num_blocks=len(items)).map_batches(
            _ShardActor,
            fn_constructor_kwargs={"stage": stage, "spec": spec},
            batch_format="pyarrow",
            batch_size=1,
            compute=self._actor_pool(),
            num_cpus=self._num_cpus,
            num_gpus=self._num_gpus or None,
        )
        for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            yield from batch.column("answer").to_pylist()


def _connect(address: str | None) -> None:
    import logging

    import ray

    if not ray.is_initialized():
        # The driver's own progress bars say what the scan does; Ray's logs stay quiet.
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)


def scan(
    path: str | os.PathLike,
    *,
    address: str | None = None,
    labels: str | None = None,
    text: str | None = None,
    progress: bool | None = None,
    out: str | os.PathLike | None = None,
    html: str | os.PathLike | None = None,
    num_cpus: float = 1,
    num_gpus: float = 0,
    actors: int | None = None,
    **options: Any,
) -> Report:
    """:func:`poisongate.scan` of a Parquet table (a file or a folder of shards) or an image
    folder, with the view, the per-class detectors and the k-NN search run on a Ray cluster.
    An image folder's images are decoded and embedded (raw pixels, or MobileNetV2 with
    ``embedder="mobilenet_v2"``) by Ray Data actors.

    Args:
        path: the table or the image folder, at the same path on every node.
        address: the cluster (``ray.init(address=...)``: ``"auto"``, ``"ray://host:10001"``,
            ``"127.0.0.1:6379"``); None connects as ``ray.init()`` does (``RAY_ADDRESS``, or
            a local cluster). Ignored when Ray is already initialised.
        labels: the label column's name (``--label``).
        text: a text column to embed with MiniLM (``--text-col``); the table is then read
            and validated in memory on the driver (any format), and the actors embed it.
        num_cpus: CPUs each task or image actor reserves.
        num_gpus: GPUs each image actor reserves (0: CPU actors).
        actors: most image actors at once (None: as many as the cluster's resources allow).
        progress, out, html, **options: as for :func:`poisongate.scan`; ``memory_limit``
            bounds the driver (a quarter of it is the largest batch of work it hands out).

    Raises:
        InputError: the data cannot be used, or is neither an image folder nor a Parquet
            table of numeric features.
        UsageError: the options are wrong.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise UsageError(
            "poisongate.ray.scan() takes the path of a Parquet table that every node can read; "
            f"got {type(path).__module__}.{type(path).__name__}"
        )
    if labels is not None:
        options["label"] = labels
    if text is not None:
        options["text_col"] = text
    if progress is None:
        progress = sys.stderr.isatty()
    path = os.fspath(path)
    _connect(address)
    if not progress:
        from ray.data import DataContext

        DataContext.get_current().enable_progress_bars = False
    tasks = RayTasks(num_cpus, num_gpus, actors)
    native = _native.scan_tasks(path, path, _option_args(options), tasks, bool(progress))
    report = Report(native)
    if out is not None:
        report.write(out, html)
    elif html is not None:
        with open(html, "w", encoding="utf-8") as f:
            f.write(report.html())
    return report


def main(argv: list[str] | None = None) -> int:
    """``python -m poisongate.ray PATH [--address A] [--out DIR] [--html FILE] [scan options]``:
    the scan's options are ``poisongate scan``'s. Prints the gate; returns its exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m poisongate.ray",
        description="poisongate scan of a Parquet table or an image folder with its heavy steps on a Ray cluster; "
        "any other option is poisongate scan's.",
    )
    parser.add_argument("path")
    parser.add_argument("--address", help="the Ray cluster (ray.init's address)")
    parser.add_argument("--out", help="write report.json and scores.parquet here")
    parser.add_argument("--html", help="write the HTML report here")
    parser.add_argument("--num-cpus", type=float, default=1, help="CPUs a task or an image actor reserves")
    parser.add_argument("--num-gpus", type=float, default=0, help="GPUs an image actor reserves")
    parser.add_argument("--actors", type=int, help="most image actors at once")
    known, rest = parser.parse_known_args(argv)
    from . import PoisongateError

    try:
        _connect(known.address)
        tasks = RayTasks(known.num_cpus, known.num_gpus, known.actors)
        native = _native.scan_tasks(known.path, known.path, rest, tasks, sys.stderr.isatty())
    except PoisongateError as e:
        print(f"poisongate: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("poisongate: interrupted", file=sys.stderr)
        return 130
    report = Report(native)
    if known.out is not None:
        report.write(known.out, known.html)
    elif known.html is not None:
        with open(known.html, "w", encoding="utf-8") as f:
            f.write(report.html())
    gate = report.data["gate"]
    verdict = "passes" if report.passed else "fails"
    reasons = "; ".join(gate.get("reasons", []))
    print(f"poisongate: gate {verdict}{': ' + reasons if reasons else ''}")
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
