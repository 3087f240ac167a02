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
    let mut members = vec![Vec::new(); subset.n_classes];
    for (i, &c) in subset.labels.iter().enumerate() {
        members[c as usize].push(i);
    }
    let stats: Vec<(f64, f64)> = members
        .iter()
        .map(|m| median_sd(&m.iter().map(|&i| scores[i] as f64).collect::<Vec<_>>()))
        .collect();
    let floor = stats
        .iter()
        .map(|s| s.1)
        .filter(|&s| s > 0.0)
        .fold(f64::INFINITY, f64::min);
    let floor = if floor.is_finite() { floor } else { 1.0 };
    let mut z = vec![0f32; scores.len()];
    for (c, m) in members.iter().enumerate() {
        let (med, sd) = stats[c];
        let sd = if sd > 0.0 { sd } else { floor };
        for &i in m {
            z[i] = ((scores[i] as f64 - med) / sd) as f32;
        }
    }
    z
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
