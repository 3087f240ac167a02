//! The streaming scan: a Parquet table of numeric features whose in-memory scan would need
//! more than the memory limit (`--memory-limit`) is read one column at a time and kept on
//! disk, in a work folder that is removed when the scan ends.
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
//! model's view is not implemented for streaming. The report says what was left out.

pub mod ivf;
pub mod spill;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Instant;

use polars::prelude::*;
use rayon::prelude::*;

use self::spill::Spill;
use crate::cli::config::ScanConfig;
use crate::dataset::{Dataset, Format, Ids, Labels, Origin, Payload, SpilledTable};
use crate::detect::knn::NeighbourIndex;
use crate::detect::{clustering, knn, shift, spectral, Detection, Points};
use crate::embed::{raw, EmbedError, Subset, View};
use crate::pipeline::{Analysis, DetectConfig, DetectorKind, Run, ViewRun};
use crate::progress::Progress;
use crate::report::detection;
use crate::scan::Outcome;
use crate::source::tabular::{self, Frame, PayloadRole, Roles, TabularFormat, TabularInput};
use crate::source::{self, guard, Input, SourceError};
use crate::validate::schema::Schema;
use crate::validate::{self, Finding};
use crate::verdict;
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
}

impl StreamError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        StreamError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Bytes a row of `features` numeric columns costs the in-memory scan at its peak, estimated:
/// the f64 frame polars reads (8 a value), the f32 table (4), the raw view (4) and the probe's
/// copy of its input (4), plus about 200 bytes a row for labels, votes, neighbour lists and
/// scores. `benches/stream.sh` measures it against the scan's peak.
pub fn in_memory_bytes(rows: u64, features: u64) -> u64 {
    rows.saturating_mul(features.saturating_mul(20).saturating_add(200))
}

/// The default memory limit: half the machine's memory (`MemTotal`), or None where it cannot
/// be read (the scan then stays in memory unless a limit is given).
pub fn default_limit() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024 / 2)
}

/// Why a scan streams: its size, the estimate and the limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub input: TabularInput,
    pub rows: u64,
    pub features: usize,
    pub estimate: u64,
    pub limit: u64,
}

/// Whether `config`'s input is streamed: a Parquet table of numeric features whose in-memory
/// scan is estimated above the memory limit. Returns the plan and the input's listing
/// findings. Anything else stays in memory.
pub fn plan(config: &ScanConfig) -> Result<Option<(Plan, Vec<Finding>)>, Error> {
    let Some(limit) = config.memory_limit.or_else(default_limit) else {
        return Ok(None);
    };
    let (input, findings) = source::detect(&config.input.path)?;
    let Input::Tabular(input) = input else {
        return Ok(None);
    };
    if input.format != TabularFormat::Parquet {
        return Ok(None);
    }
    let mut rows = 0;
    for path in &input.files {
        rows += source::parquet_check::check(path)?;
    }
    let (_, file_schema) = schema(&input)?;
    let roles = tabular::resolve_roles(&input, &file_schema, &config.input.columns)?;
    let PayloadRole::Features(features) = &roles.payload else {
        return Ok(None);
    };
    let estimate = in_memory_bytes(rows, features.len() as u64);
    if features.is_empty() || estimate <= limit {
        return Ok(None);
    }
    let plan = Plan {
        features: features.len(),
        input,
        rows,
        estimate,
        limit,
    };
    Ok(Some((plan, findings)))
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

fn schema(input: &TabularInput) -> Result<(LazyFrame, SchemaRef), SourceError> {
    let mut lf = tabular::scan(input, None)?;
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
/// step, on stderr (Linux): how `benches/stream.sh` finds which step sets the peak.
fn trace(step: &str) {
    if std::env::var_os("POISONGATE_TRACE_MEMORY").is_none() {
        return;
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map_or("?".to_string(), |v| v.trim().to_string())
    };
    eprintln!(
        "poisongate: memory after {step}: peak {}, now {}",
        field("VmHWM:"),
        field("VmRSS:")
    );
}

/// Rows a block of the row passes holds.
const ROW_BLOCK: usize = 65536;

/// The streaming scan of `plan`'s input; `findings` are its listing's.
pub fn scan(
    config: &ScanConfig,
    declared: Option<&Schema>,
    plan: Plan,
    mut findings: Vec<Finding>,
    progress: &Progress,
) -> Result<Outcome, Error> {
    let input = &plan.input;
    let parent = config.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let work = tempfile::Builder::new()
        .prefix("poisongate-")
        .tempdir_in(&parent)
        .map_err(|e| StreamError::io(&parent, e))?;
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
            format: Format::Parquet,
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
        (Some(_), None) => detection::Outcome::Skipped(
            "the dataset has no label column (name one with --label); every detector compares samples within and across classes".into(),
        ),
        (Some(detect), Some(subset)) => {
            let budget = (plan.limit / 4) as usize;
            let analysis = analyse(
                &dataset,
                columns,
                subset,
                detect,
                &plan,
                work.path(),
                budget,
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
    let mut column = vec![0f32; ROW_BLOCK.min(n)];
    let mut rows = vec![0f32; ROW_BLOCK.min(n) * d];
    for start in (0..n).step_by(ROW_BLOCK) {
        let len = ROW_BLOCK.min(n - start);
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

/// A size for a message: "3.0 GiB", "512.0 MiB", "1.0 KiB", "12 B".
fn bytes(b: u64) -> String {
    let units = [
        (1u64 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ];
    units
        .iter()
        .find(|(size, _)| b >= *size)
        .map_or(format!("{b} B"), |(size, unit)| {
            format!("{:.1} {unit}", b as f64 / *size as f64)
        })
}

#[allow(clippy::too_many_arguments)]
fn analyse(
    dataset: &Dataset,
    columns: Spill,
    subset: Subset,
    config: &DetectConfig,
    plan: &Plan,
    work: &Path,
    budget: usize,
    progress: &Progress,
) -> Result<Analysis, Error> {
    if subset.is_empty() {
        let why = subset.excluded.first().map_or("no rows", |e| e.1);
        return Err(EmbedError::NothingUsable(why.to_string()).into());
    }
    let mut notes = vec![format!(
        "streamed: the in-memory scan of {} rows x {} features was estimated at {}, over the memory limit of {} (--memory-limit); the columns were read one at a time and the raw view kept on disk",
        plan.rows, plan.features, bytes(plan.estimate), bytes(plan.limit)
    )];
    let Some((_, detectors)) = config.plan.iter().find(|(v, _)| *v == View::Raw) else {
        return Err(StreamError::Unsupported(format!(
            "{}: this table is streamed (its in-memory scan was estimated at {}, over the memory limit of {}), and a streaming scan computes the raw view only; run it with --embedder auto or raw, or raise --memory-limit",
            dataset.origin.path, bytes(plan.estimate), bytes(plan.limit)
        ))
        .into());
    };
    for (view, _) in config.plan.iter().filter(|(v, _)| *v != View::Raw) {
        notes.push(format!(
            "the {} view was not computed: a streaming scan computes the raw view only",
            view.name()
        ));
    }
    if config.device == crate::device::DeviceChoice::Cuda {
        notes.push("--device cuda was not used: a streaming scan runs on the CPU".into());
    }

    // The raw view, on disk.
    let t = Instant::now();
    // One column a row of `columns`, each of every dataset row.
    let (d, n) = (columns.rows, columns.dim);
    let mut centre = vec![0f32; d];
    let mut scale = vec![0f32; d];
    let mut column = vec![0f32; n];
    let mut picked = Vec::with_capacity(subset.len());
    for j in 0..d {
        columns.read_rows(j, &mut column)?;
        picked.clear();
        picked.extend(subset.rows.iter().map(|&r| column[r as usize]));
        (centre[j], scale[j]) = raw::column_scale(&mut picked);
    }
    drop((column, picked));
    let view = Spill::create(&work.join("raw.f32"), subset.len(), d)?;
    let mut cursor = 0usize;
    let mut scaled = Vec::new();
    let mut first: Option<Vec<f32>> = None;
    let mut all_same = true;
    let mut non_finite = None;
    for_row_blocks(&columns, d, n, |start, block| {
        scaled.clear();
        let end = start + block.len() / d;
        let from = cursor;
        while cursor < subset.len() && (subset.rows[cursor] as usize) < end {
            let r = subset.rows[cursor] as usize - start;
            let at = scaled.len();
            scaled.extend(
                block[r * d..(r + 1) * d]
                    .iter()
                    .zip(&centre)
                    .zip(&scale)
                    .map(|((&x, c), s)| (x - c) * s),
            );
            let out = &scaled[at..];
            if non_finite.is_none() && out.iter().any(|v| !v.is_finite()) {
                non_finite = Some(subset.rows[cursor]);
            }
            match &first {
                None => first = Some(out.to_vec()),
                Some(f) => all_same &= f.as_slice() == out,
            }
            cursor += 1;
        }
        view.write_rows(from, &scaled)
    })?;
    // The columns are not read again: their file goes now, not at the end.
    columns.remove()?;
    if let Some(row) = non_finite {
        return Err(EmbedError::NonFinite {
            view: View::Raw.name().to_string(),
            row,
        }
        .into());
    }
    let view_seconds = t.elapsed().as_secs_f64();
    trace("raw view");
    let detectors: &[DetectorKind] = if all_same {
        notes.push("every row has the same raw embedding: no detector can tell samples apart in that view, so none ran on it".into());
        &[]
    } else {
        detectors
    };

    let all: Vec<usize> = (0..subset.n_classes).collect();
    // A per-class detector over every class of the view on disk.
    let by_class = |detector: &'static str,
                    parameters: Vec<(String, String)>,
                    f: &ClassDetector<'_>|
     -> Result<Detection, StreamError> {
        let outcomes = per_class(progress, &view, &subset, budget, &all, &[], |p, c, r, _| {
            f(p, c, r)
        })?;
        Ok(assemble(detector, parameters, &subset, outcomes))
    };
    let mut runs = Vec::new();
    let mut votes = Vec::new();
    for detector in detectors {
        if progress.cancelled() {
            return Err(EmbedError::Cancelled.into());
        }
        let t = Instant::now();
        let detection = match detector {
            DetectorKind::Knn => {
                if config.knn.index != NeighbourIndex::Ivf {
                    notes.push(format!(
                        "k-NN used the inverted-file search (--knn-index {} applies in memory): a streaming scan searches the file on disk, and states the recall it measured",
                        format!("{:?}", config.knn.index).to_lowercase()
                    ));
                }
                let k = config.knn.k.min(subset.len().saturating_sub(1));
                let spinner = progress.spinner("k-NN (inverted file on disk)");
                let (nn, report) = ivf::neighbours(
                    &view,
                    k,
                    config.knn.probe,
                    config.knn.min_recall,
                    work,
                    progress,
                )?;
                spinner.finish_and_clear();
                let (detection, v) =
                    knn::judge(nn, &subset, k, NeighbourIndex::Ivf, report, View::Raw);
                votes.push((View::Raw, v));
                detection
            }
            DetectorKind::Clustering => by_class(
                "clustering",
                clustering::parameters(&config.clustering),
                &|points, class, rows| {
                    clustering::class_outcome(points, class, rows, &config.clustering)
                        .map(|o| (o.scores, o.flags, o.statistic))
                },
            )?,
            DetectorKind::Spectral => by_class(
                "spectral",
                spectral::parameters(&config.spectral),
                &|points, class, rows| {
                    spectral::class_run(points, class, rows, &config.spectral)
                        .map(|o| (o.scores, o.flags, o.statistic))
                },
            )?,
        };
        trace(detection.detector);
        runs.push(Run {
            detection,
            seconds: t.elapsed().as_secs_f64(),
        });
    }

    // The shifted-copy test on the judged view (the raw view), class by class.
    let (excluded, judged) = verdict::neighbour_flags(&subset, &votes, &config.verdict);
    let mut copies = None;
    if judged == Some(View::Raw) && config.shift.threshold > 0.0 {
        let t = Instant::now();
        let (detection, found) =
            shifted_copies(progress, &view, &subset, &excluded, budget, &config.shift)?;
        runs.push(Run {
            detection,
            seconds: t.elapsed().as_secs_f64(),
        });
        copies = Some(found);
    }
    trace("shift");
    let t = Instant::now();
    let mut verdict = verdict::decide(&subset, &votes, copies.as_ref(), None, &config.verdict);
    verdict.notes.splice(0..0, notes);
    Ok(Analysis {
        device: "cpu",
        subset,
        views: vec![ViewRun {
            view: View::Raw,
            dim: d,
            training: None,
            embedding: None,
            seconds: view_seconds,
        }],
        runs,
        verdict,
        verdict_config: config.verdict.clone(),
        judged_view: judged,
        shift_threshold: copies.as_ref().map(|c| c.threshold),
        verdict_seconds: t.elapsed().as_secs_f64(),
    })
}

/// One class's scores and flags (in its rows' order) and its statistic.
type ClassResult = (Vec<f32>, Vec<bool>, crate::detect::ClassStatistic);

/// A per-class detector: `(points, class, the class's positions in points)`.
type ClassDetector<'a> = dyn Fn(&Points<'_>, usize, &[u32]) -> Option<ClassResult> + Sync + 'a;

/// A detector's result over the subset from its classes' results.
fn assemble(
    detector: &'static str,
    parameters: Vec<(String, String)>,
    subset: &Subset,
    outcomes: Vec<(usize, Vec<u32>, Option<ClassResult>)>,
) -> Detection {
    let n = subset.len();
    let mut scores = vec![0f32; n];
    let mut flags = vec![false; n];
    let mut classes = Vec::new();
    for (_, rows, outcome) in outcomes {
        let Some((s, f, statistic)) = outcome else {
            continue;
        };
        for ((&r, s), f) in rows.iter().zip(s).zip(f) {
            scores[r as usize] = s;
            flags[r as usize] = f;
        }
        classes.push(statistic);
    }
    Detection {
        detector,
        view: View::Raw,
        parameters,
        scores,
        flags,
        classes,
    }
}

/// Each class's members (subset positions, ascending).
fn members(subset: &Subset) -> Vec<Vec<u32>> {
    let mut members = vec![Vec::new(); subset.n_classes];
    for (i, &c) in subset.labels.iter().enumerate() {
        members[c as usize].push(i as u32);
    }
    members
}

/// Runs `f(points, class, own, extra)` on each class of `which`: `points` holds the class's
/// rows and the rows `extra[class]`, read from `view`, in subset order; `own` and `extra` are
/// their positions in it (`extra` in the order given). Classes are read in batches of at most
/// `budget` bytes of rows (at least one class a batch) and run in parallel within a batch; a
/// batch of one class is used as read, without a copy. Returns each class's members (subset
/// positions) and its result.
fn per_class<T: Send>(
    progress: &Progress,
    view: &Spill,
    subset: &Subset,
    budget: usize,
    which: &[usize],
    extra: &[Vec<u32>],
    f: impl Fn(&Points<'_>, usize, &[u32], &[u32]) -> T + Sync,
) -> Result<Vec<(usize, Vec<u32>, T)>, StreamError> {
    let members = members(subset);
    let d = view.dim;
    let no_extra = Vec::new();
    let extra_of = |c: usize| extra.get(c).unwrap_or(&no_extra);
    // The class's rows and its extra rows, ascending.
    let wanted = |c: usize| -> Vec<u32> {
        let mut rows = members[c].clone();
        rows.extend_from_slice(extra_of(c));
        rows.sort_unstable();
        rows.dedup();
        rows
    };
    let run = |c: usize, rows: Vec<u32>, values: Vec<f32>| {
        // Every wanted row is in `rows`, which is sorted.
        let at = |r: &u32| rows.binary_search(r).unwrap_or_default() as u32;
        let own: Vec<u32> = members[c].iter().map(at).collect();
        let more: Vec<u32> = extra_of(c).iter().map(at).collect();
        let local_subset = Subset {
            labels: rows.iter().map(|&r| subset.labels[r as usize]).collect(),
            rows,
            n_classes: subset.n_classes,
            excluded: Vec::new(),
        };
        let points = Points::from_vec(values, d, &local_subset, View::Raw);
        let result = f(&points, c, &own, &more);
        (c, members[c].clone(), result)
    };
    let mut out = Vec::with_capacity(which.len());
    let mut first = 0;
    while first < which.len() {
        // The next batch of classes.
        let mut end = first;
        let mut size = 0usize;
        while end < which.len() {
            let c = which[end];
            let more = (members[c].len() + extra_of(c).len()) * d * 4;
            if end > first && size + more > budget {
                break;
            }
            size += more;
            end += 1;
        }
        if progress.cancelled() {
            return Err(StreamError::Interrupted);
        }
        let batch = &which[first..end];
        if let [c] = batch {
            let rows = wanted(*c);
            let values = view.gather(&rows, ROW_BLOCK)?;
            out.push(run(*c, rows, values));
        } else {
            let mut union: Vec<u32> = batch.iter().flat_map(|&c| wanted(c)).collect();
            union.sort_unstable();
            union.dedup();
            let values = view.gather(&union, ROW_BLOCK)?;
            let results: Vec<(usize, Vec<u32>, T)> = batch
                .par_iter()
                .map(|&c| {
                    let rows = wanted(c);
                    let mut local = Vec::with_capacity(rows.len() * d);
                    for r in &rows {
                        // Every wanted row is in the union, which is sorted.
                        let at = union.binary_search(r).unwrap_or_default();
                        local.extend_from_slice(&values[at * d..(at + 1) * d]);
                    }
                    run(c, rows, local)
                })
                .collect();
            out.extend(results);
        }
        first = end;
    }
    Ok(out)
}

/// [`shift::run`] class by class: each class is read with its sample of the other classes.
fn shifted_copies(
    progress: &Progress,
    view: &Spill,
    subset: &Subset,
    excluded: &[bool],
    budget: usize,
    config: &shift::ShiftConfig,
) -> Result<(Detection, shift::Copies), StreamError> {
    let order = shift::shuffled(subset.len(), config.seed);
    let others: Vec<Vec<u32>> = (0..subset.n_classes)
        .map(|c| shift::others_of(&order, &subset.labels, c as u32, config.sample))
        .collect();
    drop(order);
    let all: Vec<usize> = (0..subset.n_classes).collect();
    let tested = per_class(
        progress,
        view,
        subset,
        budget,
        &all,
        &others,
        |points, class, own, sample| {
            let global = |r: u32| points.subset.rows[r as usize];
            let excluded = |r: u32| excluded[global(r) as usize];
            let tested = shift::test_class(points, class, own, sample, excluded, config);
            // Members as subset positions.
            tested.map(|(side, pair)| {
                let pair = pair.map(|mut h| {
                    h.members = h.members.iter().map(|&r| global(r)).collect();
                    h
                });
                (side, pair)
            })
        },
    )?;
    let mut halves = Vec::new();
    let mut splits = Vec::new();
    for (class, _, result) in tested {
        if let Some((side, pair)) = result {
            halves.extend(pair);
            splits.push((class, side));
        }
    }
    // The member rule, on the classes whose halves fired.
    let fired = shift::firing(&halves, config);
    let mut classes: Vec<usize> = fired.iter().map(|&(p, _)| splits[p].0).collect();
    classes.dedup();
    let flagged = per_class(
        progress,
        view,
        subset,
        budget,
        &classes,
        &[],
        |points, class, own, _| {
            let global = |r: &u32| points.subset.rows[*r as usize];
            fired
                .iter()
                .filter(|&&(p, _)| splits[p].0 == class)
                .map(|&(p, h)| {
                    let side = &splits[p].1;
                    let found = shift::members_in_own_half(points, own, side, h == 1, config.k);
                    (p, h, found.iter().map(global).collect::<Vec<u32>>())
                })
                .collect::<Vec<_>>()
        },
    )?;
    for (_, _, found) in flagged {
        for (p, h, flagged) in found {
            let half = &mut halves[2 * p + h];
            half.fired = true;
            half.flagged = flagged;
        }
    }
    let copies = shift::Copies {
        view: View::Raw,
        threshold: config.threshold,
        halves,
    };
    let detection = shift::detection(subset.len(), View::Raw, &copies.halves, config);
    Ok((detection, copies))
}
