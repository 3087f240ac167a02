//! `poisongate._poisongate`: the native half of the Python package. It parses the options
//! with the command line's own parser (same names, defaults and messages), reads a path or an
//! Arrow C stream, runs the engine with the GIL released, and hands back the report, the
//! flagged rows (NumPy) and the scores (an Arrow stream). `python/poisongate/__init__.py` is
//! the public API on top.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, BooleanArray, RecordBatch, RecordBatchIterator, RecordBatchReader};
use arrow_pyarrow::IntoPyArrow;
use numpy::{PyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyKeyboardInterrupt, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

use poisongate::cli::config::{BenchConfig, ScanConfig, SweepConfig};
use poisongate::cli::{Args, Command};
use poisongate::pipeline::{Embeddings, HostMatrix};
use poisongate::progress::Progress;
use poisongate::scan::{self as engine, Outcome};
use poisongate::Error;

mod ray;

create_exception!(
    _poisongate,
    PoisongateError,
    PyException,
    "Base class of poisongate's errors."
);
create_exception!(
    _poisongate,
    InputError,
    PoisongateError,
    "The data cannot be used: unreadable, a wrong type or dtype, NaN, a wrong length."
);
create_exception!(
    _poisongate,
    UsageError,
    PoisongateError,
    "The options are wrong: unknown, out of range, or contradicting each other."
);

/// The engine's error as the Python exception of its kind, with the command line's message
/// (and its causes, as the command line prints them).
fn to_py(err: Error) -> PyErr {
    let mut message = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    let message = poisongate::clip_message(&message);
    match err {
        Error::Config(_) => UsageError::new_err(message),
        _ if err.is_interrupted() => PyKeyboardInterrupt::new_err("poisongate scan interrupted"),
        _ => InputError::new_err(message),
    }
}

/// Parses `COMMAND NAME ARGS...` with the command line's parser.
fn parse(command: &str, name: &str, args: Vec<String>, progress: bool) -> PyResult<Command> {
    let argv = ["poisongate".to_string(), command.into(), name.into()]
        .into_iter()
        .chain(args)
        .chain((!progress).then(|| "--quiet".to_string()));
    let parsed = <Args as clap::Parser>::try_parse_from(argv).map_err(|e| {
        let text = e.render().to_string();
        let first = text.lines().next().unwrap_or_default();
        UsageError::new_err(first.trim_start_matches("error: ").to_string())
    })?;
    Ok(parsed.command)
}

fn scan_config(name: &str, args: Vec<String>, progress: bool) -> PyResult<ScanConfig> {
    let Command::Scan(scan) = parse("scan", name, args, progress)? else {
        return Err(UsageError::new_err("not a scan"));
    };
    ScanConfig::from_args(scan, progress).map_err(|e| to_py(e.into()))
}

/// Runs `work` on its own thread with the GIL released. This thread wakes every 100 ms to let
/// Python see Ctrl-C, and then raises the progress's cancel flag so that the engine stops at
/// its next step; the interrupt is raised once the engine has stopped.
fn run_engine<T: Send + 'static>(
    py: Python<'_>,
    progress: &Progress,
    work: impl FnOnce(&Progress) -> Result<T, Error> + Send + 'static,
) -> PyResult<T> {
    let cancel = progress.cancel_flag();
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = {
        let bars = progress.clone();
        std::thread::spawn(move || {
            let _ = tx.send(work(&bars));
        })
    };
    let mut interrupted = None;
    let mut rx = rx;
    let result = loop {
        // The receiver moves into the GIL-free closure and back (it is not `Sync`).
        let (received, back) = py.detach(move || (rx.recv_timeout(Duration::from_millis(100)), rx));
        rx = back;
        match received {
            Ok(result) => break Some(result),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if interrupted.is_none() {
                    if let Err(e) = py.check_signals() {
                        cancel.store(true, Ordering::Relaxed);
                        interrupted = Some(e);
                    }
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break None,
        }
    };
    let joined = py.detach(|| worker.join());
    if let Some(e) = interrupted {
        return Err(e);
    }
    match (result, joined) {
        (Some(result), _) => result.map_err(to_py),
        (None, Err(panic)) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(PoisongateError::new_err(format!(
                "internal error (a bug in poisongate, please report it): {what}"
            )))
        }
        (None, Ok(())) => Err(PoisongateError::new_err(
            "internal error: the engine ended without a result",
        )),
    }
}

/// The data of a scan: a path, or an Arrow C stream already read into a frame.
enum Source {
    Path,
    Frame(poisongate::source::arrow_stream::DataFrame),
}

/// Reads an object with `__arrow_c_stream__` (PyArrow, polars, anything implementing the Arrow
/// PyCapsule interface) into a polars frame, zero-copy.
fn read_stream(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Source> {
    let capsule = obj.call_method0("__arrow_c_stream__")?;
    let capsule = capsule.cast_into::<PyCapsule>().map_err(|_| {
        InputError::new_err("__arrow_c_stream__ did not return a PyCapsule (Arrow C stream)")
    })?;
    let pointer = capsule
        .pointer_checked(Some(c"arrow_array_stream"))
        .map_err(|_| {
            InputError::new_err(
                "__arrow_c_stream__ returned a capsule that is not named arrow_array_stream",
            )
        })?;
    // SAFETY: the capsule named `arrow_array_stream` holds an `ArrowArrayStream` (the Arrow
    // PyCapsule interface); the reader moves it out and marks the capsule's copy released.
    let frame = unsafe { poisongate::source::arrow_stream::read(pointer.as_ptr().cast(), name) }
        .map_err(|e| to_py(e.into()))?;
    Ok(Source::Frame(frame))
}

/// The embeddings as the engine's host matrix: one copy into row-major f32, read in logical
/// order, so any layout (C or Fortran order, a strided view) gives the same matrix. Only 2-D
/// float32 or float64 arrays are accepted.
fn host_matrix(array: &Bound<'_, PyAny>) -> PyResult<HostMatrix> {
    let untyped = array.cast::<numpy::PyUntypedArray>().map_err(|_| {
        InputError::new_err("embeddings= must be a NumPy array or a CPU torch tensor")
    })?;
    let shape = untyped.shape().to_vec();
    let [rows, dim] = shape[..] else {
        return Err(InputError::new_err(format!(
            "embeddings= has shape {shape:?}; expected a 2-D array (rows x dimensions)"
        )));
    };
    let values: Vec<f32> = if let Ok(a) = array.extract::<PyReadonlyArray2<'_, f32>>() {
        // `as_slice` also answers for Fortran order, in memory order: only C order is taken
        // as it lies.
        match a.as_slice() {
            Ok(contiguous) if untyped.is_c_contiguous() => contiguous.to_vec(),
            _ => a.as_array().iter().copied().collect(),
        }
    } else if let Ok(a) = array.extract::<PyReadonlyArray2<'_, f64>>() {
        a.as_array().iter().map(|&v| v as f32).collect()
    } else {
        let dtype = untyped.dtype().to_string();
        return Err(InputError::new_err(format!(
            "embeddings= has dtype {dtype}; expected float32 or float64"
        )));
    };
    Ok(HostMatrix {
        name: "embeddings= array".into(),
        rows,
        dim,
        values,
    })
}

/// A finished scan: the engine's outcome, kept for writing and rendering.
#[pyclass(frozen, module = "poisongate._poisongate")]
struct NativeReport {
    outcome: Outcome,
    /// The input as the report names it (a path, or a description of the in-memory data).
    input: String,
    is_path: bool,
    scores: RecordBatch,
}

impl NativeReport {
    /// The report of a finished scan, with its scores table built once.
    fn new(outcome: Outcome, input: String, is_path: bool) -> PyResult<Self> {
        let scores =
            poisongate::report::scores::batch(&outcome.dataset, &outcome.flags, &outcome.detection)
                .map_err(|e| {
                    PoisongateError::new_err(format!("cannot build the scores table: {e}"))
                })?;
        Ok(NativeReport {
            outcome,
            input,
            is_path,
            scores,
        })
    }
}

#[pymethods]
impl NativeReport {
    /// The report as JSON (the same document as `report.json`).
    fn json(&self) -> PyResult<String> {
        serde_json::to_string(&self.outcome.report)
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// Rows suspected of poisoning, in input order.
    fn flagged<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<bool>> {
        let n = self.scores.num_rows();
        let flagged = self
            .scores
            .column_by_name("flagged")
            .and_then(|c| c.as_any().downcast_ref::<BooleanArray>());
        let values: Vec<bool> = match flagged {
            Some(c) => (0..n).map(|i| c.is_valid(i) && c.value(i)).collect(),
            None => vec![false; n],
        };
        PyArray1::from_vec(py, values)
    }

    /// The scores (the columns of `scores.parquet`) as a pyarrow RecordBatchReader.
    fn scores<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let batch = self.scores.clone();
        let schema = batch.schema();
        let reader: Box<dyn RecordBatchReader + Send> =
            Box::new(RecordBatchIterator::new(vec![Ok(batch)], schema));
        reader.into_pyarrow(py)
    }

    /// The HTML page of the report.
    fn html(&self, py: Python<'_>) -> PyResult<String> {
        let o = &self.outcome;
        py.detach(|| poisongate::report::html::render_scan(&o.report, &o.dataset, &o.detection))
            .map_err(|e| to_py(e.into()))
    }

    /// Writes `report.json` and `scores.parquet` into `directory`, and the page to `html`.
    #[pyo3(signature = (directory, html=None))]
    fn write(&self, py: Python<'_>, directory: PathBuf, html: Option<PathBuf>) -> PyResult<()> {
        let o = &self.outcome;
        let input = self.is_path.then(|| Path::new(&self.input));
        py.detach(|| -> Result<(), Error> {
            poisongate::report::write_dir(
                &directory,
                input,
                &o.report,
                &o.dataset,
                &o.flags,
                &o.detection,
            )?;
            if let Some(page) = &html {
                poisongate::report::html::write_scan(
                    page,
                    input,
                    &o.report,
                    &o.dataset,
                    &o.detection,
                )?;
            }
            Ok(())
        })
        .map_err(to_py)
    }
}

/// Runs a scan. `source`: a path (str) or an object with `__arrow_c_stream__`; `name`: how
/// the report names the input; `args`: the command line's options; `embeddings`: a NumPy array
/// or None; `progress`: draw progress bars on stderr.
/// The data (a path, or an Arrow stream read into a frame) and the embeddings as the engine's
/// matrix; with embeddings, `--embeddings` joins `args` so that the views are planned as the
/// command line plans them for a file.
fn inputs(
    source: &Bound<'_, PyAny>,
    name: &str,
    args: &mut Vec<String>,
    embeddings: Option<&Bound<'_, PyAny>>,
) -> PyResult<(Source, Option<Embeddings>)> {
    let data = if source.is_instance_of::<pyo3::types::PyString>() {
        Source::Path
    } else {
        read_stream(source, name)?
    };
    let matrix = embeddings.map(host_matrix).transpose()?;
    if matrix.is_some() {
        args.push("--embeddings".into());
        args.push("embeddings.npy".into());
    }
    Ok((data, matrix.map(|m| Embeddings::Matrix(Arc::new(m)))))
}

/// Reads the data of a bench or sweep run.
fn load(
    data: Source,
    input: &poisongate::cli::config::InputConfig,
    bars: &Progress,
) -> Result<poisongate::dataset::Dataset, Error> {
    Ok(match data {
        Source::Path => engine::load(input, None, bars)?.0,
        Source::Frame(frame) => engine::load_frame(input, frame, None, bars)?.0,
    })
}

/// `poisongate bench` or `sweep` (`command`) on the data; returns its report as JSON.
fn measure(
    py: Python<'_>,
    command: &str,
    source: &Bound<'_, PyAny>,
    name: String,
    mut args: Vec<String>,
    embeddings: Option<&Bound<'_, PyAny>>,
    progress: bool,
) -> PyResult<String> {
    let (data, matrix) = inputs(source, &name, &mut args, embeddings)?;
    let config_err = |e: poisongate::cli::config::ConfigError| to_py(e.into());
    let json =
        |r: Result<String, serde_json::Error>| r.map_err(|e| PyValueError::new_err(e.to_string()));
    match parse(command, &name, args, progress)? {
        Command::Bench(parsed) => {
            let mut config = BenchConfig::from_args(parsed, progress).map_err(config_err)?;
            config.detect.embeddings = matrix.or(config.detect.embeddings);
            let bars = Progress::new(config.input.progress);
            let report = run_engine(py, &bars, move |bars| {
                let dataset = load(data, &config.input, bars)?;
                Ok(poisongate::bench::evaluate(&config, dataset, bars)?.report)
            })?;
            json(serde_json::to_string(&report))
        }
        Command::Sweep(parsed) => {
            let mut config = SweepConfig::from_args(parsed, progress).map_err(config_err)?;
            config.detect.embeddings = matrix.or(config.detect.embeddings);
            let bars = Progress::new(config.input.progress);
            let report = run_engine(py, &bars, move |bars| {
                let clean = load(data, &config.input, bars)?;
                poisongate::bench::sweep::sweep(&config, &clean, bars)
            })?;
            json(serde_json::to_string(&report))
        }
        _ => Err(UsageError::new_err(format!(
            "{command} is not bench or sweep"
        ))),
    }
}

/// `poisongate bench` on the data: plants the attack, measures every method; returns the
/// bench report as JSON.
#[pyfunction]
#[pyo3(name = "bench", signature = (source, name, args, embeddings, progress))]
fn bench_run(
    py: Python<'_>,
    source: &Bound<'_, PyAny>,
    name: String,
    args: Vec<String>,
    embeddings: Option<&Bound<'_, PyAny>>,
    progress: bool,
) -> PyResult<String> {
    measure(py, "bench", source, name, args, embeddings, progress)
}

/// `poisongate sweep` on the data; returns the sweep report as JSON.
#[pyfunction]
#[pyo3(signature = (source, name, args, embeddings, progress))]
fn sweep(
    py: Python<'_>,
    source: &Bound<'_, PyAny>,
    name: String,
    args: Vec<String>,
    embeddings: Option<&Bound<'_, PyAny>>,
    progress: bool,
) -> PyResult<String> {
    measure(py, "sweep", source, name, args, embeddings, progress)
}

#[pyfunction]
#[pyo3(signature = (source, name, args, embeddings, progress))]
fn scan(
    py: Python<'_>,
    source: &Bound<'_, PyAny>,
    name: String,
    mut args: Vec<String>,
    embeddings: Option<&Bound<'_, PyAny>>,
    progress: bool,
) -> PyResult<NativeReport> {
    let is_path = source.is_instance_of::<pyo3::types::PyString>();
    let (data, matrix) = inputs(source, &name, &mut args, embeddings)?;
    let mut config = scan_config(&name, args, progress)?;
    if let Some(detect) = config.detect.as_mut() {
        if matrix.is_some() {
            detect.embeddings = matrix;
        }
    }
    let bars = Progress::new(config.input.progress);
    let outcome = run_engine(py, &bars, move |bars| match data {
        Source::Path => engine::scan(&config, bars),
        Source::Frame(frame) => engine::scan_frame(&config, frame, bars),
    })?;
    NativeReport::new(outcome, name, is_path)
}

#[pymodule]
fn _poisongate(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("PoisongateError", py.get_type::<PoisongateError>())?;
    m.add("InputError", py.get_type::<InputError>())?;
    m.add("UsageError", py.get_type::<UsageError>())?;
    m.add_class::<NativeReport>()?;
    m.add_function(wrap_pyfunction!(scan, m)?)?;
    m.add_function(wrap_pyfunction!(bench_run, m)?)?;
    m.add_function(wrap_pyfunction!(sweep, m)?)?;
    m.add_function(wrap_pyfunction!(ray::scan_tasks, m)?)?;
    m.add_function(wrap_pyfunction!(ray::run_task, m)?)?;
    m.add_function(wrap_pyfunction!(ray::embed_shard, m)?)?;
    m.add_class::<ray::ShardWorker>()?;
    Ok(())
}
