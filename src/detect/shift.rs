//! Shifted copies: the test that tells which half of a class was planted.
//!
//! An all-to-one backdoor (a patch, a blended pattern, a trigger phrase) takes samples of other
//! classes, changes them all the same way and relabels them to one target. In a view that was
//! not trained on the labels, the poisons then form a sub-population of the target class that
//! is *a shifted copy of the other classes*: take away its mean and it looks like the other
//! classes' samples with theirs taken away. A clean sub-population of a class does not: once
//! centred, a class's own variation (how its samples differ from each other) is much narrower
//! than the variation across classes.
//!
//! At a 10 % rate the poisons are about half of the target class, so neither the size rule of
//! activation clustering nor label consistency (the poisons are each other's neighbours) can
//! tell which half is planted. This test can:
//!
//! 1. **Split.** Each class is cut in two by 2-means on its full rows, fitted on a seeded
//!    sample from which far outliers (norm from the coordinate-wise median more than 5 robust
//!    standard deviations above the median norm) are left out: one far row would otherwise
//!    take a cluster to itself. Every row is then assigned to the nearer centre.
//! 2. **Test each half.** Samples already flagged by their neighbours (flipped labels) are left
//!    out of the half: a half holding many of them would otherwise look like other classes
//!    for that reason. A seeded sample of the half (at most `sample`) and an equal sample of
//!    the other classes' rows are each centred on their own mean and pooled; `self_share` is
//!    the mean share of a half sample's `k` nearest pooled neighbours that come from the half.
//!    Two samples from one distribution mix (about 0.5); a clean half stays apart; a planted
//!    half mixes.
//! 3. **Fire.** A half fires when its `self_share` is at most `threshold` (0.9) and at least
//!    `gap` (0.1) below its sibling's: one half of the class is a copy of other classes, the
//!    other is not. Measured on the digits and MNIST runs (seeds 0 to 2): planted halves 0.48
//!    to 0.86 with gaps of 0.14 to 0.52 to their sibling; clean classes' lower halves 0.90 to
//!    1.0 with gaps of at most 0.07. A blend mixes least (its poisons are contracted towards
//!    the pattern by 1 - alpha), which is why both conditions are needed rather than a
//!    tighter single threshold.
//! 4. **Flag members.** In a half that fires, a member is flagged when most of its `k` nearest
//!    neighbours within its class lie in its own half, not in the clean sibling: the clean
//!    target-class samples that 2-means put with the poisons sit among the sibling's.
//!
//! The score of every sample is `1 - self_share` of its half (0 when the half was not tested),
//! so a sample in a half that looks like a copy ranks high.
//!
//! Not covered: the reference is a sample of *all* other classes, so a half copied from one
//! or a few of them (a trigger planted from one source class, or all-to-all attacks) does not
//! mix with it and is not found by this test. Label consistency still sees such poisons when
//! the trigger is small next to the distance between classes.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::exact::search;
use super::kmeans::kmeans;
use super::{ClassStatistic, Detection, Points};
use crate::embed::View;

const RESTARTS: usize = 4;
/// Rows per class that the 2-means split is fitted on.
const SPLIT_SAMPLE: usize = 4096;
/// Outliers left out of the split's fit: robust standard deviations above the median norm.
const OUTLIER_SD: f64 = 5.0;

#[derive(Debug, Clone, PartialEq)]
pub struct ShiftConfig {
    /// Neighbours in the mixing test and in the member rule.
    pub k: usize,
    /// Samples drawn from a half (and as many from the other classes) for the mixing test.
    pub sample: usize,
    /// A half fires at or below this `self_share`...
    pub threshold: f64,
    /// ... and at least this far below its sibling's.
    pub gap: f64,
    pub seed: u64,
}

impl Default for ShiftConfig {
    fn default() -> Self {
        ShiftConfig {
            k: 10,
            sample: 400,
            threshold: 0.9,
            gap: 0.1,
            seed: 0,
        }
    }
}

/// One tested half of a class.
#[derive(Debug, Clone, PartialEq)]
pub struct Half {
    pub class: u32,
    /// Positions (into the subset) of the half's members.
    pub members: Vec<u32>,
    /// The mixing statistic, when the half had enough samples to test.
    pub self_share: Option<f64>,
    /// The half fired: its members flagged by the member rule are in `flagged`.
    pub fired: bool,
    pub flagged: Vec<u32>,
}

/// The tested halves of every class, for the verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Copies {
    pub view: View,
    pub threshold: f64,
    pub halves: Vec<Half>,
}

/// Runs the test on `points`; `excluded[i]` leaves subset row `i` out of the mixing samples
/// (the verdict passes the samples its neighbour rule flagged).
pub fn run(points: &Points<'_>, excluded: &[bool], config: &ShiftConfig) -> (Detection, Copies) {
    let n = points.len();
    let classes = points.classes();
    // One seeded order of all rows: each class's sample of the other classes is the first
    // `sample` rows of it with another label, a uniform sample found without a pass over n.
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.shuffle(&mut StdRng::seed_from_u64(config.seed));
    let mut halves = Vec::new();
    for (class, rows) in classes.iter().enumerate() {
        let seed = config.seed.wrapping_add(class as u64);
        let Some(side) = split(points, rows, seed) else {
            continue;
        };
        let others: Vec<u32> = order
            .iter()
            .copied()
            .filter(|&i| points.subset.labels[i as usize] != class as u32)
            .take(config.sample)
            .collect();
        let mut pair: Vec<Half> = [false, true]
            .iter()
            .enumerate()
            .map(|(h, &which)| {
                let members: Vec<u32> = rows
                    .iter()
                    .zip(&side)
                    .filter(|(_, &s)| s == which)
                    .map(|(&r, _)| r)
                    .collect();
                let tested: Vec<u32> = members
                    .iter()
                    .copied()
                    .filter(|&r| !excluded[r as usize])
                    .collect();
                let self_share = mixing(
                    points,
                    &tested,
                    &others,
                    config,
                    seed.wrapping_add(h as u64),
                );
                Half {
                    class: class as u32,
                    members,
                    self_share,
                    fired: false,
                    flagged: Vec::new(),
                }
            })
            .collect();
        for h in 0..2 {
            if let (Some(v), Some(s)) = (pair[h].self_share, pair[1 - h].self_share) {
                if fires(v, s, config) {
                    pair[h].fired = true;
                    pair[h].flagged = members_in_own_half(points, rows, &side, h == 1, config.k);
                }
            }
        }
        halves.extend(pair);
    }
    let copies = Copies {
        view: points.view,
        threshold: config.threshold,
        halves,
    };
    (detection(points, &copies.halves, config), copies)
}

/// A half with self-share `v` whose sibling has `sibling` is a shifted copy: mixed with the
/// other classes, and clearly more than the rest of its class.
fn fires(v: f64, sibling: f64, config: &ShiftConfig) -> bool {
    v <= config.threshold && sibling - v >= config.gap
}

/// The per-sample scores, flags and per-class statistics of the halves.
fn detection(points: &Points<'_>, halves: &[Half], config: &ShiftConfig) -> Detection {
    let n = points.len();
    let mut scores = vec![0f32; n];
    let mut flags = vec![false; n];
    for half in halves {
        if let Some(v) = half.self_share {
            for &r in &half.members {
                scores[r as usize] = (1.0 - v) as f32;
            }
        }
        for &r in &half.flagged {
            flags[r as usize] = true;
        }
    }
    let mut classes: Vec<ClassStatistic> = Vec::new();
    for half in halves {
        let Some(v) = half.self_share else { continue };
        match classes.iter_mut().find(|c| c.class == half.class) {
            Some(c) => {
                c.size += half.members.len();
                c.value = c.value.min(v);
                c.flagged += half.flagged.len();
            }
            None => classes.push(ClassStatistic {
                class: half.class,
                size: half.members.len(),
                statistic: "min_half_self_share",
                value: v,
                threshold: Some(config.threshold),
                flagged: half.flagged.len(),
            }),
        }
    }
    Detection {
        detector: "shift",
        view: points.view,
        parameters: vec![
            ("k".into(), config.k.to_string()),
            ("sample".into(), config.sample.to_string()),
            ("threshold".into(), config.threshold.to_string()),
            ("gap".into(), config.gap.to_string()),
        ],
        scores,
        flags,
        classes,
    }
}

/// Which side of the class's 2-means split each of `rows` falls on, or None when the class is
/// too small to split or the split leaves a side empty.
fn split(points: &Points<'_>, rows: &[u32], seed: u64) -> Option<Vec<bool>> {
    if rows.len() < 4 {
        return None;
    }
    let d = points.dim;
    let mut rng = StdRng::seed_from_u64(seed);
    let sample: Vec<u32> = if rows.len() <= SPLIT_SAMPLE {
        rows.to_vec()
    } else {
        let mut picked: Vec<usize> =
            rand::seq::index::sample(&mut rng, rows.len(), SPLIT_SAMPLE).into_vec();
        picked.sort_unstable();
        picked.into_iter().map(|i| rows[i]).collect()
    };
    // Coordinate-wise median of the sample, and each sampled row's distance from it.
    let mut column = Vec::with_capacity(sample.len());
    let median: Vec<f64> = (0..d)
        .map(|j| {
            column.clear();
            column.extend(sample.iter().map(|&r| points.row(r as usize)[j] as f64));
            super::robust::median(&mut column)
        })
        .collect();
    let norms: Vec<f64> = sample
        .iter()
        .map(|&r| distance(points.row(r as usize), &median))
        .collect();
    let (centre, sd) = super::robust::median_sd(&norms);
    let limit = centre + OUTLIER_SD * sd;
    let kept: Vec<f64> = sample
        .iter()
        .zip(&norms)
        .filter(|(_, &norm)| norm <= limit)
        .flat_map(|(&r, _)| points.row(r as usize).iter().map(|&v| v as f64))
        .collect();
    if kept.len() < 2 * d.max(1) {
        return None;
    }
    let clusters = kmeans(&kept, d, 2, RESTARTS, seed);
    let (a, b) = clusters.centroids.split_at(d);
    let side: Vec<bool> = rows
        .iter()
        .map(|&r| {
            let x = points.row(r as usize);
            distance(x, b) < distance(x, a)
        })
        .collect();
    let ones = side.iter().filter(|&&s| s).count();
    (ones > 0 && ones < side.len()).then_some(side)
}

fn distance(x: &[f32], centre: &[f64]) -> f64 {
    x.iter()
        .zip(centre)
        .map(|(&v, &c)| (v as f64 - c) * (v as f64 - c))
        .sum::<f64>()
        .sqrt()
}

/// The mixing statistic of `half` against `others` (a random sample of the other classes, in
/// random order): None when either has no more than `k` rows (too few for a neighbourhood
/// that could mix).
fn mixing(
    points: &Points<'_>,
    half: &[u32],
    others: &[u32],
    config: &ShiftConfig,
    seed: u64,
) -> Option<f64> {
    let q = half.len().min(others.len()).min(config.sample);
    let k = config.k;
    if q <= k || k == 0 {
        return None;
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let d = points.dim;
    let mut pooled = Vec::with_capacity(2 * q * d);
    let half: Vec<u32> = if half.len() == q {
        half.to_vec()
    } else {
        rand::seq::index::sample(&mut rng, half.len(), q)
            .into_iter()
            .map(|i| half[i])
            .collect()
    };
    for picked in [&half[..], &others[..q]] {
        let mut mean = vec![0f64; d];
        for &r in picked {
            for (m, &v) in mean.iter_mut().zip(points.row(r as usize)) {
                *m += v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= q as f64);
        for &r in picked {
            pooled.extend(
                points
                    .row(r as usize)
                    .iter()
                    .zip(&mean)
                    .map(|(&v, &m)| (v as f64 - m) as f32),
            );
        }
    }
    let neighbours = search(&pooled, 2 * q, d, k);
    let own = neighbours[..q * k]
        .iter()
        .filter(|&&j| (j as usize) < q)
        .count();
    Some(own as f64 / (q * k) as f64)
}

/// The members of the half `side == which` of the class `rows` whose `k` nearest neighbours
/// within the class lie mostly in their own half.
fn members_in_own_half(
    points: &Points<'_>,
    rows: &[u32],
    side: &[bool],
    which: bool,
    k: usize,
) -> Vec<u32> {
    let d = points.dim;
    let k = k.min(rows.len() - 1);
    let values: Vec<f32> = rows
        .iter()
        .flat_map(|&r| points.row(r as usize).iter().copied())
        .collect();
    let neighbours = search(&values, rows.len(), d, k);
    rows.iter()
        .enumerate()
        .filter(|&(i, _)| side[i] == which)
        .filter(|&(i, _)| {
            let own = neighbours[i * k..(i + 1) * k]
                .iter()
                .filter(|&&j| side[j as usize] == which)
                .count();
            2 * own > k
        })
        .map(|(_, &r)| r)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::Subset;
    use rand::Rng;
    use rand_distr::{Distribution, Normal};

    const D: usize = 16;

    /// `classes` classes of `per` samples in `D` dimensions: a class centre (spread 2) plus one
    /// of two style offsets (1.5 apart) plus unit noise. With `planted`, that many samples of
    /// the other classes, all shifted by one vector of norm about 14 (a strong trigger, as a
    /// patch is in pixel space), are added to class 0; they come last. Returns the values, the labels and the number of clean rows.
    fn data(classes: usize, per: usize, planted: usize, seed: u64) -> (Vec<f32>, Vec<u32>, usize) {
        let mut rng = StdRng::seed_from_u64(seed);
        let unit = Normal::new(0.0f32, 1.0).unwrap();
        let centres: Vec<Vec<f32>> = (0..classes)
            .map(|_| (0..D).map(|_| 2.0 * unit.sample(&mut rng)).collect())
            .collect();
        let style: Vec<f32> = (0..D).map(|j| if j == 0 { 0.75 } else { 0.0 }).collect();
        let sample = |c: usize, rng: &mut StdRng| -> Vec<f32> {
            let sign = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
            (0..D)
                .map(|j| centres[c][j] + sign * style[j] + unit.sample(rng))
                .collect()
        };
        let (mut values, mut labels) = (Vec::new(), Vec::new());
        for c in 0..classes {
            for _ in 0..per {
                values.extend(sample(c, &mut rng));
                labels.push(c as u32);
            }
        }
        let clean = labels.len();
        let shift: Vec<f32> = (0..D).map(|j| if j % 2 == 1 { 5.0 } else { 0.0 }).collect();
        for i in 0..planted {
            let source = 1 + i % (classes - 1);
            let x = sample(source, &mut rng);
            values.extend(x.iter().zip(&shift).map(|(a, b)| a + b));
            labels.push(0);
        }
        (values, labels, clean)
    }

    fn subset(labels: &[u32], classes: usize) -> Subset {
        Subset {
            rows: (0..labels.len() as u32).collect(),
            labels: labels.to_vec(),
            n_classes: classes,
            excluded: Vec::new(),
        }
    }

    #[test]
    fn the_planted_half_fires_and_its_members_are_flagged() {
        let (values, labels, clean) = data(5, 200, 200, 1);
        let s = subset(&labels, 5);
        let points = Points::from_vec(values, D, &s, View::Raw);
        let (detection, copies) = run(&points, &vec![false; labels.len()], &ShiftConfig::default());
        let fired: Vec<&Half> = copies.halves.iter().filter(|h| h.fired).collect();
        assert_eq!(
            fired.len(),
            1,
            "{:?}",
            copies
                .halves
                .iter()
                .map(|h| h.self_share)
                .collect::<Vec<_>>()
        );
        assert_eq!(fired[0].class, 0);
        let planted = |r: &u32| *r as usize >= clean;
        let hits = fired[0].flagged.iter().filter(|r| planted(r)).count();
        let false_alarms = fired[0].flagged.len() - hits;
        assert!(
            hits >= 190 && false_alarms <= 10,
            "{hits} planted, {false_alarms} clean flagged"
        );
        // Every clean half stays apart from the other classes; the planted one mixes.
        for half in &copies.halves {
            let share = half.self_share.unwrap();
            if half.fired {
                assert!(share < 0.75, "planted half {share}");
            } else {
                assert!(share > 0.9, "clean half of class {} at {share}", half.class);
            }
        }
        assert_eq!(
            detection.flags.iter().filter(|&&f| f).count(),
            fired[0].flagged.len()
        );
        let top = detection.scores[clean];
        assert!(
            detection.scores[..clean]
                .iter()
                .filter(|&&x| x >= top)
                .count()
                <= 200
        );
    }

    #[test]
    fn a_half_fires_only_when_low_and_well_below_its_sibling() {
        let c = ShiftConfig::default();
        assert!(fires(0.5, 0.99, &c));
        assert!(fires(0.86, 0.99, &c));
        // Low, but its sibling mixes about as much: the whole class resembles the others.
        assert!(!fires(0.6, 0.65, &c));
        // Well below its sibling, but not mixed enough to be a copy.
        assert!(!fires(0.91, 1.0, &c));
    }

    #[test]
    fn clean_classes_fire_nothing() {
        for seed in 0..3 {
            let (values, labels, _) = data(5, 200, 0, seed);
            let s = subset(&labels, 5);
            let points = Points::from_vec(values, D, &s, View::Raw);
            let (detection, copies) =
                run(&points, &vec![false; labels.len()], &ShiftConfig::default());
            assert!(copies.halves.iter().all(|h| !h.fired), "seed {seed}");
            assert!(detection.flags.iter().all(|&f| !f));
            assert_eq!(copies.halves.len(), 10);
        }
    }

    #[test]
    fn excluded_samples_are_left_out_of_the_mixing_sample() {
        // 60 samples of other classes relabelled 0 without any shift (flipped labels): left
        // in, they make a half of class 0 mix with the other classes; left out, they do not.
        let (values, mut labels, _) = data(5, 200, 0, 4);
        let mut rng = StdRng::seed_from_u64(9);
        let flipped: Vec<usize> = (0..60).map(|_| rng.random_range(200..1000)).collect();
        let mut excluded = vec![false; labels.len()];
        for &i in &flipped {
            labels[i] = 0;
            excluded[i] = true;
        }
        let s = subset(&labels, 5);
        let points = Points::from_vec(values, D, &s, View::Raw);
        let class0 = |copies: &Copies| -> f64 {
            copies
                .halves
                .iter()
                .filter(|h| h.class == 0)
                .map(|h| h.self_share.unwrap())
                .fold(1.0, f64::min)
        };
        let (_, left_out) = run(&points, &excluded, &ShiftConfig::default());
        assert!(left_out.halves.iter().all(|h| !h.fired));
        assert!(class0(&left_out) > 0.9, "{}", class0(&left_out));
        let (_, left_in) = run(&points, &vec![false; labels.len()], &ShiftConfig::default());
        assert!(
            class0(&left_in) < class0(&left_out),
            "{} against {}",
            class0(&left_in),
            class0(&left_out)
        );
    }

    #[test]
    fn degenerate_inputs_give_no_halves_or_untested_ones() {
        // One class: no other classes to compare with.
        let (values, _, _) = data(2, 50, 0, 3);
        let labels = vec![0u32; 100];
        let s = subset(&labels, 1);
        let points = Points::from_vec(values, D, &s, View::Raw);
        let (d, copies) = run(&points, &[false; 100], &ShiftConfig::default());
        assert!(copies
            .halves
            .iter()
            .all(|h| h.self_share.is_none() && !h.fired));
        assert!(d.flags.iter().all(|&f| !f) && d.scores.iter().all(|&x| x == 0.0));
        // Classes of 1 to 3 samples, d = 1, and constant rows: nothing to split or test.
        let labels = [0u32, 1, 1, 2, 2, 2];
        let s = subset(&labels, 3);
        let points = Points::from_vec(vec![0.5, 1.0, 2.0, 3.0, 4.0, 5.0], 1, &s, View::Raw);
        let (_, copies) = run(&points, &[false; 6], &ShiftConfig::default());
        assert!(copies.halves.is_empty());
        let labels: Vec<u32> = (0..40).map(|i| i % 2).collect();
        let s = subset(&labels, 2);
        let points = Points::from_vec(vec![1.0; 40 * 3], 3, &s, View::Raw);
        let (_, copies) = run(&points, &[false; 40], &ShiftConfig::default());
        assert!(copies.halves.is_empty());
        // d = 1 with real structure: halves exist and none fires on clean data.
        let mut rng = StdRng::seed_from_u64(5);
        let values: Vec<f32> = labels
            .iter()
            .map(|&c| 10.0 * c as f32 + rng.random_range(-1.0..1.0))
            .collect();
        let points = Points::from_vec(values, 1, &s, View::Raw);
        let (_, copies) = run(&points, &[false; 40], &ShiftConfig::default());
        assert!(copies.halves.iter().all(|h| !h.fired));
    }
}
