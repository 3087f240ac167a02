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
//! 3. **Fire.** A half fires when its `self_share` is at most `threshold` (0.9), at least
//!    `gap` (0.1) below its sibling's (one half of the class is a copy of other classes, the
//!    other is not), and an outlier among all classes' halves: at least `z` robust standard
//!    deviations below their median, `z` the normal quantile at `alpha / halves`, the half's
//!    own sampling error added to the spread (see `OutlierCut`). With fewer
//!    than five classes the test does not fire (see `outlier_cut`). With the fixed cuts alone,
//!    in `benches/quality.sh --seeds "0 1 2"` (digits table, digits images, MNIST;
//!    2026-12-02) the planted halves scored 0.491 to 0.851 and every other class's
//!    lower half 0.900 to 1.000 (342 classes, none fired): on MNIST the lowest clean half
//!    sits at the threshold, so the margin there is thin. The gaps to the sibling were
//!    measured with a numpy copy of this test on the same seeds: 0.14 to 0.52 for planted
//!    halves, at most 0.07 for clean ones. A blend mixes least (its poisons are contracted
//!    towards the pattern by 1 - alpha), which is why both conditions are needed rather than
//!    a tighter single threshold.
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
/// Classes that must be tested for a half to be judged an outlier among them.
pub const MIN_CLASSES: usize = 5;

#[derive(Debug, Clone, PartialEq)]
pub struct ShiftConfig {
    /// Neighbours in the mixing test and in the member rule.
    pub k: usize,
    /// Samples drawn from a half (and as many from the other classes) for the mixing test.
    pub sample: usize,
    /// A half fires at or below this `self_share`...
    pub threshold: f64,
    /// ... and at least this far below its sibling's, and an outlier among all halves at this
    /// family-wise level.
    pub gap: f64,
    pub alpha: f64,
    pub seed: u64,
}

impl Default for ShiftConfig {
    fn default() -> Self {
        ShiftConfig {
            k: 10,
            sample: 400,
            threshold: 0.9,
            gap: 0.1,
            alpha: 0.01,
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
    /// How many of the half's samples that statistic averaged over (0 when untested).
    pub sample: usize,
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
    let classes = points.classes();
    let order = shuffled(points.len(), config.seed);
    let mut halves = Vec::new();
    let mut splits = Vec::new();
    for (class, rows) in classes.iter().enumerate() {
        let others = others_of(&order, &points.subset.labels, class as u32, config.sample);
        let tested = test_class(
            points,
            class,
            rows,
            &others,
            |r| excluded[r as usize],
            config,
        );
        if let Some((side, pair)) = tested {
            halves.extend(pair);
            splits.push((class, side));
        }
    }
    for (p, h) in firing(&halves, config) {
        let (class, side) = &splits[p];
        let flagged = members_in_own_half(points, &classes[*class], side, h == 1, config.k);
        let half = &mut halves[2 * p + h];
        half.fired = true;
        half.flagged = flagged;
    }
    let copies = Copies {
        view: points.view,
        threshold: config.threshold,
        halves,
    };
    let detection = detection(points.len(), points.view, &copies.halves, config);
    (detection, copies)
}

/// One seeded order of all `n` rows: each class's sample of the other classes is the first
/// `sample` rows of it with another label, a uniform sample found without a pass over n.
pub(crate) fn shuffled(n: usize, seed: u64) -> Vec<u32> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    order
}

/// The sample of the other classes that class `class` is mixed with.
pub(crate) fn others_of(order: &[u32], labels: &[u32], class: u32, sample: usize) -> Vec<u32> {
    order
        .iter()
        .copied()
        .filter(|&i| labels[i as usize] != class)
        .take(sample)
        .collect()
}

/// Steps 1 and 2 for class `class`, whose members are `rows` of `points` (ascending): which
/// side of the split each member is on, and its two halves (members as positions of
/// `points`, `excluded` ones left out of the mixing samples). None when the class cannot be
/// split.
pub(crate) fn test_class(
    points: &Points<'_>,
    class: usize,
    rows: &[u32],
    others: &[u32],
    excluded: impl Fn(u32) -> bool,
    config: &ShiftConfig,
) -> Option<(Vec<bool>, [Half; 2])> {
    let seed = config.seed.wrapping_add(class as u64);
    let side = split(points, rows, seed)?;
    let half = |h: usize, which: bool| {
        let members: Vec<u32> = rows
            .iter()
            .zip(&side)
            .filter(|(_, &s)| s == which)
            .map(|(&r, _)| r)
            .collect();
        let tested: Vec<u32> = members.iter().copied().filter(|&r| !excluded(r)).collect();
        let mixed = mixing(points, &tested, others, config, seed.wrapping_add(h as u64));
        Half {
            class: class as u32,
            members,
            self_share: mixed.map(|m| m.0),
            sample: mixed.map_or(0, |m| m.1),
            fired: false,
            flagged: Vec::new(),
        }
    };
    let pair = [half(0, false), half(1, true)];
    Some((side, pair))
}

/// Step 3 over all tested halves (two a split class, in order): the `(split, half)` pairs
/// that fire.
pub(crate) fn firing(halves: &[Half], config: &ShiftConfig) -> Vec<(usize, usize)> {
    let Some(cut) = outlier_cut(halves, config) else {
        return Vec::new();
    };
    let mut fired = Vec::new();
    for p in 0..halves.len() / 2 {
        for h in 0..2 {
            let (v, s) = (
                halves[2 * p + h].self_share,
                halves[2 * p + 1 - h].self_share,
            );
            if let (Some(v), Some(s)) = (v, s) {
                if fires(v, s, config) && cut.is_outlier(v, halves[2 * p + h].sample) {
                    fired.push((p, h));
                }
            }
        }
    }
    fired
}

/// The yardstick for "an outlier among all tested halves": their median, their spread (1.4826
/// MAD) and `z`, the normal quantile at `alpha / halves` (Bonferroni). None when fewer than
/// [`MIN_CLASSES`] classes were tested: with two, "the other classes" are one class, and a
/// part of a class that resembles it is natural overlap as often as a copy (a 2-class medical
/// table fired at 0.76 with the fixed cuts alone); with three or four, the median and MAD of
/// six or eight halves are too rough a yardstick (on the 3-class wine table under label
/// flips, the probe view's halves fired).
#[derive(Debug, Clone, Copy, PartialEq)]
struct OutlierCut {
    median: f64,
    sd: f64,
    z: f64,
}

impl OutlierCut {
    /// A half with self-share `v` measured on `q` samples is an outlier when it is more than
    /// `z` standard deviations below the median, counting both the spread among halves and
    /// the half's own sampling error: `v` is a mean of `q` per-sample shares in [0, 1], whose
    /// standard error is at most `sqrt(v (1 - v) / q)`. A small half's statistic is noisy
    /// (on the 27-class forbes table, a clean half of 12 companies scored 0.345 and fired
    /// on the spread alone).
    fn is_outlier(&self, v: f64, q: usize) -> bool {
        let sampling = v * (1.0 - v) / q.max(1) as f64;
        v <= self.median - self.z * (self.sd * self.sd + sampling).sqrt()
    }
}

fn outlier_cut(halves: &[Half], config: &ShiftConfig) -> Option<OutlierCut> {
    let shares: Vec<f64> = halves.iter().filter_map(|h| h.self_share).collect();
    let mut tested: Vec<u32> = halves
        .iter()
        .filter(|h| h.self_share.is_some())
        .map(|h| h.class)
        .collect();
    tested.dedup();
    if tested.len() < MIN_CLASSES {
        return None;
    }
    let (median, sd) = super::robust::median_sd(&shares);
    let z = super::stats::normal_isf(config.alpha / shares.len() as f64);
    Some(OutlierCut { median, sd, z })
}

/// A half with self-share `v` whose sibling has `sibling` is a shifted copy: mixed with the
/// other classes, and clearly more than the rest of its class.
fn fires(v: f64, sibling: f64, config: &ShiftConfig) -> bool {
    v <= config.threshold && sibling - v >= config.gap
}

/// The per-sample scores, flags and per-class statistics of the halves, over `n` rows.
pub(crate) fn detection(n: usize, view: View, halves: &[Half], config: &ShiftConfig) -> Detection {
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
        view,
        parameters: vec![
            ("k".into(), config.k.to_string()),
            ("sample".into(), config.sample.to_string()),
            ("threshold".into(), config.threshold.to_string()),
            ("gap".into(), config.gap.to_string()),
            ("alpha".into(), config.alpha.to_string()),
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
/// random order), and how many of the half's samples it averaged over: None when either has
/// no more than `k` rows (too few for a neighbourhood that could mix).
fn mixing(
    points: &Points<'_>,
    half: &[u32],
    others: &[u32],
    config: &ShiftConfig,
    seed: u64,
) -> Option<(f64, usize)> {
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
    Some((own as f64 / (q * k) as f64, q))
}

/// The members of the half `side == which` of the class `rows` whose `k` nearest neighbours
/// within the class lie mostly in their own half.
pub(crate) fn members_in_own_half(
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
mod tests;
