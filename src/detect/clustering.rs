//! Activation clustering (Chen et al., 2018): per class, reduce the representations to 10
//! dimensions (PCA, or FastICA as in the paper), split them with 2-means, and call the smaller
//! cluster poison when it holds less than 35 % of the class and the clustering is real
//! (silhouette above 0.10). These are the defaults of ART's `ActivationDefence` with
//! silhouette-score analysis.
//!
//! The per-sample score is continuous so that it can be ranked (AUROC) and fused: how much
//! nearer a sample lies to the smaller cluster's centre than to the larger one's,
//! `(d_large - d_small) / (d_large + d_small)`, in [-1, 1].

use nalgebra::{DMatrix, DVector};
use rayon::prelude::*;
use serde::Serialize;

use super::kmeans::{kmeans, silhouette};
use super::linalg::{principal_axes, project};
use super::{ClassStatistic, Detection, Points};

/// Points per class over which the silhouette is computed exactly (it is quadratic).
pub const SILHOUETTE_SAMPLE: usize = 2_000;
const RESTARTS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Reduce {
    Pca,
    #[value(name = "fastica")]
    FastIca,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClusteringConfig {
    pub reduce: Reduce,
    pub dims: usize,
    pub size_threshold: f64,
    pub silhouette_threshold: f64,
    pub seed: u64,
}

impl Default for ClusteringConfig {
    fn default() -> Self {
        ClusteringConfig {
            reduce: Reduce::Pca,
            dims: 10,
            size_threshold: 0.35,
            silhouette_threshold: 0.10,
            seed: 0,
        }
    }
}

/// The reduced coordinates of one class: centred, projected on the top principal axes,
/// whitened and unmixed for FastICA.
fn reduce(points: &Points<'_>, rows: &[u32], config: &ClusteringConfig) -> DMatrix<f64> {
    let (mean, values, vectors) = principal_axes(points, rows, config.seed);
    let r = config
        .dims
        .min(points.dim)
        .min(rows.len().saturating_sub(1))
        .min(vectors.ncols())
        .max(1);
    let projected = project(points, rows, &mean, &vectors.columns(0, r).into_owned());
    match config.reduce {
        Reduce::Pca => projected,
        Reduce::FastIca => {
            let scale = DVector::from_iterator(
                r,
                values[..r]
                    .iter()
                    .map(|&v| if v > 1e-12 { 1.0 / v.sqrt() } else { 0.0 }),
            );
            let whitened = projected * DMatrix::from_diagonal(&scale);
            super::ica::fastica(&whitened, config.seed)
        }
    }
}

/// One class's outcome: per-row scores and flags (in the class's row order) and its statistic.
pub(crate) struct ClassOutcome {
    pub scores: Vec<f32>,
    pub flags: Vec<bool>,
    pub statistic: ClassStatistic,
}

pub(crate) fn class_outcome(
    points: &Points<'_>,
    class: usize,
    rows: &[u32],
    config: &ClusteringConfig,
) -> Option<ClassOutcome> {
    // 2-means needs at least two points per cluster to mean anything.
    if rows.len() < 4 {
        return None;
    }
    let reduced = reduce(points, rows, config);
    let r = reduced.ncols();
    // Row-major copy for k-means.
    let data: Vec<f64> = (0..rows.len())
        .flat_map(|i| reduced.row(i).iter().copied().collect::<Vec<_>>())
        .collect();
    let seed = config.seed.wrapping_add(class as u64);
    let clusters = kmeans(&data, r, 2, RESTARTS, seed);
    let small = if clusters.sizes[0] <= clusters.sizes[1] {
        0
    } else {
        1
    };
    let relative_size = clusters.sizes[small] as f64 / rows.len() as f64;
    let sil = silhouette(&data, r, &clusters.assignment, 2, SILHOUETTE_SAMPLE, seed);
    let poison = relative_size < config.size_threshold && sil > config.silhouette_threshold;
    let centre = |c: usize| &clusters.centroids[c * r..(c + 1) * r];
    let mut smaller = 0;
    let mut scores = Vec::with_capacity(rows.len());
    let mut flags = Vec::with_capacity(rows.len());
    for i in 0..rows.len() {
        let x = &data[i * r..(i + 1) * r];
        let dist = |c: &[f64]| {
            x.iter()
                .zip(c)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f64>()
                .sqrt()
        };
        let (d_small, d_large) = (dist(centre(small)), dist(centre(1 - small)));
        let total = d_small + d_large;
        scores.push(if total > 0.0 {
            ((d_large - d_small) / total) as f32
        } else {
            0.0
        });
        let in_small = clusters.assignment[i] as usize == small;
        smaller += in_small as usize;
        flags.push(in_small && poison);
    }
    Some(ClassOutcome {
        scores,
        flags,
        statistic: ClassStatistic {
            class: class as u32,
            size: rows.len(),
            statistic: "silhouette",
            value: sil,
            threshold: Some(config.silhouette_threshold),
            flagged: if poison { smaller } else { 0 },
        },
    })
}

/// Classes run in parallel (each is seeded by its own index, so the outcome does not depend
/// on the thread count).
pub fn run(points: &Points<'_>, config: &ClusteringConfig) -> Detection {
    let n = points.len();
    let mut scores = vec![0f32; n];
    let mut flags = vec![false; n];
    let mut classes = Vec::new();
    let per_class = points.classes();
    let outcomes: Vec<Option<ClassOutcome>> = per_class
        .par_iter()
        .enumerate()
        .map(|(class, rows)| class_outcome(points, class, rows, config))
        .collect();
    for (rows, outcome) in per_class.iter().zip(outcomes) {
        let Some(outcome) = outcome else { continue };
        for ((&row, score), flag) in rows.iter().zip(outcome.scores).zip(outcome.flags) {
            scores[row as usize] = score;
            flags[row as usize] = flag;
        }
        classes.push(outcome.statistic);
    }
    Detection {
        detector: "clustering",
        view: points.view,
        parameters: parameters(config),
        scores,
        flags,
        classes,
    }
}

/// The parameters the report lists.
pub(crate) fn parameters(config: &ClusteringConfig) -> Vec<(String, String)> {
    vec![
        (
            "reduce".to_string(),
            format!("{:?}", config.reduce).to_lowercase(),
        ),
        ("dims".into(), config.dims.to_string()),
        ("size_threshold".into(), config.size_threshold.to_string()),
        (
            "silhouette_threshold".into(),
            config.silhouette_threshold.to_string(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::{Subset, View};
    use rand::SeedableRng;

    /// Class 0: `clean` points plus `planted` shifted far along three axes; class 1: 100
    /// points in one blob. Gaussian noise, so that the planted direction is the one
    /// non-Gaussian component for FastICA.
    fn data(clean: usize, planted: usize) -> (Vec<f32>, Subset) {
        use rand_distr::{Distribution, Normal};
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let noise = Normal::new(0.0f32, 0.6).unwrap();
        let n = clean + planted + 100;
        let mut values = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n {
            let (class, shift) = if i < clean {
                (0, 0.0)
            } else if i < clean + planted {
                (0, 8.0)
            } else {
                (1, 0.0)
            };
            values
                .extend((0..12).map(|j| noise.sample(&mut rng) + if j < 3 { shift } else { 0.0 }));
            labels.push(class);
        }
        let subset = Subset {
            rows: (0..n as u32).collect(),
            labels,
            n_classes: 2,
            excluded: Vec::new(),
        };
        (values, subset)
    }

    #[test]
    fn the_planted_cluster_is_split_off_and_flagged() {
        let (values, subset) = data(80, 20);
        let points = Points::from_vec(values, 12, &subset, View::Probe);
        let d = run(&points, &ClusteringConfig::default());
        let flagged: Vec<usize> = (0..100).filter(|&i| d.flags[i]).collect();
        assert_eq!(flagged, (80..100).collect::<Vec<_>>());
        assert!(d.classes[0].value > 0.5, "{:?}", d.classes[0]);
        // A single Gaussian blob split in two has a silhouette near 0.1, right at ART's
        // threshold: the method's own rule can fire on a clean class, which is why the
        // verdict does not rest on it.
        assert!(d.classes[1].value < 0.2, "{:?}", d.classes[1]);
        let min_planted = d.scores[80..100]
            .iter()
            .cloned()
            .fold(f32::INFINITY, f32::min);
        let max_rest = d.scores[..80]
            .iter()
            .cloned()
            .fold(f32::NEG_INFINITY, f32::max);
        assert!(min_planted > max_rest);
    }

    #[test]
    fn fastica_recovers_an_even_split() {
        // FastICA needs a clearly non-Gaussian direction: two equal halves (a strongly
        // sub-Gaussian component), with enough samples for stable contrasts.
        let (values, subset) = data(300, 300);
        let points = Points::from_vec(values, 12, &subset, View::Probe);
        let config = ClusteringConfig {
            reduce: Reduce::FastIca,
            ..Default::default()
        };
        let d = run(&points, &config);
        // A positive score: nearer the smaller cluster's centre.
        let smaller: Vec<u32> = (0..600).filter(|&i| d.scores[i as usize] > 0.0).collect();
        let planted: Vec<u32> = (300..600).collect();
        let clean: Vec<u32> = (0..300).collect();
        assert!(smaller == planted || smaller == clean, "{smaller:?}");
    }

    #[test]
    fn tiny_classes_are_skipped_and_constant_ones_stay_finite() {
        let subset = Subset {
            rows: (0..7).collect(),
            labels: vec![0, 0, 0, 1, 1, 1, 1],
            n_classes: 2,
            excluded: Vec::new(),
        };
        let points = Points::from_vec(
            vec![1.0, 2.0, 3.0, 5.0, 5.0, 5.0, 5.0],
            1,
            &subset,
            View::Raw,
        );
        let d = run(&points, &ClusteringConfig::default());
        assert_eq!(d.classes.len(), 1, "class 0 has 3 samples");
        assert_eq!(d.classes[0].class, 1);
        assert!(d.scores.iter().all(|s| s.is_finite()));
        assert!(d.flags.iter().all(|&f| !f));
    }
}
