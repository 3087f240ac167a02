//! Runs a sweep's plan: the dataset is read once, and every run plants into a fresh copy.

use serde::Serialize;

use super::{output, Cell, Measured, Row};
use crate::attack::{self, AttackKind};
use crate::cli::config::SweepConfig;
use crate::progress::Progress;
use crate::report::ReportError;
use crate::{scan, Error, ExitStatus};

#[derive(Debug, Serialize)]
pub struct SweepReport {
    pub input: String,
    pub seeds: Vec<u64>,
    /// Per attack and rate: the measured row, then the no-filter, random and perfect controls.
    pub rows: Vec<Row>,
}

pub fn run(config: &SweepConfig) -> Result<ExitStatus, Error> {
    let progress = Progress::new(config.input.progress);
    let (clean, _) = scan::load(&config.input, None, &progress)?;
    let report = sweep(config, &clean, &progress)?;
    output::print(&report, config.format).map_err(|source| ReportError::Io {
        path: "<stdout>".into(),
        source,
    })?;
    Ok(ExitStatus::Success)
}

/// Runs the plan on copies of `clean`; writes nothing.
pub fn sweep(
    config: &SweepConfig,
    clean: &crate::dataset::Dataset,
    progress: &Progress,
) -> Result<SweepReport, Error> {
    let plan = &config.plan;
    let mut rows = Vec::new();
    let runs: usize = plan
        .attacks
        .iter()
        .map(|&k| {
            if k == AttackKind::Clean {
                1
            } else {
                plan.rates.len()
            }
        })
        .sum::<usize>()
        * plan.seeds.len();
    let bar = progress.bar(runs as u64, "sweep");
    for &kind in &plan.attacks {
        // The clean twin has no rate: one run per seed.
        let rates: Vec<Option<f64>> = if kind == AttackKind::Clean {
            vec![None]
        } else {
            plan.rates.iter().map(|&r| Some(r)).collect()
        };
        for rate in rates {
            let mut cell = Cell::new(kind, rate);
            for &seed in &plan.seeds {
                let mut dataset = clean.clone();
                let attack = config.attack(kind, rate.unwrap_or(config.attack.rate), seed);
                let truth_rows = attack::inject(&mut dataset, &attack)?;
                let detect = config.detect.reseeded(seed);
                let (_, analysis, truth) =
                    super::super::measure(&dataset, &truth_rows, &detect, progress)?;
                let mut measured: Vec<Measured<'_>> = analysis
                    .runs
                    .iter()
                    .map(|run| Measured {
                        method: format!("{}/{}", run.detection.detector, run.detection.view.name()),
                        flags: &run.detection.flags,
                        scores: &run.detection.scores,
                    })
                    .collect();
                measured.push(Measured {
                    method: "fused".into(),
                    flags: &analysis.verdict.flags,
                    scores: &analysis.verdict.scores,
                });
                cell.add(&measured, &truth, seed);
                bar.inc(1);
            }
            rows.extend(cell.rows());
        }
    }
    bar.finish_and_clear();
    Ok(SweepReport {
        input: config.input.path.display().to_string(),
        seeds: plan.seeds.clone(),
        rows,
    })
}
