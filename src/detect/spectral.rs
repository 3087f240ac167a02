//! Spectral signatures (Tran, Li, Madry, NeurIPS 2018, Algorithm 1): per class, centre the
//! representations, take the top right singular vector v of the centred matrix (the top
//! eigenvector of the class covariance) and score each sample by its squared projection
//! `((x - mean) . v)^2`. The paper removes the 1.5 x eps highest-scoring samples of each class,
//! eps being an upper bound on the poison rate; that rule runs only when `--poison-rate` gives
//! eps.
//!
//! `Variant::Uncentred` is what ART's `SpectralSignatureDefense` and BackdoorBench compute:
//! the same v, but the score is the absolute projection of the *uncentred* representation,
//! `|x . v|`. It ranks samples differently when the class mean has a component along v.

use rayon::prelude::*;
use serde::Serialize;

use super::linalg::principal_axes;
use super::{ClassStatistic, Detection, Points};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// The paper: squared projection of the centred representation.
    Centred,
    /// ART / BackdoorBench: absolute projection of the uncentred representation.
    Uncentred,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpectralConfig {
    pub variant: Variant,
    /// Upper bound on the poison rate, eps; enables the paper's removal rule.
    pub poison_rate: Option<f64>,
    /// The paper's multiplier on eps.
    pub multiplier: f64,
}

impl Default for SpectralConfig {
    fn default() -> Self {
        SpectralConfig {
            variant: Variant::Centred,
            poison_rate: None,
            multiplier: 1.5,
        }
    }
}

pub fn run(points: &Points<'_>, config: &SpectralConfig) -> Detection {
    let n = points.len();
    let mut scores = vec![0f32; n];
    let mut flags = vec![false; n];
    let mut classes = Vec::new();
    let per_class = points.classes();
    // The classes run in parallel; only the mean, the eigenvalues and the top axis of each
    // are kept (d x d axes for many classes would not fit).
    let outcomes: Vec<_> = per_class
        .par_iter()
        .enumerate()
        .map(|(class, rows)| class_run(points, class, rows, config))
        .collect();
    for (rows, outcome) in per_class.iter().zip(outcomes) {
        let Some(outcome) = outcome else { continue };
        for ((&r, s), f) in rows.iter().zip(outcome.scores).zip(outcome.flags) {
            scores[r as usize] = s;
            flags[r as usize] = f;
        }
        classes.push(outcome.statistic);
    }
    Detection {
        detector: "spectral",
        view: points.view,
        parameters: parameters(config),
        scores,
        flags,
        classes,
    }
}

/// The parameters the report lists.
pub(crate) fn parameters(config: &SpectralConfig) -> Vec<(String, String)> {
    let mut parameters = vec![(
        "variant".to_string(),
        format!("{:?}", config.variant).to_lowercase(),
    )];
    if let Some(eps) = config.poison_rate {
        parameters.push(("poison_rate".into(), eps.to_string()));
        parameters.push(("multiplier".into(), config.multiplier.to_string()));
    }
    parameters
}

/// One class's result: a score and a flag for each of its `rows`, and its statistic.
pub(crate) struct ClassOutcome {
    pub scores: Vec<f32>,
    pub flags: Vec<bool>,
    pub statistic: ClassStatistic,
}

/// Class `class`, whose members are `rows` of `points`; None when it has none.
pub(crate) fn class_run(
    points: &Points<'_>,
    class: usize,
    rows: &[u32],
    config: &SpectralConfig,
) -> Option<ClassOutcome> {
    if rows.is_empty() {
        return None;
    }
    let (mean, values, vectors) = principal_axes(points, rows, class as u64);
    let v = vectors.column(0).into_owned();
    let scores: Vec<f32> = rows
        .iter()
        .map(|&r| {
            let x = points.row(r as usize);
            let s = match config.variant {
                Variant::Centred => {
                    let p: f64 = x
                        .iter()
                        .zip(v.iter())
                        .zip(mean.iter())
                        .map(|((&x, v), m)| (x as f64 - m) * v)
                        .sum();
                    p * p
                }
                Variant::Uncentred => x
                    .iter()
                    .zip(v.iter())
                    .map(|(&x, v)| x as f64 * v)
                    .sum::<f64>()
                    .abs(),
            };
            s as f32
        })
        .collect();
    let mut flags = vec![false; rows.len()];
    let mut flagged = 0;
    if let Some(eps) = config.poison_rate {
        let remove =
            ((config.multiplier * eps * rows.len() as f64).round() as usize).min(rows.len());
        let mut ranked: Vec<usize> = (0..rows.len()).collect();
        ranked.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        for &i in &ranked[..remove] {
            flags[i] = true;
        }
        flagged = remove;
    }
    // How much of the class's variance the signature direction carries: a planted
    // subpopulation concentrates variance along one direction.
    let total: f64 = values.iter().sum();
    Some(ClassOutcome {
        scores,
        flags,
        statistic: ClassStatistic {
            class: class as u32,
            size: rows.len(),
            statistic: "top_eigenvalue_share",
            value: if total > 0.0 { values[0] / total } else { 0.0 },
            threshold: None,
            flagged,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::{Subset, View};
    use rand::{Rng, SeedableRng};

    /// One class: 90 points around the origin, 10 shifted along the first axis.
    fn planted() -> (Vec<f32>, Subset) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let mut values = Vec::new();
        for i in 0..100 {
            let shift = if i >= 90 { 6.0 } else { 0.0 };
            values.extend(
                (0..5).map(|j| rng.random_range(-1.0f32..1.0) + if j == 0 { shift } else { 0.0 }),
            );
        }
        let subset = Subset {
            rows: (0..100).collect(),
            labels: vec![0; 100],
            n_classes: 1,
            excluded: Vec::new(),
        };
        (values, subset)
    }

    #[test]
    fn planted_points_score_highest_and_the_paper_rule_removes_them() {
        let (values, subset) = planted();
        let points = Points::from_vec(values, 5, &subset, View::Probe);
        let config = SpectralConfig {
            poison_rate: Some(0.1),
            ..Default::default()
        };
        let d = run(&points, &config);
        let min_planted = d.scores[90..].iter().cloned().fold(f32::INFINITY, f32::min);
        let max_clean = d.scores[..90].iter().cloned().fold(0.0, f32::max);
        assert!(min_planted > max_clean, "{min_planted} vs {max_clean}");
        // 1.5 x 0.1 x 100 = 15 removed: the 10 planted and the 5 next.
        assert_eq!(d.flags.iter().filter(|&&f| f).count(), 15);
        assert!(d.flags[90..].iter().all(|&f| f));
        assert_eq!(d.classes[0].flagged, 15);
        assert!(d.classes[0].value > 0.5);
        // Without eps the method has no rule of its own.
        let free = run(&points, &SpectralConfig::default());
        assert!(free.flags.iter().all(|&f| !f));
    }

    #[test]
    fn degenerate_classes_give_zero_scores_not_nan() {
        let subset = Subset {
            rows: vec![0, 1, 2],
            labels: vec![0, 1, 1],
            n_classes: 2,
            excluded: Vec::new(),
        };
        // d = 1, one single-sample class, one constant class.
        let points = Points::from_vec(vec![3.0, 2.0, 2.0], 1, &subset, View::Raw);
        for variant in [Variant::Centred, Variant::Uncentred] {
            let d = run(
                &points,
                &SpectralConfig {
                    variant,
                    ..Default::default()
                },
            );
            assert!(d.scores.iter().all(|s| s.is_finite()), "{:?}", d.scores);
        }
        let d = run(&points, &SpectralConfig::default());
        assert_eq!(d.scores, [0.0, 0.0, 0.0]);
    }
}
