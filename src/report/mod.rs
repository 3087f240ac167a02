//! The report: one serde type, built from the dataset and its findings, rendered as a terminal
//! summary or JSON on stdout, and with `--out DIR` written as `DIR/report.json` plus
//! `DIR/scores.parquet`. Field meanings are documented in the README ("Report fields").

pub mod detection;
pub mod html;
pub mod scores;
pub mod text;

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cli::Format;
use crate::dataset::{Dataset, Payload};
use crate::validate::{Finding, Rule, Severity};
use crate::ExitStatus;

/// Bumped whenever a field changes meaning or disappears (adding fields does not bump it).
pub const SCHEMA_VERSION: u32 = 4;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot write {}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}", .path.display())]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("--out {} would write into the input {}; choose a folder outside it", .out.display(), .input.display())]
    OutIntoInput { out: PathBuf, input: PathBuf },
    #[error("--html {} would write into the input {}; choose a file outside it", .html.display(), .input.display())]
    HtmlIntoInput { html: PathBuf, input: PathBuf },
    #[error("--html {} is a folder; expected a file path such as report.html", .0.display())]
    HtmlIsFolder(PathBuf),
    #[error("cannot draw the plots for {}", .path.display())]
    Plot {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub tool: Tool,
    pub input: InputSummary,
    pub classes: Vec<ClassCount>,
    pub findings: Vec<Finding>,
    pub summary: Summary,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detection: Option<detection::DetectionReport>,
    pub gate: Gate,
    /// Wall times: the one part of the report that differs between two runs of the same
    /// input, options and seed.
    pub timings: Timings,
}

/// Seconds per view and per detector run, in the order of `detection.views` and
/// `detection.detectors`.
#[derive(Debug, Serialize, Default)]
pub struct Timings {
    pub views: Vec<Timing>,
    pub detectors: Vec<Timing>,
}

#[derive(Debug, Serialize)]
pub struct Timing {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detector: Option<&'static str>,
    pub view: crate::embed::View,
    pub seconds: f64,
}

impl Timings {
    fn of(detection: Option<&detection::DetectionReport>) -> Timings {
        let Some(d) = detection else {
            return Timings::default();
        };
        Timings {
            views: d
                .views
                .iter()
                .map(|v| Timing {
                    detector: None,
                    view: v.view,
                    seconds: v.seconds,
                })
                .collect(),
            detectors: d
                .detectors
                .iter()
                .map(|r| Timing {
                    detector: Some(r.detector),
                    view: r.view,
                    seconds: r.seconds,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Tool {
    pub name: &'static str,
    pub version: &'static str,
}

#[derive(Debug, Serialize)]
pub struct InputSummary {
    pub path: String,
    pub format: crate::dataset::Format,
    pub files: usize,
    pub rows: usize,
    pub payload: &'static str,
    pub label_column: Option<String>,
    pub id_column: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub feature_columns: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_column: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageSummary>,
    pub ignored_columns: Vec<IgnoredColumn>,
}

#[derive(Debug, Serialize)]
pub struct ImageSummary {
    pub width: u32,
    pub height: u32,
    pub channels: u32,
}

#[derive(Debug, Serialize)]
pub struct IgnoredColumn {
    pub name: String,
    pub dtype: String,
}

#[derive(Debug, Serialize)]
pub struct ClassCount {
    pub label: String,
    pub count: usize,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub errors: usize,
    pub warnings: usize,
    pub rows_with_errors: usize,
    pub rows_with_warnings: usize,
}

#[derive(Debug, Serialize)]
pub struct Gate {
    pub passed: bool,
    pub exit_code: u8,
    pub strict: bool,
    pub reasons: Vec<String>,
}

/// What the findings say about each row, for `scores.parquet`.
#[derive(Debug, Default)]
pub struct RowFlags {
    pub error: Vec<bool>,
    pub warning: Vec<bool>,
    pub rules: Vec<Vec<Rule>>,
}

impl RowFlags {
    fn new(n: usize, findings: &[Finding]) -> Self {
        let mut flags = RowFlags {
            error: vec![false; n],
            warning: vec![false; n],
            rules: vec![Vec::new(); n],
        };
        for f in findings {
            for &r in &f.row_index {
                let r = r as usize;
                match f.severity {
                    Severity::Error => flags.error[r] = true,
                    Severity::Warning => flags.warning[r] = true,
                }
                if !flags.rules[r].contains(&f.rule) {
                    flags.rules[r].push(f.rule);
                }
            }
        }
        flags
    }
}

/// What fails the gate besides validation errors and suspected poisoning.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GatePolicy {
    /// Validation warnings and label issues fail the gate too.
    pub strict: bool,
    /// Label issues fail the gate above this share of the rows used (`--max-label-issues`).
    pub max_label_issues: Option<f64>,
}

impl Report {
    pub fn build(
        dataset: &Dataset,
        findings: Vec<Finding>,
        outcome: &detection::Outcome,
        policy: GatePolicy,
    ) -> (Report, RowFlags) {
        let strict = policy.strict;
        let flags = RowFlags::new(dataset.len(), &findings);
        let count = |s| findings.iter().filter(|f| f.severity == s).count();
        let (errors, warnings) = (count(Severity::Error), count(Severity::Warning));
        let summary = Summary {
            errors,
            warnings,
            rows_with_errors: flags.error.iter().filter(|&&e| e).count(),
            rows_with_warnings: flags.warning.iter().filter(|&&w| w).count(),
        };
        let mut reasons = Vec::new();
        if errors > 0 {
            let what = if strict {
                "findings (--strict)"
            } else {
                "errors"
            };
            reasons.push(format!("{errors} validation {what}"));
        }
        let detection = detection::build(outcome, dataset);
        if let Some(d) = &detection {
            if let Some(v) = &d.verdict {
                if v.flagged > 0 {
                    reasons.push(format!("{} samples suspected of poisoning", v.flagged));
                }
                let share = v.label_issues as f64 / d.rows_used.max(1) as f64;
                if v.label_issues > 0 && strict {
                    reasons.push(format!("{} label issues (--strict)", v.label_issues));
                } else if let Some(max) = policy.max_label_issues.filter(|&m| share > m) {
                    reasons.push(format!(
                        "{} label issues, {:.2} % of the rows used (--max-label-issues {:.2} %)",
                        v.label_issues,
                        100.0 * share,
                        100.0 * max
                    ));
                }
            }
        }
        let passed = reasons.is_empty();
        let gate = Gate {
            passed,
            exit_code: if passed {
                ExitStatus::Success
            } else {
                ExitStatus::Failure
            }
            .code(),
            strict,
            reasons,
        };
        let classes = match &dataset.labels {
            Some(l) => l
                .classes
                .iter()
                .zip(l.counts())
                .map(|(label, count)| ClassCount {
                    label: label.clone(),
                    count,
                })
                .collect(),
            None => Vec::new(),
        };
        let report = Report {
            schema_version: SCHEMA_VERSION,
            tool: Tool {
                name: env!("CARGO_PKG_NAME"),
                version: env!("CARGO_PKG_VERSION"),
            },
            input: input_summary(dataset),
            classes,
            findings,
            summary,
            timings: Timings::of(detection.as_ref()),
            detection,
            gate,
        };
        (report, flags)
    }

    pub fn status(&self) -> ExitStatus {
        if self.gate.passed {
            ExitStatus::Success
        } else {
            ExitStatus::Failure
        }
    }
}

fn input_summary(dataset: &Dataset) -> InputSummary {
    let o = &dataset.origin;
    let mut summary = InputSummary {
        path: o.path.clone(),
        format: o.format,
        files: o.files,
        rows: dataset.len(),
        payload: dataset.payload.kind(),
        label_column: dataset.labels.as_ref().map(|l| l.column.clone()),
        id_column: dataset.ids.column().map(str::to_owned),
        feature_columns: Vec::new(),
        text_column: None,
        image: None,
        ignored_columns: o
            .ignored_columns
            .iter()
            .map(|(name, dtype)| IgnoredColumn {
                name: name.clone(),
                dtype: dtype.clone(),
            })
            .collect(),
    };
    match &dataset.payload {
        Payload::Table(t) => summary.feature_columns = t.columns.clone(),
        Payload::Spilled(t) => summary.feature_columns = t.columns.clone(),
        Payload::Text(t) => summary.text_column = Some(t.column.clone()),
        Payload::Images(i) | Payload::SpilledImages(i) => {
            summary.image = Some(ImageSummary {
                width: i.width,
                height: i.height,
                channels: i.channels,
            })
        }
    }
    summary
}

/// Prints the report on stdout in the chosen format.
pub fn print(report: &Report, format: Format) -> Result<(), ReportError> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let written = match format {
        Format::Text => text::render(report, &mut out),
        Format::Json => serde_json::to_writer_pretty(&mut out, report)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out)),
    };
    written
        .and_then(|()| out.flush())
        .map_err(|source| ReportError::Io {
            path: "<stdout>".into(),
            source,
        })
}

/// Writes `dir/report.json` and `dir/scores.parquet`, refusing any path inside the input so
/// that input files are never written (`input` is `None` for data handed over in memory).
pub fn write_dir(
    dir: &Path,
    input: Option<&Path>,
    report: &Report,
    dataset: &Dataset,
    flags: &RowFlags,
    detection: &detection::Outcome,
) -> Result<(), ReportError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ReportError::Io { path, source }
    };
    if let Some(input) = input {
        let (out, input_abs) = (
            resolve(dir).map_err(io(dir))?,
            input.canonicalize().map_err(io(input))?,
        );
        if out.starts_with(&input_abs) || out.join("scores.parquet") == input_abs {
            return Err(ReportError::OutIntoInput {
                out: dir.to_owned(),
                input: input.to_owned(),
            });
        }
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    // The scores first, the report last: a report.json appears only once the run's scores are
    // complete beside it. A run killed in between leaves the new scores with the previous
    // report (each file complete).
    scores::write(
        &dir.join("scores.parquet"),
        report,
        dataset,
        flags,
        detection,
    )?;
    let json_path = dir.join("report.json");
    let json = serde_json::to_vec_pretty(report).map_err(std::io::Error::from);
    json.and_then(|j| write_atomic(&json_path, |f| f.write_all(&j)))
        .map_err(io(&json_path))
}

/// The absolute, symlink-free form of `path`, which need not exist yet: its deepest existing
/// ancestor is canonicalised and the rest appended.
fn resolve(path: &Path) -> std::io::Result<PathBuf> {
    let absolute = std::path::absolute(path)?;
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => break,
        }
    }
    let mut resolved = existing.canonicalize()?;
    resolved.extend(rest.iter().rev());
    Ok(resolved)
}

/// Writes `path` through a temporary file in the same folder and a rename, so a reader never
/// sees half a file.
pub(crate) fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp~");
    let mut file = std::fs::File::create(&tmp)?;
    let written = write(&mut file)
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        // A failed write (a full disk) leaves no partial file behind.
        let _ = std::fs::remove_file(&tmp);
    }
    written
}
