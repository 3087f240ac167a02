//! Detection quality against known poisons: precision, recall and F1 of a flag set, and the
//! AUROC and TPR at a fixed FPR of a score.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quality {
    pub flagged: usize,
    pub true_positives: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// Precision, recall and F1 of `flags` against `truth`. With nothing flagged, precision is 1
/// (no false alarm was raised). With no poison present, recall is 1.
pub fn quality(flags: &[bool], truth: &[bool]) -> Quality {
    let flagged = flags.iter().filter(|&&f| f).count();
    let positives = truth.iter().filter(|&&t| t).count();
    let tp = flags.iter().zip(truth).filter(|(&f, &t)| f && t).count();
    let precision = if flagged == 0 {
        1.0
    } else {
        tp as f64 / flagged as f64
    };
    let recall = if positives == 0 {
        1.0
    } else {
        tp as f64 / positives as f64
    };
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    Quality {
        flagged,
        true_positives: tp,
        precision,
        recall,
        f1,
    }
}

/// Area under the ROC curve of `scores` for separating `truth`, by the Mann-Whitney U
/// statistic with ties counted half. `None` when one side is empty.
pub fn auroc(scores: &[f32], truth: &[bool]) -> Option<f64> {
    let positives = truth.iter().filter(|&&t| t).count();
    let negatives = truth.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Average ranks over runs of equal scores.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += rank * order[i..=j].iter().filter(|&&o| truth[o]).count() as f64;
        i = j + 1;
    }
    let u = rank_sum - (positives * (positives + 1)) as f64 / 2.0;
    Some(u / (positives * negatives) as f64)
}

/// The ROC curve of `scores` for separating `truth`: (false positive rate, true positive rate)
/// as the threshold falls past each distinct score, from (0, 0) to (1, 1). Samples with equal
/// scores enter together (one diagonal step), so the trapezoids under the curve add up to
/// [`auroc`]. `None` when one side is empty.
pub fn roc_curve(scores: &[f32], truth: &[bool]) -> Option<Vec<(f64, f64)>> {
    let positives = truth.iter().filter(|&&t| t).count();
    let negatives = truth.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut curve = vec![(0.0, 0.0)];
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut i = 0;
    while i < order.len() {
        // The run of scores equal to this one (a NaN equals nothing and enters alone).
        let mut j = i + 1;
        while j < order.len() && scores[order[j]] == scores[order[i]] {
            j += 1;
        }
        for &o in &order[i..j] {
            if truth[o] {
                tp += 1;
            } else {
                fp += 1;
            }
        }
        curve.push((fp as f64 / negatives as f64, tp as f64 / positives as f64));
        i = j;
    }
    Some(curve)
}

/// The share of poisons ranked above the threshold that lets through at most `fpr` of the
/// clean samples. `None` when one side is empty.
pub fn tpr_at_fpr(scores: &[f32], truth: &[bool], fpr: f64) -> Option<f64> {
    let mut clean: Vec<f32> = scores
        .iter()
        .zip(truth)
        .filter(|(_, &t)| !t)
        .map(|(&s, _)| s)
        .collect();
    let poison: Vec<f32> = scores
        .iter()
        .zip(truth)
        .filter(|(_, &t)| t)
        .map(|(&s, _)| s)
        .collect();
    if clean.is_empty() || poison.is_empty() {
        return None;
    }
    clean.sort_by(|a, b| b.total_cmp(a));
    let allowed = (fpr * clean.len() as f64).floor() as usize;
    // Flag scores strictly above the (allowed+1)-th highest clean score.
    let threshold = clean[allowed.min(clean.len() - 1)];
    Some(poison.iter().filter(|&&s| s > threshold).count() as f64 / poison.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_counts() {
        let q = quality(&[true, true, false, false], &[true, false, true, false]);
        assert_eq!((q.flagged, q.true_positives), (2, 1));
        assert_eq!((q.precision, q.recall, q.f1), (0.5, 0.5, 0.5));
        let none = quality(&[false; 3], &[false; 3]);
        assert_eq!((none.precision, none.recall, none.f1), (1.0, 1.0, 1.0));
    }

    #[test]
    fn auroc_perfect_inverted_and_tied() {
        let truth = [false, false, true, true];
        assert_eq!(auroc(&[0.1, 0.2, 0.8, 0.9], &truth), Some(1.0));
        assert_eq!(auroc(&[0.9, 0.8, 0.2, 0.1], &truth), Some(0.0));
        assert_eq!(auroc(&[0.5; 4], &truth), Some(0.5));
        // One poison above both clean, one between them: 3 of 4 pairs ordered.
        assert_eq!(auroc(&[0.1, 0.5, 0.3, 0.9], &truth), Some(0.75));
        assert_eq!(auroc(&[0.1, 0.2], &[false, false]), None);
    }

    #[test]
    fn the_area_under_the_roc_curve_is_the_auroc() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        // Scores on a coarse grid, so that many samples tie.
        let scores: Vec<f32> = (0..300).map(|_| rng.random_range(0..12) as f32).collect();
        let truth: Vec<bool> = scores
            .iter()
            .map(|&s| rng.random_bool((s as f64 / 14.0).clamp(0.05, 0.95)))
            .collect();
        let curve = roc_curve(&scores, &truth).unwrap();
        assert_eq!((curve[0], curve[curve.len() - 1]), ((0.0, 0.0), (1.0, 1.0)));
        // One point per distinct score after the origin.
        assert_eq!(curve.len(), 13);
        let area: f64 = curve
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
            .sum();
        let expected = auroc(&scores, &truth).unwrap();
        assert!((area - expected).abs() < 1e-12, "{area} vs {expected}");
        assert!(expected > 0.6, "the truth follows the score: {expected}");
        assert_eq!(roc_curve(&[0.1, 0.2], &[true, true]), None);
    }

    #[test]
    fn tpr_at_low_fpr() {
        let truth = [false, false, false, false, true, true];
        let scores = [0.1, 0.2, 0.3, 0.9, 0.95, 0.5];
        // No clean sample may pass at 0 % FPR: threshold 0.9, one poison above it.
        assert_eq!(tpr_at_fpr(&scores, &truth, 0.0), Some(0.5));
        // 25 % FPR lets one clean through: threshold 0.3, both poisons above.
        assert_eq!(tpr_at_fpr(&scores, &truth, 0.25), Some(1.0));
    }
}
