"""poisongate: find poisoned samples in machine-learning training sets.

The same engine, options and defaults as the ``poisongate`` command line, called from Python::

    import poisongate
    report = poisongate.scan("train.parquet", label="y")
    if not report.passed:
        raise SystemExit(report.to_json())

``scan`` takes a path (anything ``poisongate scan`` reads) or data in memory: a pandas or
polars DataFrame, a PyArrow Table or RecordBatchReader, a Hugging Face ``datasets.Dataset``,
or any object with ``__arrow_c_stream__``. Arrow data is read through the Arrow C stream
interface, without a copy. Errors are :class:`PoisongateError`: :class:`InputError` for data
that cannot be used (a missing file, a wrong dtype, NaN, a wrong length), :class:`UsageError`
for options that make no sense.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import numpy as np

from . import _poisongate as _native
from ._poisongate import InputError, PoisongateError, UsageError

__all__ = [
    "scan",
    "bench",
    "sweep",
    "Report",
    "PoisongateError",
    "InputError",
    "UsageError",
    "__version__",
]
__version__: str = _native.__version__

# The column an array given as ``labels=`` is added under (a name no real table uses).
_LABEL_COLUMN = "__poisongate_label__"


class Report:
    """The outcome of :func:`scan`: the gate, the flagged rows, the scores and findings.

    Attributes:
        passed: whether the gate passes (the command line's exit code 0).
        exit_code: the command line's exit code for the same run (0 passes, 1 fails).
        flagged: NumPy bool array, one entry per row in input order: rows the verdict
            suspects of poisoning.
        findings: list of dicts, the validation findings (rule, severity, rows, message).
        data: the full report as a dict, the same as ``report.json``.
    """

    def __init__(self, native: Any):
        self._native = native
        self.data: dict = json.loads(native.json())
        self.exit_code: int = self.data["gate"]["exit_code"]
        self.passed: bool = bool(self.data["gate"]["passed"])
        self.flagged: np.ndarray = native.flagged()
        self.findings: list = self.data.get("findings", [])
        self._scores = None

    @property
    def scores(self):
        """The per-row scores as a pandas DataFrame (pyarrow Table if pandas is missing):
        the same columns as ``scores.parquet``."""
        if self._scores is None:
            import pyarrow as pa

            table = pa.RecordBatchReader.from_stream(self._native.scores()).read_all()
            try:
                self._scores = table.to_pandas()
            except ImportError:
                self._scores = table
        return self._scores

    def scores_arrow(self):
        """The per-row scores as a PyArrow Table."""
        import pyarrow as pa

        return pa.RecordBatchReader.from_stream(self._native.scores()).read_all()

    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON, the same document as ``report.json``."""
        return json.dumps(self.data, indent=indent)

    def write(self, directory: str | os.PathLike, html: str | os.PathLike | None = None) -> None:
        """Writes ``report.json`` and ``scores.parquet`` into ``directory`` (as ``scan --out``),
        and the HTML page to ``html`` if given (as ``scan --html``)."""
        self._native.write(os.fspath(directory), None if html is None else os.fspath(html))

    def html(self) -> str:
        """The HTML report page (as ``scan --html`` writes it)."""
        return self._native.html()

    def _repr_html_(self) -> str:
        return self._native.html()

    def __repr__(self) -> str:
        rows = len(self.flagged)
        verdict = "passes" if self.passed else "fails"
        return (
            f"<poisongate.Report: gate {verdict}, {int(self.flagged.sum())} of {rows} rows "
            f"suspected, {len(self.findings)} findings>"
        )


def _option_args(options: dict) -> list[str]:
    """Keyword options as command-line arguments: ``name=value`` is ``--name value``
    (underscores become hyphens), ``True`` a bare flag, ``False`` and ``None`` nothing, a list
    or tuple comma-joined."""
    args: list[str] = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            args.append(flag)
        elif isinstance(value, (list, tuple)):
            args += [flag, ",".join(str(v) for v in value)]
        elif isinstance(value, os.PathLike):
            args += [flag, os.fspath(value)]
        else:
            args += [flag, str(value)]
    return args


def _arrow_source(data: Any):
    """In-memory data as an object with ``__arrow_c_stream__``, and a name for the report."""
    module = type(data).__module__.split(".")[0]
    if module == "datasets" and hasattr(data, "data") and hasattr(data.data, "table"):
        # A Hugging Face Dataset: an Arrow table underneath; a selection or shuffle keeps an
        # indices mapping that the table alone does not apply.
        if getattr(data, "_indices", None) is not None:
            data = data.flatten_indices()
        return data.data.table, f"<datasets.Dataset {len(data)} rows>"
    if module == "pandas":
        import pyarrow as pa

        return pa.Table.from_pandas(data, preserve_index=False), f"<pandas.DataFrame {len(data)} rows>"
    if hasattr(data, "__arrow_c_stream__"):
        rows = getattr(data, "num_rows", None) or getattr(data, "height", None)
        what = f"{type(data).__module__.split('.')[0]}.{type(data).__name__}"
        return data, f"<{what}{f' {rows} rows' if rows else ''}>"
    raise UsageError(
        f"scan() takes a path or a table (pandas, polars, PyArrow, Hugging Face datasets, or any "
        f"object with __arrow_c_stream__); got {type(data).__module__}.{type(data).__name__}"
    )


def _embeddings_array(embeddings: Any) -> np.ndarray:
    if type(embeddings).__module__.split(".")[0] == "torch":
        if embeddings.device.type != "cpu":
            raise UsageError(
                f"embeddings= is a torch tensor on {embeddings.device}; move it to the CPU "
                "first (tensor.cpu())"
            )
        embeddings = embeddings.detach().numpy()
    if not isinstance(embeddings, np.ndarray):
        try:
            embeddings = np.asarray(embeddings)
        except ValueError as e:  # ragged nested lists
            raise InputError(f"embeddings= is not a rectangular array: {e}") from None
    return embeddings


def scan(
    data: Any,
    *,
    labels: Any = None,
    embeddings: Any = None,
    text: str | None = None,
    images: str | None = None,
    progress: bool | None = None,
    out: str | os.PathLike | None = None,
    html: str | os.PathLike | None = None,
    **options: Any,
) -> Report:
    """Validates a training set and screens it for poisoned samples; returns a :class:`Report`.

    Args:
        data: a path (CSV, TSV, Parquet file or folder of shards, or an image folder with one
            sub-folder per class), or a table in memory: pandas or polars DataFrame, PyArrow
            Table, Hugging Face ``datasets.Dataset``, or any ``__arrow_c_stream__`` object.
        labels: the label column's name (the command line's ``--label``), or an array of
            labels, one per row, for data in memory.
        embeddings: your own vectors, one row per data row in order: a float32 or float64
            NumPy array (``n x d``, any memory layout) or a torch tensor on the CPU
            (``--embeddings``), copied once into the engine's float32 matrix. They take the
            probe's place.
        text: the text column to embed with MiniLM (``--text-col``).
        images: the column of encoded images (``--image-col``).
        progress: show progress bars on stderr; default: only when stderr is a terminal.
        out: also write ``report.json`` and ``scores.parquet`` there (``--out``).
        html: also write the HTML page there (``--html``).
        **options: any other ``poisongate scan`` option by its long name, with underscores:
            ``embedder="raw"``, ``seed=1``, ``significance=0.01``, ``probe_net="mlp"``,
            ``strict=True``, ``schema="schema.toml"``, ``features=["a", "b"]``... Defaults are
            the command line's (``poisongate scan --help`` lists them).

    Raises:
        InputError: the data cannot be used (unreadable, wrong dtype, NaN, wrong length).
        UsageError: the options are wrong (unknown option, a bad value, a contradiction).
        KeyboardInterrupt: Ctrl-C; the scan stops at its next step.
    """
    source, name, args, matrix, progress = _prepare(
        data, labels, embeddings, text, images, progress, options
    )
    native = _native.scan(source, name, args, matrix, bool(progress))
    report = Report(native)
    if out is not None or html is not None:
        if out is not None:
            report.write(out, html)
        else:
            with open(html, "w", encoding="utf-8") as f:
                f.write(report.html())
    return report


def _prepare(data, labels, embeddings, text, images, progress, options):
    """The native call's arguments: the source (a path or an Arrow stream object), the input's
    name, the command-line options, the embeddings array and whether to draw progress."""
    options = dict(options)
    label_array = None
    if labels is not None:
        if isinstance(labels, str):
            options["label"] = labels
        else:
            label_array = labels
    if text is not None:
        options["text_col"] = text
    if images is not None:
        options["image_col"] = images
    if progress is None:
        progress = sys.stderr.isatty()
    args = _option_args(options)
    if isinstance(data, (str, os.PathLike)):
        if label_array is not None:
            raise UsageError(
                "labels= as an array needs data in memory; for a path, give the label "
                "column's name (labels='y')"
            )
        source: Any = os.fspath(data)
        name = source
    else:
        source, name = _arrow_source(data)
        if label_array is not None:
            source = _with_labels(source, label_array)
            args += ["--label", _LABEL_COLUMN]
    matrix = None if embeddings is None else _embeddings_array(embeddings)
    return source, name, args, matrix, bool(progress)


def bench(
    data: Any,
    *,
    attack: str,
    rate: float | None = None,
    labels: Any = None,
    embeddings: Any = None,
    text: str | None = None,
    images: str | None = None,
    progress: bool | None = None,
    **options: Any,
):
    """Plants a known attack in a copy of the data (the data itself is never changed), runs
    every detector and the verdict, and measures each against the planted rows
    (``poisongate bench``).

    Args:
        data, labels, embeddings, text, images, progress: as for :func:`scan`.
        attack: ``badnets``, ``blend``, ``sig``, ``flip``, ``targeted-flip`` or ``clean``.
        rate: the share of rows to poison (the command line's ``--rate``).
        **options: any other ``poisongate bench`` option by its long name, with underscores:
            ``attack_seed=1``, ``seed=0``, ``target="0"``, ``patch=3``, ``alpha=0.15``,
            ``embedder="raw"``...

    Returns:
        A pandas DataFrame, one row per method (each detector on each view, then ``fused``,
        the verdict): flagged, true positives, precision, recall, F1, AUROC, TPR at 1 % FPR
        and seconds. ``df.attrs`` holds the attack, rate, number of poisons and rows.
    """
    import pandas as pd

    options["attack"] = attack
    if rate is not None:
        options["rate"] = rate
    source, name, args, matrix, progress = _prepare(
        data, labels, embeddings, text, images, progress, options
    )
    report = json.loads(_native.bench(source, name, args, matrix, progress))
    methods = [{k: v for k, v in m.items() if k != "classes"} for m in report["methods"]]
    df = pd.DataFrame(methods)
    df.attrs = {k: v for k, v in report.items() if k != "methods"}
    return df


def sweep(
    data: Any,
    *,
    attacks: list[str] | tuple[str, ...],
    rates: list[float] | tuple[float, ...],
    seeds: list[int] | tuple[int, ...] = (0,),
    labels: Any = None,
    embeddings: Any = None,
    text: str | None = None,
    images: str | None = None,
    progress: bool | None = None,
    **options: Any,
):
    """Runs :func:`bench` for every attack x rate x seed, with the control rows (no filter, a
    random filter of the same size, a perfect filter) (``poisongate sweep``).

    Returns:
        A pandas DataFrame in long form: one row per attack, rate, filter (``measured``, or
        a control) and method, with each measure's summary over the seeds in its own columns
        (``f1.mean`` and the like).
    """
    import pandas as pd

    options.update(attacks=list(attacks), rates=list(rates), seeds=list(seeds))
    source, name, args, matrix, progress = _prepare(
        data, labels, embeddings, text, images, progress, options
    )
    report = json.loads(_native.sweep(source, name, args, matrix, progress))
    # One row per attack, rate, filter (measured or a control) and method; each measure's
    # summary over the seeds in its own columns (``f1.mean``, ``f1.sd``...).
    df = pd.json_normalize(report["rows"], record_path="methods", meta=["attack", "rate", "filter"])
    df = df[["attack", "rate", "filter", *[c for c in df.columns if c not in ("attack", "rate", "filter")]]]
    df.attrs = {k: v for k, v in report.items() if k != "rows"}
    return df


def _with_labels(source: Any, labels: Any):
    import pyarrow as pa

    table = pa.table(source) if not isinstance(source, pa.Table) else source
    if type(labels).__module__.split(".")[0] == "torch":
        labels = labels.detach().cpu().numpy()
    try:
        column = pa.array(labels)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as e:
        raise InputError(f"labels= cannot be read as one label per row: {e}") from None
    if len(column) != table.num_rows:
        raise InputError(
            f"labels= has {len(column)} entries but the data has {table.num_rows} rows; give "
            "one label per row, in row order"
        )
    if _LABEL_COLUMN in table.column_names:
        table = table.drop_columns([_LABEL_COLUMN])
    return table.append_column(_LABEL_COLUMN, column)
