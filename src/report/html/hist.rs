//! Per-class histograms of each detector's per-sample score and of the fused score, with the
//! cut each flag rule makes on that score, where the rule is such a cut:
//!
//! | score | flag rule | drawn |
//! |---|---|---|
//! | fused | the verdict flags a fused score of 1 or more | a line at 1 |
//! | spectral | with `--poison-rate` eps: the 1.5 x eps x n highest scores of the class | a line at the lowest flagged score of the class |
//! | spectral | without it: no rule | nothing |
//! | clustering | the smaller 2-means cluster, when it is small and well separated | nothing: membership, not a cut |
//! | knn | another label outvotes the own among the k neighbours | nothing: the plotted score is the share of *all* other labels |
//! | shift | a half fires (self-share low, and below its sibling's), then a member rule | nothing: the score is the half's, the flag is per member |
//! | tokens | a group of texts sharing a token fires at a mean other-label share of `threshold` | a line at `threshold`: the score is the highest share among the text's groups |
//!
//! Where nothing is drawn, the caption says what the rule is and what it found in the class.
//! Bars are stacked: planted samples on top in a bench page, flagged samples in a scan page.

use plotters::prelude::*;

use super::colour;
use super::{escape, Marks, PlotError};
use crate::detect::Detection;
use crate::pipeline::Analysis;
use crate::verdict::Verdict;

/// Plot size in pixels.
const SIZE: (u32, u32) = (300, 190);

/// The figures of one class: every detector run, then the fused score.
pub(super) fn figures(
    analysis: &Analysis,
    class: u32,
    rows: &[u32],
    marks: &Marks<'_>,
) -> Result<String, PlotError> {
    let mut out = String::new();
    for run in &analysis.runs {
        let d = &run.detection;
        let title = format!("{} / {}", d.detector, d.view.name());
        let cut = detector_cut(d, class, rows);
        out.push_str(&figure(&title, &d.scores, rows, marks, &cut)?);
    }
    let cut = fused_cut(&analysis.verdict, rows);
    out.push_str(&figure(
        "fused verdict",
        &analysis.verdict.scores,
        rows,
        marks,
        &cut,
    )?);
    Ok(out)
}

/// The cut a flag rule makes on the plotted score in one class, when it is one, and a caption
/// that says what the rule is.
#[derive(Debug, PartialEq)]
pub(super) struct Cut {
    pub at: Option<f64>,
    pub caption: String,
}

fn fused_cut(verdict: &Verdict, rows: &[u32]) -> Cut {
    let flagged = rows.iter().filter(|&&r| verdict.flags[r as usize]).count();
    Cut {
        at: Some(1.0),
        caption: format!(
            "Line at 1: the verdict flags a sample whose fused score (its strongest evidence \
             over that evidence's threshold) is 1 or more. {flagged} flagged in this class."
        ),
    }
}

/// The cut of one detector's own rule in `class` (whose subset rows are `rows`).
pub(super) fn detector_cut(d: &Detection, class: u32, rows: &[u32]) -> Cut {
    let param = |name: &str| {
        d.parameters
            .iter()
            .find(|(k, _)| k == name)
            .map_or("?", |(_, v)| v.as_str())
    };
    let stat = d.classes.iter().find(|c| c.class == class);
    let flagged: Vec<f64> = rows
        .iter()
        .filter(|&&r| d.flags[r as usize])
        .map(|&r| f64::from(d.scores[r as usize]))
        .collect();
    let n = flagged.len();
    let none = |caption: String| Cut { at: None, caption };
    match d.detector {
        "spectral" if d.parameters.iter().any(|(k, _)| k == "poison_rate") => {
            let rule = format!(
                "the paper's rule flags the highest {} x --poison-rate {} of the class's scores",
                param("multiplier"),
                param("poison_rate")
            );
            match flagged.iter().copied().min_by(f64::total_cmp) {
                Some(at) => Cut {
                    at: Some(at),
                    caption: format!(
                        "Line at the lowest flagged score: {rule}; {n} of {} here.",
                        rows.len()
                    ),
                },
                None => none(format!("No line: {rule}, which is none of this class.")),
            }
        }
        "spectral" => none(
            "No line: without --poison-rate spectral signatures have no rule of their own \
             (the verdict does not use this score)."
                .into(),
        ),
        "clustering" => none(match stat {
            Some(s) => format!(
                "No line: the rule is not a cut on this score. The smaller 2-means cluster is \
                 flagged when it holds under {} of the class and the silhouette is over {}; \
                 here the silhouette is {:.3} and {n} are flagged. A score above 0 means \
                 nearer the smaller cluster's centre.",
                param("size_threshold"),
                param("silhouette_threshold"),
                s.value
            ),
            None => "No line: the class has too few samples to cluster.".into(),
        }),
        "knn" => none(format!(
            "No line: the method flags a sample when one other label has more of its k = {} \
             neighbours than its own label, which is not a cut on this score (the share of \
             all other labels). {n} flagged here. The verdict's neighbour rule is in the fused \
             score.",
            param("k")
        )),
        "shift" => none(match stat {
            Some(s) => format!(
                "No line: a half of the class fires when its self-share is at most {} (a score \
                 of at least {}), at least {} below its sibling's and an outlier among all \
                 classes' halves; then the members whose \
                 class neighbours lie mostly in that half are flagged, which is not a cut on \
                 this score. Lowest half self-share here {:.3}; {n} flagged.",
                param("threshold"),
                param("threshold")
                    .parse::<f64>()
                    .map_or("?".into(), |t| format!("{:.3}", 1.0 - t)),
                param("gap"),
                s.value
            ),
            None => "No line: the class was not tested (too small to split or to sample).".into(),
        }),
        "tokens" => Cut {
            at: stat.and_then(|s| s.threshold),
            caption: format!(
                "Line at the cut of the class's strongest group ({}): the texts of the class \
                 that share a token are flagged together when, on average, more of their \
                 neighbours carry another label than the class's own null allows (a test at \
                 alpha {}, at least {}); a text's score is the highest such share among its \
                 tokens' groups (0 in none). {n} flagged in this class.",
                stat.and_then(|s| s.threshold)
                    .map_or("none".into(), |t| format!("{t:.3}")),
                param("alpha"),
                param("threshold")
            ),
        },
        other => none(format!(
            "No line: this page does not know the rule of `{other}`."
        )),
    }
}

/// One histogram with its caption, as a `<figure>`.
fn figure(
    title: &str,
    scores: &[f32],
    rows: &[u32],
    marks: &Marks<'_>,
    cut: &Cut,
) -> Result<String, PlotError> {
    let split = marks.truth.unwrap_or(marks.flagged);
    let values: Vec<(f64, bool)> = rows
        .iter()
        .map(|&r| (f64::from(scores[r as usize]), split[r as usize]))
        .filter(|(v, _)| v.is_finite())
        .collect();
    let bins = Bins::new(&values, cut.at);
    let top = if marks.truth.is_some() {
        colour::POISON
    } else {
        colour::FLAGGED
    };
    let svg = super::svg(SIZE, |root| draw(root, title, &bins, cut.at, top))?;
    Ok(format!(
        "<figure class=\"hist\">{svg}<figcaption>{}</figcaption></figure>\n",
        escape(&cut.caption)
    ))
}

/// Equal-width bins over the scores (and the cut, so that it is always in view), each
/// counting unmarked and marked samples.
#[derive(Debug, PartialEq)]
pub(super) struct Bins {
    pub lo: f64,
    pub hi: f64,
    pub counts: Vec<[u32; 2]>,
}

impl Bins {
    pub fn new(values: &[(f64, bool)], cut: Option<f64>) -> Bins {
        let range = values.iter().map(|v| v.0).chain(cut);
        let lo = range.clone().fold(f64::INFINITY, f64::min);
        let hi = range.fold(f64::NEG_INFINITY, f64::max);
        let (lo, hi) = match (lo.is_finite(), hi - lo) {
            (false, _) => (0.0, 1.0),
            (true, w) if w < 1e-12 => (lo - 0.5, hi + 0.5),
            _ => (lo, hi),
        };
        // About the square root of the class size, within 8 to 40 bins.
        let n = ((values.len() as f64).sqrt().ceil() as usize).clamp(8, 40);
        let width = (hi - lo) / n as f64;
        let mut counts = vec![[0u32; 2]; n];
        for &(v, marked) in values {
            let b = (((v - lo) / width) as usize).min(n - 1);
            counts[b][usize::from(marked)] += 1;
        }
        Bins { lo, hi, counts }
    }

    fn width(&self) -> f64 {
        (self.hi - self.lo) / self.counts.len() as f64
    }
}

fn draw(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    bins: &Bins,
    cut: Option<f64>,
    top: RGBColor,
) -> Result<(), PlotError> {
    let ymax = bins
        .counts
        .iter()
        .map(|c| c[0] + c[1])
        .max()
        .unwrap_or(0)
        .max(1);
    let ytop = ymax + ymax / 20 + 1;
    let pad = (bins.hi - bins.lo) * 0.02;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 17))
        .margin(6)
        .x_label_area_size(22)
        .y_label_area_size(34)
        .build_cartesian_2d((bins.lo - pad)..(bins.hi + pad), 0u32..ytop)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(5)
        .y_labels(4)
        .x_label_formatter(&super::tick)
        .label_style(("sans-serif", 13))
        .draw()?;
    let w = bins.width();
    chart.draw_series(bins.counts.iter().enumerate().flat_map(|(i, c)| {
        let x0 = bins.lo + i as f64 * w;
        let x1 = x0 + w;
        let plain =
            (c[0] > 0).then(|| Rectangle::new([(x0, 0), (x1, c[0])], colour::PLAIN.filled()));
        let marked =
            (c[1] > 0).then(|| Rectangle::new([(x0, c[0]), (x1, c[0] + c[1])], top.filled()));
        plain.into_iter().chain(marked)
    }))?;
    if let Some(at) = cut {
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(at, 0), (at, ytop)],
            colour::CUT.stroke_width(2),
        )))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::ClassStatistic;
    use crate::embed::View;

    fn detection(detector: &'static str, parameters: &[(&str, &str)]) -> Detection {
        Detection {
            detector,
            view: View::Raw,
            parameters: parameters
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            scores: vec![0.1, 0.9, 0.5, 0.7, 0.2],
            flags: vec![false, true, false, true, false],
            classes: vec![ClassStatistic {
                class: 0,
                size: 5,
                statistic: "s",
                value: 0.25,
                threshold: Some(0.1),
                flagged: 2,
            }],
        }
    }

    #[test]
    fn only_a_rule_that_cuts_the_score_gets_a_line() {
        let rows = [0, 1, 2, 3, 4];
        let eps = detection("spectral", &[("poison_rate", "0.2"), ("multiplier", "1.5")]);
        // The two highest are flagged: the line is at the lower of them.
        assert_eq!(detector_cut(&eps, 0, &rows).at, Some(0.7f32 as f64));
        for (name, params) in [
            ("spectral", &[("variant", "centred")][..]),
            ("clustering", &[("size_threshold", "0.35")][..]),
            ("knn", &[("k", "10")][..]),
            ("shift", &[("threshold", "0.9"), ("gap", "0.1")][..]),
            ("future", &[][..]),
        ] {
            let cut = detector_cut(&detection(name, params), 0, &rows);
            assert_eq!(cut.at, None, "{name}");
            assert!(
                cut.caption.starts_with("No line: "),
                "{name}: {}",
                cut.caption
            );
        }
        // The class statistic carries the strongest group's cut (0.1 here).
        let tokens = detector_cut(&detection("tokens", &[("threshold", "0.1")]), 0, &rows);
        assert_eq!(tokens.at, Some(0.1));
        assert!(
            tokens
                .caption
                .starts_with("Line at the cut of the class's strongest group (0.100)"),
            "{}",
            tokens.caption
        );
        let knn = detector_cut(&detection("knn", &[("k", "10")]), 0, &rows);
        assert!(knn.caption.contains("k = 10") && knn.caption.contains("2 flagged"));
    }

    #[test]
    fn bins_cover_the_scores_and_the_cut_and_count_each_side() {
        let values = [(0.0, false), (0.1, true), (0.5, false), (0.5, true)];
        let bins = Bins::new(&values, Some(1.0));
        assert_eq!((bins.lo, bins.hi), (0.0, 1.0));
        assert_eq!(bins.counts.len(), 8);
        assert_eq!(bins.counts[0], [1, 1]);
        assert_eq!(bins.counts[4], [1, 1]);
        let total: u32 = bins.counts.iter().map(|c| c[0] + c[1]).sum();
        assert_eq!(total, 4);
        // One repeated value still gets a visible range; no value at all does too.
        let flat = Bins::new(&[(2.0, false); 3], None);
        assert_eq!((flat.lo, flat.hi), (1.5, 2.5));
        assert_eq!(Bins::new(&[], None).hi, 1.0);
    }
}
