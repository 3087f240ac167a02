//! Robust statistics for scores that may hold a planted minority: median and MAD instead of
//! mean and standard deviation, so that the minority cannot widen the yardstick it is
//! measured with.

use crate::embed::Subset;

/// The median of `values` (reordered in place; 0 for none).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Median and MAD-based standard deviation (1.4826 x MAD) of `values`.
pub fn median_sd(values: &[f64]) -> (f64, f64) {
    let mut v = values.to_vec();
    let m = median(&mut v);
    let mut dev: Vec<f64> = values.iter().map(|x| (x - m).abs()).collect();
    (m, 1.4826 * median(&mut dev))
}

/// Per-class robust z-scores: `(s - median) / (1.4826 MAD)` within each class. A class whose
/// MAD is 0 divides by the smallest positive spread seen in any class instead, so that scores
/// stay finite and comparable.
pub fn robust_z(scores: &[f32], subset: &Subset) -> Vec<f32> {
    let scale = RobustScale::new(scores, subset);
    scores
        .iter()
        .zip(&subset.labels)
        .map(|(&s, &c)| scale.z(s, c))
        .collect()
}

/// Each class's median and spread for [`robust_z`], so that z-scores can be taken a few
/// rows at a time (`scores.parquet` of a streamed scan is written in chunks).
pub struct RobustScale {
    stats: Vec<(f64, f64)>,
}

impl RobustScale {
    /// The scores are grouped by class once (a counting sort, f32), and each class's values
    /// are widened to f64 only while its median is taken: at 20M rows, every class's f64
    /// values at once would hold 160 MB.
    pub fn new(scores: &[f32], subset: &Subset) -> Self {
        let classes = subset.n_classes;
        let mut start = vec![0usize; classes + 1];
        for &c in &subset.labels {
            start[c as usize + 1] += 1;
        }
        for c in 0..classes {
            start[c + 1] += start[c];
        }
        let mut grouped = vec![0f32; scores.len()];
        let mut cursor = start.clone();
        for (&s, &c) in scores.iter().zip(&subset.labels) {
            grouped[cursor[c as usize]] = s;
            cursor[c as usize] += 1;
        }
        let mut stats: Vec<(f64, f64)> = start
            .windows(2)
            .map(|w| {
                let values: Vec<f64> = grouped[w[0]..w[1]].iter().map(|&s| s as f64).collect();
                median_sd(&values)
            })
            .collect();
        let floor = stats
            .iter()
            .map(|s| s.1)
            .filter(|&s| s > 0.0)
            .fold(f64::INFINITY, f64::min);
        let floor = if floor.is_finite() { floor } else { 1.0 };
        for s in &mut stats {
            s.1 = if s.1 > 0.0 { s.1 } else { floor };
        }
        RobustScale { stats }
    }

    /// The z-score of `score` in class `class`.
    pub fn z(&self, score: f32, class: u32) -> f32 {
        let (med, sd) = self.stats[class as usize];
        ((score as f64 - med) / sd) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subset(n: usize, classes: usize) -> Subset {
        Subset {
            rows: (0..n as u32).collect(),
            labels: (0..n as u32).map(|i| i % classes as u32).collect(),
            n_classes: classes,
            excluded: Vec::new(),
        }
    }

    #[test]
    fn median_sd_and_robust_z() {
        assert_eq!(median_sd(&[1.0, 2.0, 3.0, 4.0, 100.0]), (3.0, 1.4826));
        let s = subset(6, 2);
        // Class 0: rows 0, 2, 4 -> 1, 2, 30; class 1: all equal (MAD 0, uses the floor).
        let z = robust_z(&[1.0, 5.0, 2.0, 5.0, 30.0, 5.0], &s);
        assert!((z[4] - (28.0 / 1.4826) as f32).abs() < 1e-4);
        assert_eq!(z[1], 0.0);
        assert!(z.iter().all(|v| v.is_finite()));
    }
}
