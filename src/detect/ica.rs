//! FastICA (Hyvärinen 1999), symmetric form with the log-cosh contrast, on data that are
//! already whitened. Activation clustering offers it instead of PCA for the reduction step, as
//! the original paper did.

use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const MAX_ITERATIONS: usize = 200;
const TOLERANCE: f64 = 1e-4;

/// Unmixes whitened `n x k` data `z`; returns the `n x k` independent components.
pub fn fastica(z: &DMatrix<f64>, seed: u64) -> DMatrix<f64> {
    let (n, k) = (z.nrows(), z.ncols());
    if n == 0 || k == 0 {
        return z.clone();
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut w = decorrelate(&DMatrix::from_fn(k, k, |_, _| rng.random_range(-1.0..1.0)));
    for _ in 0..MAX_ITERATIONS {
        // Projections y = z w^T (n x k); g = tanh(y), g' = 1 - tanh^2.
        let y = z * w.transpose();
        let g = y.map(f64::tanh);
        let g_prime_mean: Vec<f64> = (0..k)
            .map(|c| g.column(c).iter().map(|t| 1.0 - t * t).sum::<f64>() / n as f64)
            .collect();
        let mut next = g.transpose() * z / n as f64;
        for (c, &gm) in g_prime_mean.iter().enumerate() {
            let wc = w.row(c) * gm;
            let mut row = next.row_mut(c);
            row -= wc;
        }
        let next = decorrelate(&next);
        // Converged when every new unmixing vector is parallel to the old one.
        let change = (0..k)
            .map(|c| (next.row(c).dot(&w.row(c)).abs() - 1.0).abs())
            .fold(0.0, f64::max);
        w = next;
        if change < TOLERANCE {
            break;
        }
    }
    z * w.transpose()
}

/// Symmetric decorrelation: `(w w^T)^(-1/2) w`.
fn decorrelate(w: &DMatrix<f64>) -> DMatrix<f64> {
    let (values, vectors) = super::linalg::eigen_desc(w * w.transpose());
    let inv_sqrt = DMatrix::from_diagonal(&nalgebra::DVector::from_iterator(
        values.len(),
        values
            .iter()
            .map(|&v| if v > 1e-12 { 1.0 / v.sqrt() } else { 0.0 }),
    ));
    &vectors * inv_sqrt * vectors.transpose() * w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_two_mixed_non_gaussian_sources() {
        // A sawtooth and a square wave, mixed, then whitened.
        let n = 2000;
        let s = DMatrix::from_fn(n, 2, |i, c| {
            let t = i as f64 / 37.0;
            if c == 0 {
                (t % 1.0) * 2.0 - 1.0
            } else if (t * 0.7) % 1.0 < 0.5 {
                1.0
            } else {
                -1.0
            }
        });
        let mix = DMatrix::from_row_slice(2, 2, &[1.0, 0.6, 0.4, 1.0]);
        let x = &s * mix.transpose();
        let mean = x.row_mean();
        let xc = DMatrix::from_fn(n, 2, |i, j| x[(i, j)] - mean[j]);
        let (values, vectors) = crate::detect::linalg::eigen_desc(xc.transpose() * &xc / n as f64);
        let z = &xc
            * &vectors
            * DMatrix::from_diagonal(&nalgebra::DVector::from_iterator(
                2,
                values.iter().map(|v| 1.0 / v.sqrt()),
            ));
        let found = fastica(&z, 4);
        // Each source correlates almost perfectly with one recovered component.
        for src in 0..2 {
            let best = (0..2)
                .map(|c| correlation(s.column(src).as_slice(), found.column(c).as_slice()).abs())
                .fold(0.0, f64::max);
            assert!(best > 0.98, "source {src}: {best}");
        }
    }

    fn correlation(a: &[f64], b: &[f64]) -> f64 {
        let n = a.len() as f64;
        let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
        let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
        let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
        let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
        cov / (va * vb).sqrt()
    }
}
