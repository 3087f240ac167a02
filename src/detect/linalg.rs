//! Small dense linear algebra on the host in f64 (nalgebra): class means, centred covariances
//! and their leading eigenvectors. The per-class matrices are `d x d`, so an exact symmetric
//! eigensolver is affordable and avoids power-iteration convergence questions on the CPU path.

use nalgebra::{DMatrix, DVector, SymmetricEigen};

use super::Points;

/// Mean and centred covariance (divided by n) of the given rows.
pub fn mean_covariance(points: &Points<'_>, rows: &[u32]) -> (DVector<f64>, DMatrix<f64>) {
    let d = points.dim;
    let n = rows.len().max(1) as f64;
    let mut mean = DVector::<f64>::zeros(d);
    for &r in rows {
        for (m, &v) in mean.iter_mut().zip(points.row(r as usize)) {
            *m += v as f64;
        }
    }
    mean /= n;
    let centred = centred(points, rows, &mean);
    let cov = centred.transpose() * &centred / n;
    (mean, cov)
}

/// The rows minus `mean`, as an `n x d` matrix.
pub fn centred(points: &Points<'_>, rows: &[u32], mean: &DVector<f64>) -> DMatrix<f64> {
    DMatrix::from_fn(rows.len(), points.dim, |i, j| {
        points.row(rows[i] as usize)[j] as f64 - mean[j]
    })
}

/// Eigenvalues (descending) and matching unit eigenvectors (columns) of a symmetric matrix.
pub fn eigen_desc(m: DMatrix<f64>) -> (Vec<f64>, DMatrix<f64>) {
    let eig = SymmetricEigen::new(m);
    let mut order: Vec<usize> = (0..eig.eigenvalues.len()).collect();
    order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
    let values = order.iter().map(|&i| eig.eigenvalues[i].max(0.0)).collect();
    let vectors = DMatrix::from_fn(eig.eigenvectors.nrows(), order.len(), |r, c| {
        eig.eigenvectors[(r, order[c])]
    });
    (values, vectors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::{Subset, View};

    #[test]
    fn covariance_and_leading_eigenvector_of_a_line() {
        // Points on the line y = 2x, plus a little noise across it.
        let values: Vec<f32> = (0..50)
            .flat_map(|i| {
                let t = i as f32 / 10.0;
                let e = if i % 2 == 0 { 0.01 } else { -0.01 };
                [t - 2.0 * e, 2.0 * t + e]
            })
            .collect();
        let subset = Subset {
            rows: (0..50).collect(),
            labels: vec![0; 50],
            n_classes: 1,
            excluded: Vec::new(),
        };
        let points = Points::from_vec(values, 2, &subset, View::Raw);
        let rows: Vec<u32> = (0..50).collect();
        let (mean, cov) = mean_covariance(&points, &rows);
        assert!((mean[0] - 2.45).abs() < 1e-5 && (mean[1] - 4.9).abs() < 1e-5);
        let (values, vectors) = eigen_desc(cov);
        assert!(values[0] > 1000.0 * values[1]);
        let v = vectors.column(0);
        let expected = [1.0 / 5f64.sqrt(), 2.0 / 5f64.sqrt()];
        let sign = v[0].signum();
        for j in 0..2 {
            assert!((sign * v[j] - expected[j]).abs() < 1e-3, "{v}");
        }
    }
}
