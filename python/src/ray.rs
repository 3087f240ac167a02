//! The Ray engine's native half (`poisongate/ray.py` is the rest): the driver's scan with
//! its steps handed to a Python object that runs them as Ray work, and what a worker calls.

use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use poisongate::progress::Progress;
use poisongate::scan as engine;
use poisongate::stream::remote::{self, AnswerSink, Item, RawSpec, Sink, Tasks};
use poisongate::stream::StreamError;

use crate::{read_stream, run_engine, scan_config, to_py, InputError, NativeReport, Source};

/// The streaming scan's tasks handed to a Python object (the Ray engine,
/// `poisongate/ray.py`): `map(stage, spec, [(item, [handle...])...]) -> list[bytes]`,
/// `share(blob) -> handle`, `release()`, `embed(spec, files, columns)` yielding
/// `(first_row, bytes)` per shard, `embed_shards(stage, spec, [item...])` yielding each
/// shard's answer, and `describe() -> str`.
struct PyTasks {
    obj: Py<PyAny>,
}

/// A Python exception raised by the engine's tasks, as the scan's error.
fn task_error(py: Python<'_>, what: &str, e: PyErr) -> StreamError {
    if e.is_instance_of::<PyKeyboardInterrupt>(py) {
        return StreamError::Interrupted;
    }
    let text = e.value(py).to_string();
    StreamError::Tasks(poisongate::clip_message(&format!("{what}: {text}")))
}

impl Tasks for PyTasks {
    fn map(&self, stage: &str, spec: &[u8], items: Vec<Item>) -> Result<Vec<Vec<u8>>, StreamError> {
        let n = items.len();
        let answers: Vec<Vec<u8>> = Python::attach(|py| {
            let items: Vec<(Bound<'_, PyBytes>, Vec<u64>)> = items
                .into_iter()
                .map(|i| (PyBytes::new(py, &i.bytes), i.shared))
                .collect();
            self.obj
                .call_method1(py, "map", (stage, PyBytes::new(py, spec), items))
                .and_then(|out| out.extract::<Vec<Vec<u8>>>(py))
                .map_err(|e| task_error(py, &format!("the Ray engine's `{stage}` tasks"), e))
        })?;
        if answers.len() != n {
            return Err(StreamError::Tasks(format!(
                "the Ray engine's `{stage}` tasks answered {} of {n} items",
                answers.len()
            )));
        }
        Ok(answers)
    }

    fn share(&self, blob: Vec<u8>) -> Result<u64, StreamError> {
        Python::attach(|py| {
            self.obj
                .call_method1(py, "share", (PyBytes::new(py, &blob),))
                .and_then(|h| h.extract::<u64>(py))
                .map_err(|e| task_error(py, "the Ray engine's object store", e))
        })
    }

    fn release(&self) -> Result<(), StreamError> {
        Python::attach(|py| {
            self.obj
                .call_method0(py, "release")
                .map(drop)
                .map_err(|e| task_error(py, "the Ray engine's object store", e))
        })
    }

    fn embed(&self, spec: &RawSpec, sink: &Sink<'_>) -> Result<(), StreamError> {
        let what = "the Ray engine's embedding step";
        Python::attach(|py| -> Result<(), StreamError> {
            let shards = self
                .obj
                .call_method1(
                    py,
                    "embed",
                    (
                        PyBytes::new(py, &spec.encode()),
                        spec.files.clone(),
                        spec.columns.clone(),
                    ),
                )
                .and_then(|it| it.into_bound(py).try_iter())
                .map_err(|e| task_error(py, what, e))?;
            for shard in shards {
                let (first, bytes): (usize, Vec<u8>) = shard
                    .and_then(|s| s.extract())
                    .map_err(|e| task_error(py, what, e))?;
                if bytes.len() % 4 != 0 {
                    return Err(StreamError::Tasks(format!(
                        "{what}: the shard at row {first} answered {} bytes, not f32 values",
                        bytes.len()
                    )));
                }
                let values: Vec<f32> = bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                py.detach(|| sink(first, &values))?;
            }
            Ok(())
        })
    }

    fn embed_shards(
        &self,
        stage: &str,
        spec: &[u8],
        items: Vec<Vec<u8>>,
        sink: &AnswerSink<'_>,
    ) -> Result<(), StreamError> {
        let what = format!("the Ray engine's `{stage}` step");
        let what = what.as_str();
        Python::attach(|py| -> Result<(), StreamError> {
            let items: Vec<Bound<'_, PyBytes>> =
                items.iter().map(|i| PyBytes::new(py, i)).collect();
            let answers = self
                .obj
                .call_method1(py, "embed_shards", (stage, PyBytes::new(py, spec), items))
                .and_then(|it| it.into_bound(py).try_iter())
                .map_err(|e| task_error(py, what, e))?;
            for answer in answers {
                let answer: Vec<u8> = answer
                    .and_then(|a| a.extract())
                    .map_err(|e| task_error(py, what, e))?;
                py.detach(|| sink(&answer))?;
            }
            Ok(())
        })
    }

    fn describe(&self) -> String {
        Python::attach(|py| {
            self.obj
                .call_method0(py, "describe")
                .and_then(|d| d.extract::<String>(py))
                .unwrap_or_else(|_| "Ray".into())
        })
    }
}

/// A scan whose streaming steps run as `tasks`' tasks (`poisongate.ray.scan`): the input is a
/// path to a Parquet table of numeric features.
#[pyfunction]
#[pyo3(signature = (path, name, args, tasks, progress))]
pub(crate) fn scan_tasks(
    py: Python<'_>,
    path: String,
    name: String,
    args: Vec<String>,
    tasks: Py<PyAny>,
    progress: bool,
) -> PyResult<NativeReport> {
    let config = scan_config(&path, args, progress)?;
    let bars = Progress::new(config.input.progress);
    let tasks = PyTasks { obj: tasks };
    let outcome = run_engine(py, &bars, move |bars| {
        engine::scan_with_tasks(&config, &tasks, bars)
    })?;
    NativeReport::new(outcome, name, true)
}

/// One task of the streaming scan (a worker of the Ray engine): `stage` on `item` with the
/// step's `spec` and the item's `shared` blobs; the answer's bytes.
#[pyfunction]
#[pyo3(signature = (stage, spec, item, shared=Vec::new()))]
pub(crate) fn run_task<'py>(
    py: Python<'py>,
    stage: String,
    spec: Vec<u8>,
    item: Vec<u8>,
    shared: Vec<Vec<u8>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let answer = py
        .detach(|| {
            let blobs: Vec<&[u8]> = shared.iter().map(Vec::as_slice).collect();
            poisongate::stream::remote::run_task(&stage, &spec, &item, &blobs)
        })
        .map_err(|e| to_py(e.into()))?;
    Ok(PyBytes::new(py, &answer))
}

/// The raw view of one shard of the input (a worker of the Ray engine's embedding step):
/// `table` (any `__arrow_c_stream__` object, e.g. a PyArrow table of the shard's feature
/// columns) with the step's `spec`; the values as little-endian f32 bytes, row-major.
#[pyfunction]
pub(crate) fn embed_shard<'py>(
    py: Python<'py>,
    spec: Vec<u8>,
    table: &Bound<'py, PyAny>,
    shard: String,
) -> PyResult<Bound<'py, PyBytes>> {
    let Source::Frame(df) = read_stream(table, &shard)? else {
        return Err(InputError::new_err(
            "embed_shard() takes a table, not a path",
        ));
    };
    let values = py
        .detach(|| -> Result<Vec<f32>, StreamError> {
            let spec = RawSpec::decode(&spec)?;
            poisongate::stream::remote::embed_frame(&spec, &df, &shard)
        })
        .map_err(|e| to_py(e.into()))?;
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    Ok(PyBytes::new(py, &bytes))
}

/// A worker of the Ray engine's embedding steps (a Ray Data actor): embeds shards of images
/// (`images`) or texts (`texts`) with the step's settings, its model loaded once.
#[pyclass(module = "poisongate._poisongate", frozen)]
pub(crate) struct ShardWorker {
    worker: remote::Worker,
}

#[pymethods]
impl ShardWorker {
    #[new]
    fn new(py: Python<'_>, stage: String, spec: Vec<u8>) -> PyResult<Self> {
        let worker = py
            .detach(|| remote::Worker::new(&stage, &spec))
            .map_err(|e| to_py(e.into()))?;
        Ok(ShardWorker { worker })
    }

    /// One shard (an item of the step): the answer's bytes.
    fn run<'py>(&self, py: Python<'py>, item: Vec<u8>) -> PyResult<Bound<'py, PyBytes>> {
        let answer = py
            .detach(|| self.worker.run(&item))
            .map_err(|e| to_py(e.into()))?;
        Ok(PyBytes::new(py, &answer))
    }
}
