"""Type stubs of the native module (the public API is `poisongate`, in __init__.py)."""

from typing import Any

import numpy as np
import numpy.typing as npt

__version__: str

class PoisongateError(Exception):
    """Base class of poisongate's errors."""

class InputError(PoisongateError):
    """The data cannot be used: unreadable, a wrong type or dtype, NaN, a wrong length."""

class UsageError(PoisongateError):
    """The options are wrong: unknown, out of range, or contradicting each other."""

class NativeReport:
    def json(self) -> str: ...
    def flagged(self) -> npt.NDArray[np.bool_]: ...
    def scores(self) -> Any: ...
    def html(self) -> str: ...
    def write(self, directory: str, html: str | None = None) -> None: ...

def scan(
    source: Any,
    name: str,
    args: list[str],
    embeddings: npt.NDArray[np.floating] | None,
    progress: bool,
) -> NativeReport: ...

def bench(
    source: Any,
    name: str,
    args: list[str],
    embeddings: npt.NDArray[np.floating] | None,
    progress: bool,
) -> str: ...
def sweep(
    source: Any,
    name: str,
    args: list[str],
    embeddings: npt.NDArray[np.floating] | None,
    progress: bool,
) -> str: ...

# The Ray engine (poisongate.ray): the driver's scan and the workers' steps.
def scan_tasks(path: str, name: str, args: list[str], tasks: Any, progress: bool) -> NativeReport: ...
def run_task(stage: str, spec: bytes, item: bytes, shared: list[bytes] = ...) -> bytes: ...
def embed_shard(spec: bytes, table: Any, shard: str) -> bytes: ...

class ShardWorker:
    """Embeds shards of images or texts (the Ray engine's actors)."""

    def __init__(self, stage: str, spec: bytes) -> None: ...
    def run(self, item: bytes) -> bytes: ...
