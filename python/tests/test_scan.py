"""poisongate.scan from Python: every input kind, the same results as the command line, and
clear exceptions for bad input."""

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import poisongate

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "datasets" / "digits" / "digits.csv"
# Fast options for the tests that are not about the probe: raw-pixel views only.
FAST = {"embedder": "raw"}


def cli_binary() -> str:
    path = os.environ.get("POISONGATE_BIN")
    if not path:
        target = os.environ.get("CARGO_TARGET_DIR", str(Path.home() / ".cache/poisongate-target"))
        path = str(Path(target) / "debug" / "poisongate")
    assert Path(path).exists(), f"the CLI binary is missing: {path} (cargo build)"
    return path


def without_timings(report: dict) -> dict:
    """The report less what differs between two runs of the same scan (timings) and what
    names the input."""

    def strip(o):
        if isinstance(o, dict):
            return {k: strip(v) for k, v in o.items() if k != "timings"}
        if isinstance(o, list):
            return [strip(v) for v in o]
        return o

    out = strip(report)
    out["input"] = {k: v for k, v in out["input"].items() if k not in ("path", "format", "files")}
    return out


@pytest.fixture(scope="module")
def digits() -> pd.DataFrame:
    return pd.read_csv(DIGITS)


@pytest.fixture(scope="module")
def default_scan():
    """The bundled digits with the CLI's defaults (probe included), from Python and the CLI."""
    py = poisongate.scan(str(DIGITS))
    out = Path(os.environ.get("PYTEST_TMP", "/tmp")) / f"pg-cli-{os.getpid()}"
    run = subprocess.run(
        [cli_binary(), "scan", str(DIGITS), "--quiet", "--format", "json", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert run.returncode in (0, 1), run.stderr
    cli = json.loads((out / "report.json").read_text())
    scores = pq.read_table(out / "scores.parquet")
    return py, cli, scores, run.returncode


def test_a_path_gives_the_clis_report_scores_and_exit_code(default_scan):
    py, cli, scores, code = default_scan
    assert without_timings(py.data) == without_timings(cli)
    assert py.exit_code == code and py.passed == (code == 0)
    assert py.scores_arrow().equals(scores)
    assert py.flagged.dtype == np.bool_ and py.flagged.shape == (1797,)
    assert np.array_equal(py.flagged, scores.column("flagged").fill_null(False).to_numpy())
    assert isinstance(py.scores, pd.DataFrame)
    assert list(py.scores.columns) == scores.column_names


def test_every_table_kind_gives_the_same_scan(digits):
    from datasets import Dataset

    expected = poisongate.scan(str(DIGITS), **FAST)
    tables = {
        "pandas": digits,
        "polars": pl.from_pandas(digits),
        "pyarrow": pa.Table.from_pandas(digits, preserve_index=False),
        "datasets": Dataset.from_pandas(digits, preserve_index=False),
        "batches": pa.Table.from_pandas(digits, preserve_index=False).to_reader(max_chunksize=500),
    }
    for kind, table in tables.items():
        got = poisongate.scan(table, **FAST)
        assert without_timings(got.data) == without_timings(expected.data), kind
        assert np.array_equal(got.flagged, expected.flagged), kind
        assert got.data["input"]["format"] == "arrow", kind


def test_a_selected_hugging_face_dataset_scans_its_selection(digits):
    from datasets import Dataset

    ds = Dataset.from_pandas(digits, preserve_index=False).select(range(0, 1797, 2))
    got = poisongate.scan(ds, **FAST)
    assert got.data["input"]["rows"] == 899
    expected = poisongate.scan(digits.iloc[::2].reset_index(drop=True), **FAST)
    assert without_timings(got.data) == without_timings(expected.data)


def test_labels_as_an_array_and_as_a_column_name_agree(digits):
    by_name = poisongate.scan(digits, labels="label", **FAST)
    features = digits.drop(columns=["label"])
    by_array = poisongate.scan(features, labels=digits["label"].to_numpy(), **FAST)
    assert np.array_equal(by_name.flagged, by_array.flagged)
    assert by_array.data["classes"] == by_name.data["classes"]


def test_embeddings_from_numpy_match_the_clis_npy(tmp_path, digits):
    rng = np.random.default_rng(0)
    emb = digits.drop(columns=["label"]).to_numpy(dtype=np.float64) + rng.normal(
        0, 0.1, (1797, 64)
    )
    np.save(tmp_path / "e.npy", emb)
    run = subprocess.run(
        [cli_binary(), "scan", str(DIGITS), "-q", "--embeddings", str(tmp_path / "e.npy"),
         "--format", "json"],
        capture_output=True,
        text=True,
    )
    cli = json.loads(run.stdout)
    for array in (emb, emb.astype(np.float32)):
        py = poisongate.scan(str(DIGITS), embeddings=array)
        assert without_timings(py.data) == without_timings(cli)
        assert py.exit_code == run.returncode


def test_a_cpu_torch_tensor_is_taken_as_embeddings(digits):
    torch = pytest.importorskip("torch")
    emb = digits.drop(columns=["label"]).to_numpy(dtype=np.float32)
    a = poisongate.scan(digits, embeddings=emb, embedder="precomputed")
    b = poisongate.scan(digits, embeddings=torch.from_numpy(emb), embedder="precomputed")
    assert np.array_equal(a.flagged, b.flagged)


def test_the_report_writes_renders_and_serialises(tmp_path, digits):
    report = poisongate.scan(digits, **FAST)
    report.write(tmp_path / "out", html=tmp_path / "page.html")
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
    assert without_timings(on_disk) == without_timings(json.loads(report.to_json()))
    assert pq.read_table(tmp_path / "out" / "scores.parquet").equals(report.scores_arrow())
    page = report._repr_html_()
    assert "<svg" in page and page == (tmp_path / "page.html").read_text()
    assert "rows suspected" in repr(report)


def test_a_failing_gate_is_a_report_not_an_exception(digits):
    broken = digits.copy()
    broken.loc[5, "px10"] = np.nan
    report = poisongate.scan(broken, validate_only=True)
    assert not report.passed and report.exit_code == 1
    assert any(f["severity"] == "error" for f in report.findings)


@pytest.mark.parametrize(
    "embeddings, message",
    [
        (np.zeros((1797, 4), dtype=np.int64), "dtype int64; expected float32 or float64"),
        (np.zeros(1797, dtype=np.float32), "expected a 2-D array"),
        (np.zeros((10, 4), dtype=np.float32), "has 10 rows but the dataset has 1797"),
        ([[1.0, 2.0], [3.0]], "not a rectangular array"),
    ],
)
def test_bad_embeddings_raise_input_errors(digits, embeddings, message):
    with pytest.raises(poisongate.InputError, match=message):
        poisongate.scan(digits, embeddings=embeddings, embedder="precomputed")


def test_any_array_layout_gives_the_same_scan(digits):
    """C order, Fortran order (what pandas' to_numpy often returns) and a strided view are
    read in logical order: the engine copies into its own float32 matrix in every case."""
    rng = np.random.default_rng(3)
    base = rng.normal(size=(1797, 16)).astype(np.float32)
    wide = np.zeros((1797, 32), dtype=np.float32)
    wide[:, ::2] = base
    layouts = {
        "c": base,
        "fortran": np.asfortranarray(base),
        "strided": wide[:, ::2],
        "float64": base.astype(np.float64),
    }
    assert not layouts["strided"].flags.c_contiguous and not layouts["fortran"].flags.c_contiguous
    results = {
        k: poisongate.scan(digits, embeddings=v, embedder="precomputed") for k, v in layouts.items()
    }
    for k, r in results.items():
        assert r.scores_arrow().drop_columns(["reasons"]).equals(
            results["c"].scores_arrow().drop_columns(["reasons"])
        ), k


def test_nan_in_embeddings_names_the_row(digits):
    emb = np.ones((1797, 3), dtype=np.float32)
    emb[42, 1] = np.nan
    with pytest.raises(poisongate.InputError, match="row 42 holds a non-finite value"):
        poisongate.scan(digits, embeddings=emb, embedder="precomputed")


def test_bad_labels_and_data_raise_clear_errors(digits, tmp_path):
    with pytest.raises(poisongate.InputError, match="has 3 entries but the data has 1797 rows"):
        poisongate.scan(digits.drop(columns=["label"]), labels=[0, 1, 2])
    with pytest.raises(poisongate.InputError, match="no-such.csv"):
        poisongate.scan(str(tmp_path / "no-such.csv"))
    with pytest.raises(poisongate.UsageError, match="takes a path or a table"):
        poisongate.scan(42)
    with pytest.raises(poisongate.UsageError, match="labels= as an array needs data in memory"):
        poisongate.scan(str(DIGITS), labels=np.zeros(1797))
    with pytest.raises(poisongate.InputError, match="label"):
        poisongate.scan(digits, labels="no_such_column")


def test_options_keep_the_command_lines_names_and_checks(digits):
    with pytest.raises(poisongate.UsageError, match="--no-such-option"):
        poisongate.scan(digits, no_such_option=3)
    with pytest.raises(poisongate.UsageError, match="--significance"):
        poisongate.scan(digits, significance=2.0)
    with pytest.raises(poisongate.UsageError, match="invalid value 'sometimes'"):
        poisongate.scan(digits, embedder="sometimes")
    # Errors are one hierarchy, and ValueError-like exceptions are still PoisongateErrors.
    assert issubclass(poisongate.InputError, poisongate.PoisongateError)
    assert issubclass(poisongate.UsageError, poisongate.PoisongateError)


def test_ctrl_c_stops_a_long_scan():
    import _thread

    import signal

    table = pd.read_csv(DIGITS)
    # Python's own SIGINT handler, whatever started this process: a shell's background job
    # inherits SIGINT ignored, and then `interrupt_main` does nothing (two CI runs started
    # in the background ran the scan to its end, 106 s).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    # Ctrl-C once a second, as a user presses it again; the engine must stop within seconds.
    done = threading.Event()

    def press():
        while not done.wait(1.0):
            _thread.interrupt_main()

    presser = threading.Thread(target=press, daemon=True)
    started = time.monotonic()
    presser.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            # Thousands of epochs: minutes unless the interrupt stops it.
            poisongate.scan(table, embedder="probe", epochs=5000)
    finally:
        try:
            done.set()
            presser.join()
        except KeyboardInterrupt:  # a press that landed after the scan had stopped
            done.set()
            presser.join()
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - started < 30


def test_the_engine_runs_without_the_gil(digits):
    """Another Python thread keeps running while a scan is in progress."""
    ticks = []
    done = threading.Event()

    def tick():
        while not done.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.01)

    t = threading.Thread(target=tick)
    t.start()
    try:
        poisongate.scan(digits, embedder="probe", epochs=30)
    finally:
        done.set()
        t.join()
    assert len(ticks) > 20


def test_bench_measures_a_planted_attack_like_the_cli(digits):
    df = poisongate.bench(digits, attack="badnets", rate=0.1, embedder="raw")
    run = subprocess.run(
        [cli_binary(), "bench", str(DIGITS), "--attack", "badnets", "--rate", "0.1",
         "--embedder", "raw", "--format", "json", "-q"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    cli = json.loads(run.stdout)
    assert list(df["method"]) == [m["method"] for m in cli["methods"]]
    for column in ("flagged", "precision", "recall", "f1", "auroc"):
        assert list(df[column]) == [m[column] for m in cli["methods"]], column
    assert df.attrs["poisons"] == cli["poisons"] == 180
    assert df.attrs["attack"] == "badnets"
    # The caller's data is not changed by the planting.
    assert digits.equals(pd.read_csv(DIGITS))


def test_sweep_returns_a_long_table_with_controls(digits):
    df = poisongate.sweep(digits, attacks=["flip"], rates=[0.05], seeds=[0, 1], embedder="raw")
    assert {"measured", "perfect"} <= set(df["filter"]), df["filter"].tolist()
    measured = df[df["filter"] == "measured"]
    assert "fused" in set(measured["method"]) and "knn/raw" in set(measured["method"])
    assert (df["attack"] == "flip").all() and (df["rate"] == 0.05).all()
    assert any(c.startswith("f1") for c in df.columns), df.columns.tolist()
    assert df.attrs["seeds"] == [0, 1]


def test_a_labels_only_table_with_embeddings_scans(digits):
    emb = digits.drop(columns=["label"]).to_numpy(dtype=np.float32)
    labels_only = pa.table({"label": digits["label"].to_numpy()})
    a = poisongate.scan(labels_only, embeddings=emb, embedder="precomputed")
    b = poisongate.scan(digits, embeddings=emb, embedder="precomputed")
    assert a.data["summary"]["errors"] == 0
    assert np.array_equal(a.flagged, b.flagged)
    with pytest.raises(poisongate.InputError, match="no numeric feature columns"):
        poisongate.scan(labels_only, embeddings=emb)
