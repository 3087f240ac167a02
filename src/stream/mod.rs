//! The streaming scan: a Parquet table of numeric features whose in-memory scan would need
//! more than the memory limit (`--memory-limit`) is read one column at a time and kept on
//! disk, in a work folder that is removed when the scan ends. A CSV table is first copied to
//! Parquet there ([`csv`]).
//!
//! 1. **Columns.** The label and id columns are read first, then each feature column on its
//!    own. Every column check sees a whole column, so the findings are the in-memory scan's,
//!    and each column is written as f32 to `columns.f32` (one column after another).
//! 2. **Rows.** One pass over blocks of rows takes each row's 128-bit hash (the duplicate
//!    check groups by it and confirms by reading the rows back), and, when detection runs,
//!    writes the raw view (each column centred and scaled over the usable rows, as in memory)
//!    to `raw.f32`, row-major.
//! 3. **Detectors.** Activation clustering, spectral signatures and the shifted-copy test
//!    work class by class: a batch of classes is read from `raw.f32` (at most a quarter of the
//!    limit, and at least one class) and each class runs as in memory, so their results are
//!    the in-memory scan's. k-NN label consistency uses the inverted-file search on the file
//!    ([`ivf`]), an approximate search whose recall is measured and reported.
//!
//! Only the raw view is computed: the probe would train on every row, and a pretrained
//! model's view is not implemented for tables. The report says what was left out. Image
//! folders stream in [`images`], with the raw or the MobileNetV2 view.

mod classes;
mod csv;
mod detect;
pub mod embedding;
#[cfg(test)]
mod image_tests;
pub mod images;
pub mod ivf;
mod planning;
pub mod remote;
pub mod spill;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod text_tests;
pub mod texts;
pub mod wire;

pub use self::planning::{default_limit, in_memory_bytes, plan, plan_for_tasks, Plan};

use std::path::{Path, PathBuf};

use polars::prelude::*;

use self::spill::Spill;
use crate::cli::config::ScanConfig;
use crate::dataset::{Dataset, Ids, Labels, Origin, Payload, SpilledTable};
use crate::embed::{EmbedError, Subset};
use crate::progress::Progress;
use crate::report::detection;
use crate::scan::Outcome;
use crate::source::tabular::{self, Frame, PayloadRole, Roles, TabularFormat, TabularInput};
use crate::source::{self, guard, SourceError};
use crate::validate::schema::Schema;
use crate::validate::{self, Finding};
use crate::Error;

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("{}: {source} (a file of the streaming scan's work folder; --work-dir chooses the folder)", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error("interrupted")]
    Interrupted,
    /// Another process's task failed (the Ray engine): its message.
    #[error("{0}")]
    Tasks(String),
}

impl StreamError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        StreamError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

fn polars_error(input: &TabularInput) -> impl Fn(PolarsError) -> SourceError + '_ {
    move |source| SourceError::Polars {
        path: input.path.clone(),
        format: input.format.name(),
        source,
    }
}

/// A polars call under the decoder guard (a corrupt page is an error, not a crash).
fn guarded<T>(
    input: &TabularInput,
    work: impl FnOnce() -> PolarsResult<T>,
) -> Result<T, SourceError> {
    guard::guarded(work)
        .unwrap_or_else(|panic| {
            Err(PolarsError::ComputeError(
                format!("the decoder failed on inconsistent data: {panic}").into(),
            ))
        })
        .map_err(polars_error(input))
}

/// The lazy frame of `input` and its schema. A CSV's column types are inferred from its
/// first rows, as the in-memory read first does: a full pass would read the whole file.
fn schema(input: &TabularInput) -> Result<(LazyFrame, SchemaRef), SourceError> {
    let infer =
        matches!(input.format, TabularFormat::Csv { .. }).then_some(tabular::CSV_INFER_ROWS);
    let mut lf = tabular::scan(input, infer)?;
    let schema = guarded(input, || lf.collect_schema())?;
    Ok((lf, schema))
}

/// The declared schema's rules for the columns `keep` accepts.
fn declared_for(declared: Option<&Schema>, keep: impl Fn(&str) -> bool) -> Option<Schema> {
    declared.map(|d| Schema {
        labels: d.labels.clone(),
        columns: d
            .columns
            .iter()
            .filter(|(name, _)| keep(name))
            .map(|(n, r)| (n.clone(), r.clone()))
            .collect(),
    })
}

/// With `POISONGATE_TRACE_MEMORY` set, the peak and current resident memory at the end of a
/// step, and the seconds since the first step traced, on stderr (Linux): how
/// `benches/stream.sh` finds which step sets the peak and what each step costs.
pub(crate) fn trace(step: &str) {
    static FIRST: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    if std::env::var_os("POISONGATE_TRACE_MEMORY").is_none() {
        return;
    }
    let first = FIRST.get_or_init(std::time::Instant::now);
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map_or("?".to_string(), |v| v.trim().to_string())
    };
    eprintln!(
        "poisongate: memory after {step}: peak {}, now {} ({:.1} s)",
        field("VmHWM:"),
        field("VmRSS:"),
        first.elapsed().as_secs_f64()
    );
}

/// Rows a block of the row passes holds.
const ROW_BLOCK: usize = 65536;

/// The streaming scan of `plan`'s input; `findings` are its listing's. With `tasks`, the raw
/// view, the per-class detectors and the k-NN search run as their tasks.
pub fn scan(
    config: &ScanConfig,
    declared: Option<&Schema>,
    mut plan: Plan,
    mut findings: Vec<Finding>,
    tasks: Option<&dyn remote::Tasks>,
    progress: &Progress,
) -> Result<Outcome, Error> {
    let parent = config.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let work = tempfile::Builder::new()
        .prefix("poisongate-")
        .tempdir_in(&parent)
        .map_err(|e| StreamError::io(&parent, e))?;
    trace("plan");
    let format = plan.input.format.dataset_format();
    // A CSV table is read from its Parquet copy, removed once its columns are read.
    let copied = match plan.input.format {
        TabularFormat::Csv { separator } => {
            (plan.input, plan.rows) =
                csv::to_parquet(&plan.input, separator, work.path(), progress)?;
            trace("CSV to Parquet");
            true
        }
        _ => false,
    };
    let input = &plan.input;
    let (lf, file_schema) = schema(input)?;
    let roles = tabular::resolve_roles(input, &file_schema, &config.input.columns)?;
    let PayloadRole::Features(features) = roles.payload.clone() else {
        return Err(
            StreamError::Unsupported("a streaming scan reads numeric features".into()).into(),
        );
    };
    let n = plan.rows as usize;
    if n == 0 {
        return Err(SourceError::NoRows(input.path.clone()).into());
    }
    let polars = polars_error(input);

    // 1. The label, the id and other declared columns, then each feature column.
    let mut head: Vec<String> = roles.label.iter().chain(&roles.id).cloned().collect();
    for name in declared.iter().flat_map(|d| d.columns.keys()) {
        if file_schema.contains(name) && !head.contains(name) && !features.contains(name) {
            head.push(name.clone());
        }
    }
    let spinner = progress.spinner(format!("reading labels of {}", input.path.display()));
    let select: Vec<Expr> = head.iter().map(|c| col(c.as_str())).collect();
    let df = if select.is_empty() {
        DataFrame::empty()
    } else {
        guarded(input, || lf.clone().select(select).collect())?
    };
    // The footer's row count sizes what follows: a column that disagrees is an error before
    // anything is allocated by it.
    let rows_check = |height: usize, what: &str| {
        if height == n {
            return Ok(());
        }
        Err(StreamError::Unsupported(format!(
            "{}: {what} has {height} rows; the Parquet footer counts {n}",
            input.path.display()
        )))
    };
    if !head.is_empty() {
        rows_check(df.height(), "the label and id columns")?;
    }
    let frame = Frame {
        input: input.clone(),
        df,
        roles: Roles {
            label: roles.label.clone(),
            id: roles.id.clone(),
            payload: PayloadRole::Features(Vec::new()),
            ignored: Vec::new(),
        },
        file_schema: file_schema.clone(),
    };
    let declared_head = declared_for(declared, |c| !features.iter().any(|f| f == c));
    findings.extend(validate::columns::check(&frame, declared_head.as_ref()).map_err(&polars)?);
    let ids = match &roles.id {
        Some(name) => Ids::Column {
            name: name.clone(),
            values: source::frame::strings(&frame.df, name).map_err(&polars)?,
        },
        None => Ids::RowNumber(n),
    };
    let labels = match &roles.label {
        // Integers as integers: a text copy of 20M labels costs more than all else read so far.
        Some(name)
            if frame.df.column(name).is_ok_and(|c| {
                c.dtype().is_integer() && !matches!(c.dtype(), DataType::UInt64)
            }) =>
        {
            let c = frame
                .df
                .column(name)
                .and_then(|c| c.cast(&DataType::Int64))
                .map_err(&polars)?;
            let values = c.i64().map_err(&polars)?;
            Some(Labels::from_integers(name.clone(), || values.iter()))
        }
        Some(name) => {
            let c = frame
                .df
                .column(name)
                .and_then(|c| c.cast(&DataType::String))
                .map_err(&polars)?;
            let names = c.str().map_err(&polars)?;
            Some(Labels::from_iter(name.clone(), || names.iter()))
        }
        None => None,
    };
    drop(frame);
    spinner.finish_and_clear();
    trace("labels");

    let columns = Spill::create(&work.path().join("columns.f32"), features.len(), n)?;
    let mut finite: Vec<bool> = Vec::new();
    let mut kept: Vec<String> = Vec::new();
    let mut ignored = roles.ignored.clone();
    let bar = progress.bar(features.len() as u64, "reading columns");
    for name in &features {
        if progress.cancelled() {
            return Err(EmbedError::Cancelled.into());
        }
        let df = guarded(input, || lf.clone().select([col(name.as_str())]).collect())?;
        rows_check(df.height(), &format!("column `{name}`"))?;
        if finite.is_empty() {
            finite = vec![true; n];
        }
        let mut one = Roles {
            label: None,
            id: None,
            payload: PayloadRole::Features(vec![name.clone()]),
            ignored: Vec::new(),
        };
        let df = if config.input.columns.features.is_none() {
            tabular::settle_text_columns(&mut one, df).map_err(&polars)?
        } else {
            df
        };
        ignored.append(&mut one.ignored);
        if matches!(&one.payload, PayloadRole::Features(f) if f.is_empty()) {
            bar.inc(1);
            continue;
        }
        let frame = Frame {
            input: input.clone(),
            df,
            roles: one,
            file_schema: file_schema.clone(),
        };
        let declared_one = declared_for(declared, |c| c == name);
        findings.extend(validate::columns::check(&frame, declared_one.as_ref()).map_err(&polars)?);
        let values = frame
            .df
            .column(name)
            .and_then(|c| c.cast(&DataType::Float32))
            .map_err(&polars)?;
        let mut column = vec![f32::NAN; n];
        for (slot, v) in column.iter_mut().zip(values.f32().map_err(&polars)?.iter()) {
            if let Some(v) = v {
                *slot = v;
            }
        }
        for (f, v) in finite.iter_mut().zip(&column) {
            *f &= v.is_finite();
        }
        columns.write_rows(kept.len(), &column)?;
        kept.push(name.clone());
        bar.inc(1);
    }
    bar.finish_and_clear();
    trace("columns");
    if copied && tasks.is_none() {
        drop(lf);
        for file in &input.files {
            std::fs::remove_file(file).map_err(|e| StreamError::io(file, e))?;
        }
    }
    if kept.is_empty() {
        return Err(SourceError::NoFeatures {
            path: input.path.clone(),
            available: tabular::available(&file_schema),
        }
        .into());
    }

    // 2. Each row's hash, for the duplicate check.
    let d = kept.len();
    let mut keyed: Vec<(u128, u32)> = Vec::with_capacity(n);
    for_row_blocks(&columns, d, n, |start, block| {
        for (i, row) in block.chunks(d).enumerate() {
            let hash = xxhash_rust::xxh3::xxh3_128(validate::rows::bytes_of(row));
            keyed.push((hash, (start + i) as u32));
        }
        Ok(())
    })?;
    let dataset = Dataset {
        origin: Origin {
            path: input.path.display().to_string(),
            format,
            files: input.files.len(),
            ignored_columns: ignored,
        },
        ids,
        labels,
        payload: Payload::Spilled(SpilledTable {
            columns: kept,
            finite,
        }),
    };
    findings.extend(validate::rows::check(&dataset, declared));
    findings.extend(validate::rows::spilled_duplicates(
        &dataset, keyed, &columns,
    ));
    validate::finish(&mut findings, &dataset, config.strict);
    trace("validation");

    // 3. Detection.
    let detection = match (&config.detect, Subset::usable(&dataset)) {
        (None, _) => detection::Outcome::NotRequested,
        (Some(_), None) => detection::Outcome::Skipped(crate::scan::NO_LABELS.into()),
        (Some(detect), Some(subset)) => {
            // A batch handed to tasks exists several times at once in this process: the
            // items, their Python bytes, Ray's serialised copy and the object store's pages
            // this process wrote (5.0 GiB at 5M rows under a 3 GiB limit with a quarter).
            let share = if tasks.is_some() { 16 } else { 4 };
            let budget = (plan.limit / share) as usize;
            let analysis = detect::analyse(
                &dataset,
                columns,
                subset,
                detect,
                &plan,
                work.path(),
                budget,
                tasks,
                progress,
            )?;
            detection::Outcome::Ran(Box::new(analysis))
        }
    };
    Ok(crate::scan::outcome(config, dataset, findings, detection))
}

/// Calls `f(first_row, rows)` on row-major blocks of the column-major `columns` (`d` columns
/// of `n` values).
fn for_row_blocks(
    columns: &Spill,
    d: usize,
    n: usize,
    mut f: impl FnMut(usize, &[f32]) -> Result<(), StreamError>,
) -> Result<(), StreamError> {
    let block = ROW_BLOCK.min(spill::rows_within(spill::BLOCK_BYTES, d));
    let mut column = vec![0f32; block.min(n)];
    let mut rows = vec![0f32; block.min(n) * d];
    for start in (0..n).step_by(block) {
        let len = block.min(n - start);
        for j in 0..d {
            columns.read_at(j, start, &mut column[..len])?;
            for (i, &v) in column[..len].iter().enumerate() {
                rows[i * d + j] = v;
            }
        }
        f(start, &rows[..len * d])?;
    }
    Ok(())
}
