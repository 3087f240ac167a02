//! `poisongate bench`: plant a known attack in memory (or read the known poisons of a dataset
//! poisoned elsewhere, `--truth`), run every detector, and measure each against the known
//! poisons: precision, recall, F1, AUROC, TPR at 1 % FPR, time.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::attack;
use crate::cli::config::BenchConfig;
use crate::dataset::Dataset;
use crate::detect::metrics::{auroc, quality, tpr_at_fpr, Quality};
use crate::pipeline::{analyse, Analysis, DetectConfig};
use crate::progress::Progress;
use crate::report::{html, ReportError};
use crate::{scan, Error, ExitStatus};

pub mod output;
pub mod sweep;
pub mod truth;

#[derive(Debug, Serialize)]
pub struct MethodResult {
    pub method: String,
    pub view: String,
    #[serde(flatten)]
    pub quality: Quality,
    pub auroc: Option<f64>,
    pub tpr_at_1pct_fpr: Option<f64>,
    pub seconds: f64,
    /// What the method saw in each class.
    pub classes: Vec<crate::detect::ClassStatistic>,
}

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub input: String,
    /// The attack planted; null when the poisons came from `--truth`.
    pub attack: Option<attack::AttackKind>,
    /// The rate asked for; null with `--truth`.
    pub rate: Option<f64>,
    /// The `--truth` file, if the poisons came from one.
    pub truth_file: Option<String>,
    pub poisons: usize,
    /// Rows measured: the usable labelled rows.
    pub rows: usize,
    pub methods: Vec<MethodResult>,
}

pub fn run(config: &BenchConfig) -> Result<ExitStatus, Error> {
    let progress = Progress::new(config.input.progress);
    let (dataset, read) = scan::load(&config.input, None, &progress)?;
    // The HTML page lists what `scan` finds in the input as read, before the attack.
    let findings = config
        .html
        .as_ref()
        .map(|_| html::validate_input(&dataset, read));
    let Evaluated {
        report,
        dataset,
        analysis,
        truth,
    } = evaluate(config, dataset, &progress)?;
    if let Some(dir) = &config.out {
        write_samples(dir, &analysis, &truth)?;
    }
    if let (Some(path), Some(findings)) = (&config.html, &findings) {
        let input = &config.input.path;
        html::write_bench(path, input, &report, &dataset, findings, &analysis, &truth)?;
    }
    output::print(&report, config.format).map_err(|source| ReportError::Io {
        path: "<stdout>".into(),
        source,
    })?;
    Ok(ExitStatus::Success)
}

/// What [`evaluate`] measured, with the poisoned dataset and its analysis.
pub struct Evaluated {
    pub report: BenchReport,
    pub dataset: Dataset,
    pub analysis: Analysis,
    /// Per analysed sample: planted (or named by `--truth`).
    pub truth: Vec<bool>,
}

/// Plants the configured attack in `dataset` (or reads `--truth`), runs every detector and the
/// verdict, and measures them; writes nothing.
pub fn evaluate(
    config: &BenchConfig,
    mut dataset: Dataset,
    progress: &Progress,
) -> Result<Evaluated, Error> {
    let truth_rows = match &config.truth {
        Some(path) => truth::read(path, &dataset.ids)?,
        None => attack::inject(&mut dataset, &config.attack)?,
    };
    let (methods, analysis, truth) = measure(&dataset, &truth_rows, &config.detect, progress)?;
    let report = BenchReport {
        input: config.input.path.display().to_string(),
        attack: config.truth.is_none().then_some(config.attack.kind),
        rate: config.truth.is_none().then_some(config.attack.rate),
        truth_file: config.truth.as_ref().map(|p| p.display().to_string()),
        poisons: truth.iter().filter(|&&t| t).count(),
        rows: truth.len(),
        methods,
    };
    Ok(Evaluated {
        report,
        dataset,
        analysis,
        truth,
    })
}

/// Runs every detector and the verdict on `dataset` and measures each against `truth_rows`
/// (per dataset row). Returns the measures, the analysis and the truth per analysed sample.
pub fn measure(
    dataset: &Dataset,
    truth_rows: &[bool],
    detect: &DetectConfig,
    progress: &Progress,
) -> Result<(Vec<MethodResult>, Analysis, Vec<bool>), Error> {
    let start = Instant::now();
    let Some(analysis) = analyse(dataset, detect, progress)? else {
        return Err(attack::AttackError::NoLabels.into());
    };
    let total = start.elapsed().as_secs_f64();
    let truth: Vec<bool> = analysis
        .subset
        .rows
        .iter()
        .map(|&r| truth_rows[r as usize])
        .collect();
    let mut methods = Vec::new();
    for run in &analysis.runs {
        let d = &run.detection;
        methods.push(MethodResult {
            method: d.detector.to_string(),
            view: d.view.name().to_string(),
            quality: quality(&d.flags, &truth),
            auroc: auroc(&d.scores, &truth),
            tpr_at_1pct_fpr: tpr_at_fpr(&d.scores, &truth, 0.01),
            seconds: run.seconds,
            classes: d.classes.clone(),
        });
    }
    let v = &analysis.verdict;
    methods.push(MethodResult {
        method: "fused".into(),
        view: "all".into(),
        quality: quality(&v.flags, &truth),
        auroc: auroc(&v.scores, &truth),
        tpr_at_1pct_fpr: tpr_at_fpr(&v.scores, &truth, 0.01),
        seconds: total,
        classes: Vec::new(),
    });
    Ok((methods, analysis, truth))
}

/// `--out DIR`: the per-sample scores with the truth, and each view's embedding.
fn write_samples(dir: &Path, analysis: &Analysis, truth: &[bool]) -> Result<(), Error> {
    let io = |path: PathBuf| move |source| ReportError::Io { path, source };
    std::fs::create_dir_all(dir).map_err(io(dir.to_owned()))?;
    let path = dir.join("samples.csv");
    let file = std::fs::File::create(&path).map_err(io(path.clone()))?;
    let mut w = csv::Writer::from_writer(std::io::BufWriter::new(file));
    let mut header: Vec<String> = ["row", "label", "is_poison"].map(String::from).to_vec();
    for run in &analysis.runs {
        let d = &run.detection;
        header.push(format!("{}_{}", d.detector, d.view.name()));
    }
    header.extend(["fused_score", "flagged"].map(String::from));
    let csv_err = |e: csv::Error| io(path.clone())(std::io::Error::other(e));
    w.write_record(&header).map_err(csv_err)?;
    let v = &analysis.verdict;
    for (i, &row) in analysis.subset.rows.iter().enumerate() {
        let mut record = vec![
            row.to_string(),
            analysis.subset.labels[i].to_string(),
            u8::from(truth[i]).to_string(),
        ];
        for run in &analysis.runs {
            record.push(run.detection.scores[i].to_string());
        }
        record.push(v.scores[i].to_string());
        record.push(u8::from(v.flags[i]).to_string());
        w.write_record(&record).map_err(csv_err)?;
    }
    w.flush().map_err(io(path.clone()))?;
    for (view, embedding) in analysis
        .views
        .iter()
        .filter_map(|v| Some((v.view, v.embedding.as_ref()?)))
    {
        let path = dir.join(format!("{}.npy", view.name()));
        embedding
            .matrix
            .write_npy(&path)
            .map_err(|e| io(path.clone())(std::io::Error::other(e)))?;
    }
    Ok(())
}
