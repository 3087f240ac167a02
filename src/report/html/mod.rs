//! The HTML report (`scan --html FILE`, `bench --html FILE`): one self-contained page, with no
//! scripts, style sheets, fonts or images fetched from anywhere. Every plot is an inline SVG
//! drawn by plotters' SVG backend; the page around them is a `const` template.
//!
//! The page shows the validation findings (the ones the text and JSON reports list), the
//! verdict per class, and per class:
//! - a histogram of each detector's per-sample score and of the fused score, with the cut
//!   where the flag rule is a per-class cut on that score (`hist.rs`; where it is not, the
//!   caption says what the rule is instead);
//! - a 2-D PCA projection of the class in the view label consistency was judged in, points
//!   coloured by the verdict and, in bench mode, shaped by the planted truth (`pca.rs`).
//!
//! A bench page adds each method's measured quality and its ROC curve (`roc.rs`).

mod escape;
mod hist;
mod page;
mod pca;
mod roc;
#[cfg(test)]
mod tests;

use std::io::Write;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

pub use escape::escape;

use super::detection::{self, DetectionReport};
use super::{Report, ReportError};
use crate::bench::BenchReport;
use crate::dataset::Dataset;
use crate::pipeline::Analysis;
use crate::validate::{self, Finding};

/// Whatever plotters reports when a plot cannot be drawn.
type PlotError = Box<dyn std::error::Error + Send + Sync>;

/// What the page is about.
pub enum Mode<'a> {
    /// A scan, with its report (input summary, gate).
    Scan(&'a Report),
    /// A bench run, with its measurements and, per subset row, whether it was planted.
    Bench {
        report: &'a BenchReport,
        truth: &'a [bool],
    },
}

/// Everything one page is made from.
pub struct Page<'a> {
    pub mode: Mode<'a>,
    /// The dataset as detection saw it (for a bench run: with the attack planted).
    pub dataset: &'a Dataset,
    pub findings: &'a [Finding],
    /// The detection part of the report; None with `--validate-only`.
    pub detection: Option<&'a DetectionReport>,
    /// The analysis behind it, when detection ran.
    pub analysis: Option<&'a Analysis>,
}

impl<'a> Page<'a> {
    /// The page of a scan.
    pub fn scan(report: &'a Report, dataset: &'a Dataset, outcome: &'a detection::Outcome) -> Self {
        let analysis = match outcome {
            detection::Outcome::Ran(analysis) => Some(&**analysis),
            detection::Outcome::NotRequested | detection::Outcome::Skipped(_) => None,
        };
        Page {
            mode: Mode::Scan(report),
            dataset,
            findings: &report.findings,
            detection: report.detection.as_ref(),
            analysis,
        }
    }
}

/// The page of a scan as one string.
pub fn render_scan(
    report: &Report,
    dataset: &Dataset,
    outcome: &detection::Outcome,
) -> Result<String, ReportError> {
    render(&Page::scan(report, dataset, outcome)).map_err(|source| ReportError::Plot {
        path: "<html>".into(),
        source,
    })
}

/// Writes the page of a scan to `path` (`input`: `None` for data handed over in memory).
pub fn write_scan(
    path: &Path,
    input: Option<&Path>,
    report: &Report,
    dataset: &Dataset,
    outcome: &detection::Outcome,
) -> Result<(), ReportError> {
    write(path, input, &Page::scan(report, dataset, outcome))
}

/// Writes the page of a bench run to `path`. `findings` are the input's, as [`validate_input`]
/// found them before the attack was planted.
pub fn write_bench(
    path: &Path,
    input: &Path,
    report: &BenchReport,
    dataset: &Dataset,
    findings: &[Finding],
    analysis: &Analysis,
    truth: &[bool],
) -> Result<(), ReportError> {
    let detection = detection::ran(analysis, dataset);
    let page = Page {
        mode: Mode::Bench { report, truth },
        dataset,
        findings,
        detection: Some(&detection),
        analysis: Some(analysis),
    };
    write(path, Some(input), &page)
}

/// The findings `scan` reports for this dataset without a schema: what a bench page lists,
/// since `bench` itself does not validate. `read` are the findings of reading it.
pub fn validate_input(dataset: &Dataset, mut read: Vec<Finding>) -> Vec<Finding> {
    read.extend(validate::rows::check(dataset, None));
    validate::finish(&mut read, dataset, false);
    read
}

/// Renders the page and writes it, refusing any path inside the input (input files are never
/// written).
fn write(path: &Path, input: Option<&Path>, page: &Page<'_>) -> Result<(), ReportError> {
    let io = |p: &Path| {
        let path = p.to_owned();
        move |source| ReportError::Io { path, source }
    };
    if path.is_dir() {
        return Err(ReportError::HtmlIsFolder(path.to_owned()));
    }
    if let Some(input) = input {
        let (out, input_abs) = (
            super::resolve(path).map_err(io(path))?,
            input.canonicalize().map_err(io(input))?,
        );
        if out.starts_with(&input_abs) {
            return Err(ReportError::HtmlIntoInput {
                html: path.to_owned(),
                input: input.to_owned(),
            });
        }
    }
    let html = render(page).map_err(|source| ReportError::Plot {
        path: path.to_owned(),
        source,
    })?;
    super::write_atomic(path, |f| f.write_all(html.as_bytes())).map_err(io(path))
}

/// The whole page as one string.
pub fn render(page: &Page<'_>) -> Result<String, PlotError> {
    let mut body = page::header(page);
    let note = match page.mode {
        Mode::Scan(_) => "The findings of the text and JSON reports.",
        Mode::Bench { .. } => {
            "What <code>scan</code> finds in the input as read (no schema), before the attack \
             was planted."
        }
    };
    body.push_str(&page::findings(page.findings, note));
    if let Some(d) = page.detection {
        body.push_str(&page::verdict(d));
    }
    if let (Mode::Bench { report, truth }, Some(analysis)) = (&page.mode, page.analysis) {
        body.push_str(&page::methods(report));
        body.push_str(&roc::section(analysis, truth)?);
    }
    if let Some(analysis) = page.analysis {
        body.push_str(&classes(page, analysis)?);
    }
    Ok(page::fill(&page::title(page), &body))
}

/// How a plot's samples are told apart: colour by the verdict, and in bench mode the planted
/// truth (histogram bars are split by the truth there, by the verdict in a scan).
pub(super) struct Marks<'a> {
    pub flagged: &'a [bool],
    pub truth: Option<&'a [bool]>,
}

/// The per-class section: for each class, its PCA projection and its score histograms.
fn classes(page: &Page<'_>, analysis: &Analysis) -> Result<String, PlotError> {
    let names = page
        .dataset
        .labels
        .as_ref()
        .map_or_else(Vec::new, |l| l.classes.clone());
    let marks = Marks {
        flagged: &analysis.verdict.flags,
        truth: match page.mode {
            Mode::Bench { truth, .. } => Some(truth),
            Mode::Scan(_) => None,
        },
    };
    let view = pca::View::new(analysis)?;
    let mut members = vec![Vec::new(); analysis.subset.n_classes];
    for (i, &c) in analysis.subset.labels.iter().enumerate() {
        members[c as usize].push(i as u32);
    }
    let mut out = page::classes_intro(analysis, view.as_ref().map(|v| v.name()), &marks);
    for (c, rows) in members.iter().enumerate().filter(|(_, r)| !r.is_empty()) {
        let name = names.get(c).map_or("?", String::as_str);
        let mut plots = String::new();
        if let Some(view) = &view {
            plots.push_str(&view.figure(name, c as u32, rows, &marks)?);
        }
        plots.push_str(&hist::figures(analysis, c as u32, rows, &marks)?);
        out.push_str(&page::class_section(c, name, rows, &marks, &plots));
    }
    out.push_str("</section>\n");
    Ok(out)
}

/// Colours shared by every plot (the page's key repeats them).
pub(super) mod colour {
    use plotters::style::RGBColor;
    /// Samples the verdict did not flag / clean samples.
    pub const PLAIN: RGBColor = RGBColor(76, 120, 168);
    /// Samples the verdict flagged.
    pub const FLAGGED: RGBColor = RGBColor(214, 39, 40);
    /// Planted samples (bench histograms).
    pub const POISON: RGBColor = RGBColor(245, 133, 24);
    /// A rule's cut.
    pub const CUT: RGBColor = RGBColor(20, 20, 20);
    /// One colour per ROC curve, cycled.
    pub const SERIES: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(23, 190, 207),
        RGBColor(188, 189, 34),
    ];

    /// `#rrggbb`, for the page's key.
    pub fn css(c: RGBColor) -> String {
        format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
    }
}

/// One SVG of `size` pixels, drawn by `draw` on a white background.
pub(super) fn svg(
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), PlotError>,
) -> Result<String, PlotError> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
    }
    Ok(out)
}

/// A tick label: fixed point for ordinary magnitudes, scientific beyond them. Below 1e-12 is
/// taken for 0: the rounding error of a tick computed as a multiple of the step.
pub(super) fn tick(v: &f64) -> String {
    let a = v.abs();
    if a < 1e-12 {
        "0".into()
    } else if (0.01..10_000.0).contains(&a) {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.1e}")
    }
}
