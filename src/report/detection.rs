//! The detection part of the report: which views were computed, what each detector saw per
//! class, the verdict per class, and every flagged sample with its reasons. Class indices are
//! turned into label names and subset positions into dataset ids here.

use serde::Serialize;

use crate::dataset::Dataset;
use crate::embed::probe::TrainingSummary;
use crate::embed::View;
use crate::pipeline::Analysis;
use crate::verdict::{DatasetTest, Firing, Reason};

/// How many flagged samples the report lists (all of them are in `scores.parquet`).
pub const LISTED_SAMPLES: usize = 200;

/// What became of detection in a scan.
#[derive(Debug)]
pub enum Outcome {
    /// `--validate-only`.
    NotRequested,
    /// Detection could not run on this input; the reason says why.
    Skipped(String),
    Ran(Box<Analysis>),
}

#[derive(Debug, Serialize)]
pub struct DetectionReport {
    /// `ran`, `skipped` or `not_requested`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped_because: Option<String>,
    /// Where embeddings and k-NN were computed: `cpu` or `cuda` (absent when nothing ran).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<&'static str>,
    pub rows_used: usize,
    pub rows_excluded: Vec<Excluded>,
    pub views: Vec<ViewSummary>,
    pub detectors: Vec<DetectorSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<VerdictSummary>,
}

#[derive(Debug, Serialize)]
pub struct Excluded {
    pub reason: &'static str,
    pub count: usize,
    pub rows: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ViewSummary {
    pub view: View,
    pub dim: usize,
    /// In the report's `timings`, so that the rest of the report is identical between runs.
    #[serde(skip)]
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub training: Option<TrainingSummary>,
}

#[derive(Debug, Serialize)]
pub struct DetectorSummary {
    pub detector: &'static str,
    pub view: View,
    pub parameters: Vec<(String, String)>,
    /// In the report's `timings`.
    #[serde(skip)]
    pub seconds: f64,
    /// Samples the method's own rule flags (not the verdict).
    pub own_rule_flagged: usize,
    pub classes: Vec<ClassStatisticNamed>,
}

#[derive(Debug, Serialize)]
pub struct ClassStatisticNamed {
    pub label: String,
    pub size: usize,
    pub statistic: &'static str,
    pub value: f64,
    pub threshold: Option<f64>,
    pub flagged: usize,
}

#[derive(Debug, Serialize)]
pub struct VerdictSummary {
    /// Samples suspected of poisoning (they fail the gate).
    pub flagged: usize,
    /// Samples whose neighbours mostly carry one other label (a warning, unless `--strict`
    /// or `--max-label-issues`).
    pub label_issues: usize,
    /// The bar for a label issue.
    pub neighbour_share: f64,
    /// The family-wise false-alarm level of each poisoning test.
    pub alpha: f64,
    /// The shifted-copy test's threshold on a half's self-share, when the test ran.
    pub shift_threshold: Option<f64>,
    /// Dataset-level tests (the label-noise test).
    pub tests: Vec<DatasetTest>,
    pub classes: Vec<ClassVerdictNamed>,
    /// The first samples suspected of poisoning, highest fused score first.
    pub samples: Vec<FlaggedSample>,
    /// Label issues that are not suspected of poisoning, and the first of them, highest
    /// neighbour evidence first.
    pub label_issues_only: usize,
    pub label_issue_samples: Vec<FlaggedSample>,
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ClassVerdictNamed {
    pub label: String,
    pub size: usize,
    pub flagged: usize,
    pub label_issues: usize,
    pub firings: Vec<Firing>,
}

#[derive(Debug, Serialize)]
pub struct FlaggedSample {
    pub id: String,
    pub label: String,
    pub score: f32,
    pub reasons: Vec<String>,
}

/// One line per reason, with label names, e.g. "8/10 raw neighbours are labelled 3".
pub fn describe(reason: &Reason, classes: &[String]) -> String {
    let name = |c: u32| classes.get(c as usize).map_or("?", String::as_str);
    let view = |v: &View| v.name();
    match reason {
        Reason::Neighbours {
            view: v,
            label,
            votes,
            k,
            confirmed_by,
            confirmed_votes,
        } => {
            let mut s = format!("{votes}/{k} {} neighbours are labelled {:?}", view(v), name(*label));
            if let (Some(c), Some(cv)) = (confirmed_by, confirmed_votes) {
                s.push_str(&format!(" ({cv}/{k} in the {} view share one other label)", view(c)));
            }
            s
        }
        Reason::LabelNoise {
            view: v,
            label,
            votes,
            k,
            own_nearby,
            rate_lower,
            budget,
        } => format!(
            "{votes}/{k} {} neighbours are labelled {:?} and only {:.0} % of the samples around them carry its label; such isolated contradictions make up at least {:.1} % of the cleanest classes (budget {:.1} %)",
            view(v),
            name(*label),
            100.0 * own_nearby,
            100.0 * rate_lower,
            100.0 * budget
        ),
        Reason::ClassInflow {
            view: v,
            label,
            votes,
            k,
            inflow,
            outflow,
            sources,
            p_value,
        } => format!(
            "{votes}/{k} {} neighbours are labelled {:?}; its class receives {inflow} such samples from about {sources:.1} other classes and sends {outflow} back (p = {p_value:.1e})",
            view(v),
            name(*label),
        ),
        Reason::ShiftedCopy {
            view: v,
            size,
            self_share,
            threshold,
        } => format!(
            "in a {}-view half of {size} of its class that, centred, mixes with the other classes: {:.0} % of neighbours from itself (threshold {:.0} %)",
            view(v),
            100.0 * self_share,
            100.0 * threshold
        ),
        Reason::SharedToken {
            view: v,
            token,
            size,
            share,
            threshold,
        } => format!(
            "one of {size} texts of its class that hold the token {token:?} (hardly any text of another class does): on average {:.0} % of their {} neighbours carry another label (threshold {:.0} %)",
            100.0 * share,
            view(v),
            100.0 * threshold
        ),
    }
}

pub fn build(outcome: &Outcome, dataset: &Dataset) -> Option<DetectionReport> {
    let empty = |status, because: Option<&String>| DetectionReport {
        status,
        skipped_because: because.cloned(),
        device: None,
        rows_used: 0,
        rows_excluded: Vec::new(),
        views: Vec::new(),
        detectors: Vec::new(),
        verdict: None,
    };
    match outcome {
        Outcome::NotRequested => None,
        Outcome::Skipped(why) => Some(empty("skipped", Some(why))),
        Outcome::Ran(analysis) => Some(ran(analysis, dataset)),
    }
}

/// The detection part of an analysis that ran; `bench --html` shows it too.
pub fn ran(analysis: &Analysis, dataset: &Dataset) -> DetectionReport {
    let classes: Vec<String> = dataset
        .labels
        .as_ref()
        .map_or_else(Vec::new, |l| l.classes.clone());
    let label = |c: u32| classes.get(c as usize).cloned().unwrap_or_default();
    let subset = &analysis.subset;
    let id = |pos: usize| dataset.ids.get(subset.rows[pos] as usize).into_owned();
    let mut excluded: Vec<Excluded> = Vec::new();
    for (row, reason) in &subset.excluded {
        match excluded.iter_mut().find(|e| e.reason == *reason) {
            Some(e) => {
                e.count += 1;
                if e.rows.len() < crate::validate::finding::EXAMPLE_ROWS {
                    e.rows.push(dataset.ids.get(*row as usize).into_owned());
                }
            }
            None => excluded.push(Excluded {
                reason,
                count: 1,
                rows: vec![dataset.ids.get(*row as usize).into_owned()],
            }),
        }
    }
    let views = analysis
        .views
        .iter()
        .map(|v| ViewSummary {
            view: v.view,
            dim: v.dim,
            seconds: v.seconds,
            training: v.training.clone(),
        })
        .collect();
    let detectors = analysis
        .runs
        .iter()
        .map(|r| DetectorSummary {
            detector: r.detection.detector,
            view: r.detection.view,
            parameters: r.detection.parameters.clone(),
            seconds: r.seconds,
            own_rule_flagged: r.detection.flags.iter().filter(|&&f| f).count(),
            classes: r
                .detection
                .classes
                .iter()
                .map(|c| ClassStatisticNamed {
                    label: label(c.class),
                    size: c.size,
                    statistic: c.statistic,
                    value: c.value,
                    threshold: c.threshold,
                    flagged: c.flagged,
                })
                .collect(),
        })
        .collect();
    let v = &analysis.verdict;
    let listed = |keep: &dyn Fn(usize) -> bool| -> (usize, Vec<FlaggedSample>) {
        let mut order: Vec<usize> = (0..v.flags.len()).filter(|&i| keep(i)).collect();
        order.sort_by(|&a, &b| v.scores[b].total_cmp(&v.scores[a]).then(a.cmp(&b)));
        let samples = order
            .iter()
            .take(LISTED_SAMPLES)
            .map(|&i| FlaggedSample {
                id: id(i),
                label: label(subset.labels[i]),
                score: v.scores[i],
                reasons: v.reasons[i].iter().map(|r| describe(r, &classes)).collect(),
            })
            .collect();
        (order.len(), samples)
    };
    let (flagged, samples) = listed(&|i| v.flags[i]);
    let (label_issues_only, label_issue_samples) = listed(&|i| v.label_issues[i] && !v.flags[i]);
    let verdict = VerdictSummary {
        flagged,
        label_issues: v.label_issues.iter().filter(|&&f| f).count(),
        neighbour_share: analysis.verdict_config.neighbour_share,
        alpha: analysis.verdict_config.alpha,
        shift_threshold: analysis.shift_threshold,
        tests: v.tests.clone(),
        classes: v
            .classes
            .iter()
            .map(|c| ClassVerdictNamed {
                label: label(c.class),
                size: c.size,
                flagged: c.flagged,
                label_issues: c.label_issues,
                firings: c.firings.clone(),
            })
            .collect(),
        samples,
        label_issues_only,
        label_issue_samples,
        notes: v.notes.clone(),
    };
    DetectionReport {
        status: "ran",
        skipped_because: None,
        device: Some(analysis.device),
        rows_used: subset.len(),
        rows_excluded: excluded,
        views,
        detectors,
        verdict: Some(verdict),
    }
}
