//! `poisongate scan`: read, validate, report, and return the gate's verdict.

use crate::cli::config::{Columns, InputConfig, ScanConfig};
use crate::dataset::Dataset;
use crate::pipeline::{analyse, DetectConfig};
use crate::progress::Progress;
use crate::report::{self, detection, Report, RowFlags};
use crate::source::{self, frame, image_dir, tabular, Input, SourceError};
use crate::validate::schema::Schema;
use crate::validate::{self, Finding, Rule};
use crate::{Error, ExitStatus};

pub fn run(config: &ScanConfig) -> Result<ExitStatus, Error> {
    let progress = Progress::new(config.input.progress);
    let outcome = scan(config, &progress)?;
    crate::stream::trace("report");
    if let Some(dir) = &config.out {
        report::write_dir(
            dir,
            Some(&config.input.path),
            &outcome.report,
            &outcome.dataset,
            &outcome.flags,
            &outcome.detection,
        )?;
        crate::stream::trace("scores");
    }
    if let Some(path) = &config.html {
        let (input, o) = (&config.input.path, &outcome);
        report::html::write_scan(path, Some(input), &o.report, &o.dataset, &o.detection)?;
    }
    report::print(&outcome.report, config.format)?;
    Ok(outcome.report.status())
}

/// What a scan produced, before anything is written.
pub struct Outcome {
    pub dataset: Dataset,
    pub report: Report,
    pub flags: RowFlags,
    pub detection: detection::Outcome,
}

/// Why detection is skipped on a dataset without labels.
pub(crate) const NO_LABELS: &str = "the dataset has no label column (name one with --label); every detector compares samples within and across classes";

/// Runs detection, or says why it cannot run on this dataset (no labels). Real failures (an unreadable `.npy`, a diverging probe) are errors.
fn detect_outcome(
    dataset: &Dataset,
    config: &DetectConfig,
    progress: &Progress,
) -> Result<detection::Outcome, Error> {
    if dataset.labels.is_none() {
        return Ok(detection::Outcome::Skipped(crate::scan::NO_LABELS.into()));
    }
    match analyse(dataset, config, progress)? {
        Some(analysis) => Ok(detection::Outcome::Ran(Box::new(analysis))),
        None => Ok(detection::Outcome::Skipped("no labels".into())),
    }
}

/// Reads and validates the input and builds the report; writes nothing.
pub fn scan(config: &ScanConfig, progress: &Progress) -> Result<Outcome, Error> {
    let declared = declared_schema(config)?;
    if let Some((plan, findings)) = crate::stream::plan(config)? {
        return crate::stream::scan(config, declared.as_ref(), plan, findings, None, progress);
    }
    use crate::stream::images::{self, Planned};
    match images::plan(config, progress)? {
        Some(Planned::Stream(plan, findings)) => {
            let declared = declared.as_ref();
            return images::scan(config, declared, plan, findings, None, progress);
        }
        Some(Planned::InMemory(dataset, mut findings)) => {
            findings.extend(image_folder_schema(declared.as_ref()));
            return finish(config, declared.as_ref(), dataset, findings, progress);
        }
        None => {}
    }
    let (dataset, findings) = load(&config.input, declared.as_ref(), progress)?;
    finish_or_stream(config, declared.as_ref(), dataset, findings, progress)
}

/// [`finish`], or for a text table whose in-memory scan is estimated over the memory limit,
/// its detection with the MiniLM view on disk (`stream::texts`).
fn finish_or_stream(
    config: &ScanConfig,
    declared: Option<&Schema>,
    dataset: Dataset,
    findings: Vec<Finding>,
    progress: &Progress,
) -> Result<Outcome, Error> {
    if let Some(streamed) = crate::stream::texts::streams(config, &dataset) {
        return crate::stream::texts::finish(
            config,
            declared,
            dataset,
            findings,
            None,
            Some(streamed),
            progress,
        );
    }
    finish(config, declared, dataset, findings, progress)
}

/// [`scan`] with the streaming scan's parallel steps run by `tasks` (the Ray engine): the
/// input must be an image folder, a Parquet table of numeric features, or a table with a text
/// column (`--text-col`, read in memory, its MiniLM view computed by `tasks`), and its
/// detection streams whatever its size.
pub fn scan_with_tasks(
    config: &ScanConfig,
    tasks: &dyn crate::stream::remote::Tasks,
    progress: &Progress,
) -> Result<Outcome, Error> {
    let declared = declared_schema(config)?;
    if crate::stream::texts::wanted(config) {
        return crate::stream::texts::scan(config, declared.as_ref(), tasks, progress);
    }
    if let Some((plan, findings)) = crate::stream::images::plan_for_tasks(config, progress)? {
        let (declared, tasks) = (declared.as_ref(), Some(tasks));
        return crate::stream::images::scan(config, declared, plan, findings, tasks, progress);
    }
    let (plan, findings) = crate::stream::plan_for_tasks(config)?;
    crate::stream::scan(
        config,
        declared.as_ref(),
        plan,
        findings,
        Some(tasks),
        progress,
    )
}

/// [`scan`] of a table already in memory (the Python package): `config.input.path` only names
/// it. The same column roles, checks, detection and report as a file.
pub fn scan_frame(
    config: &ScanConfig,
    frame: polars::prelude::DataFrame,
    progress: &Progress,
) -> Result<Outcome, Error> {
    let declared = declared_schema(config)?;
    let (dataset, findings) = load_frame(&config.input, frame, declared.as_ref(), progress)?;
    finish_or_stream(config, declared.as_ref(), dataset, findings, progress)
}

/// [`load`] of a table already in memory; `config.path` only names it.
pub fn load_frame(
    config: &InputConfig,
    frame: polars::prelude::DataFrame,
    declared: Option<&Schema>,
    progress: &Progress,
) -> Result<(Dataset, Vec<Finding>), Error> {
    let name = config.path.display().to_string();
    let frame = tabular::read_frame(
        frame,
        &name,
        &config.columns,
        declared,
        config.payload_optional,
    )?;
    frame_dataset(frame, config, declared, progress)
}

fn declared_schema(config: &ScanConfig) -> Result<Option<Schema>, Error> {
    Ok(config
        .input
        .schema
        .as_deref()
        .map(Schema::load)
        .transpose()?)
}

fn finish(
    config: &ScanConfig,
    declared: Option<&Schema>,
    dataset: Dataset,
    mut findings: Vec<Finding>,
    progress: &Progress,
) -> Result<Outcome, Error> {
    findings.extend(validate::rows::check(&dataset, declared));
    validate::finish(&mut findings, &dataset, config.strict);
    let detection = match &config.detect {
        None => detection::Outcome::NotRequested,
        Some(detect) => detect_outcome(&dataset, detect, progress)?,
    };
    Ok(outcome(config, dataset, findings, detection))
}

/// The report of validated findings and detection, under the gate's policy.
pub(crate) fn outcome(
    config: &ScanConfig,
    dataset: Dataset,
    findings: Vec<Finding>,
    detection: detection::Outcome,
) -> Outcome {
    let policy = report::GatePolicy {
        strict: config.strict,
        max_label_issues: config.max_label_issues,
    };
    let (report, flags) = Report::build(&dataset, findings, &detection, policy);
    Outcome {
        dataset,
        report,
        flags,
        detection,
    }
}

/// Reads the input into a dataset, with the findings of the reading and column checks.
pub fn load(
    config: &InputConfig,
    declared: Option<&Schema>,
    progress: &Progress,
) -> Result<(Dataset, Vec<Finding>), Error> {
    let (input, mut findings) = source::detect(&config.path)?;
    let dataset = match input {
        Input::Tabular(input) => {
            let spinner = progress.spinner(format!("reading {}", input.path.display()));
            let frame = tabular::read(&input, &config.columns, declared, config.payload_optional)?;
            spinner.finish_and_clear();
            let (dataset, column_findings) = frame_dataset(frame, config, declared, progress)?;
            findings.extend(column_findings);
            dataset
        }
        Input::ImageFolder(root) => {
            if config.columns != Columns::default() {
                return Err(SourceError::ColumnsOnImageFolder(root).into());
            }
            let (dataset, listing_findings) = image_dir::load(&root, config.image_size, progress)?;
            findings.extend(listing_findings);
            findings.extend(image_folder_schema(declared));
            dataset
        }
    };
    Ok((dataset, findings))
}

/// An error for each column `declared` requires: an image folder has no columns.
pub(crate) fn image_folder_schema(declared: Option<&Schema>) -> Vec<Finding> {
    declared
        .into_iter()
        .flat_map(|d| {
            d.columns
                .iter()
                .filter(|(_, r)| r.required)
                .map(|(name, _)| {
                    Finding::error(
                        Rule::MissingColumn,
                        format!(
                            "the schema requires column `{name}`, but the input is an image folder"
                        ),
                    )
                    .column(name)
                })
        })
        .collect()
}

/// The column checks of a read frame, and the dataset it makes.
fn frame_dataset(
    frame: tabular::Frame,
    config: &InputConfig,
    declared: Option<&Schema>,
    progress: &Progress,
) -> Result<(Dataset, Vec<Finding>), Error> {
    let findings =
        validate::columns::check(&frame, declared).map_err(|source| SourceError::Polars {
            path: frame.input.path.clone(),
            format: frame.input.format.name(),
            source,
        })?;
    Ok((
        frame::into_dataset(frame, config.image_size, progress)?,
        findings,
    ))
}
