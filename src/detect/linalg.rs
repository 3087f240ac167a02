//! Small dense linear algebra on the host in f64 (nalgebra): class means, centred covariances
//! and their leading eigenvectors. The per-class matrices are `d x d`, so an exact symmetric
//! eigensolver is affordable and avoids power-iteration convergence questions on the CPU path,
//! up to [`DIRECT_DIM`] dimensions. Past that (the raw pixels of a 64x64 colour image are
//! 12,288), a `d x d` eigendecomposition per class takes hours: the axes are then taken from
//! the `m x m` Gram matrix of at most [`DUAL_ROWS`] seeded rows of the class (the same
//! nonzero eigenvalues, and axes `X^T u / sqrt(m lambda)`), which is exact for those rows.

use nalgebra::{DMatrix, DVector, SymmetricEigen};

use super::Points;

/// Rows a centred block holds: a class's `n x d` f64 copy would be twice its f32 rows (1 GB
/// for a 2M-row class at d 64), so larger classes are centred a block at a time. Up to this
/// many rows the block is the whole class.
pub const CENTRED_BLOCK: usize = 65_536;

/// Mean and centred covariance (divided by n) of the given rows.
pub fn mean_covariance(points: &Points<'_>, rows: &[u32]) -> (DVector<f64>, DMatrix<f64>) {
    let (mean, n) = mean_only(points, rows);
    let d = points.dim;
    let mut cov = DMatrix::<f64>::zeros(d, d);
    for block in rows.chunks(CENTRED_BLOCK) {
        let g = gram(&centred(points, block, &mean));
        if block.len() == rows.len() {
            cov = g;
        } else {
            cov += g;
        }
    }
    (mean, cov / n)
}

/// `(rows - mean) * axes`, an `n x r` matrix, a block of [`CENTRED_BLOCK`] rows at a time.
pub fn project(
    points: &Points<'_>,
    rows: &[u32],
    mean: &DVector<f64>,
    axes: &DMatrix<f64>,
) -> DMatrix<f64> {
    if rows.len() <= CENTRED_BLOCK {
        return centred(points, rows, mean) * axes;
    }
    let mut out = DMatrix::<f64>::zeros(rows.len(), axes.ncols());
    for (b, block) in rows.chunks(CENTRED_BLOCK).enumerate() {
        let part = centred(points, block, mean) * axes;
        out.rows_mut(b * CENTRED_BLOCK, block.len())
            .copy_from(&part);
    }
    out
}

/// `x^T x` for an `n x d` matrix, through the `gemm` crate on the rayon pool: at 6,000 x 784
/// (an MNIST class) nalgebra's single-threaded product was most of the clustering's time.
fn gram(x: &DMatrix<f64>) -> DMatrix<f64> {
    let (n, d) = x.shape();
    let mut out = DMatrix::<f64>::zeros(d, d);
    if n == 0 || d == 0 {
        return out;
    }
    let data = x.as_slice();
    // SAFETY: nalgebra stores matrices column-major and contiguous. `x^T` (d x n) has its
    // entry (i, k) = x(k, i) at i * n + k, `x` (n x d) its entry (k, j) at j * n + k, and the
    // d x d output its entry (i, j) at j * d + i (the gemm crate takes column stride, then row stride): every index lies inside the slices.
    unsafe {
        gemm::gemm(
            d,
            d,
            n,
            out.as_mut_slice().as_mut_ptr(),
            d as isize,
            1,
            false,
            data.as_ptr(),
            1,
            n as isize,
            data.as_ptr(),
            n as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        );
    }
    out
}

/// The rows minus `mean`, as an `n x d` matrix.
pub fn centred(points: &Points<'_>, rows: &[u32], mean: &DVector<f64>) -> DMatrix<f64> {
    DMatrix::from_fn(rows.len(), points.dim, |i, j| {
        points.row(rows[i] as usize)[j] as f64 - mean[j]
    })
}

/// Up to this many dimensions the axes come from the full `d x d` covariance.
pub const DIRECT_DIM: usize = 2048;
/// Past [`DIRECT_DIM`], the axes are fitted on at most this many seeded rows of the class.
pub const DUAL_ROWS: usize = 2048;

/// The class mean, and the covariance's eigenvalues (descending) with matching unit axes
/// (columns): all `d` of them up to [`DIRECT_DIM`] dimensions, otherwise the nonzero ones of a
/// seeded sample of at most [`DUAL_ROWS`] rows (see the module note).
pub fn principal_axes(
    points: &Points<'_>,
    rows: &[u32],
    seed: u64,
) -> (DVector<f64>, Vec<f64>, DMatrix<f64>) {
    if points.dim <= DIRECT_DIM {
        let (mean, cov) = mean_covariance(points, rows);
        let (values, vectors) = eigen_desc(cov);
        return (mean, values, vectors);
    }
    let (mean, _) = mean_only(points, rows);
    let fitted: Vec<u32> = if rows.len() <= DUAL_ROWS {
        rows.to_vec()
    } else {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut picked = rand::seq::index::sample(&mut rng, rows.len(), DUAL_ROWS).into_vec();
        picked.sort_unstable();
        picked.into_iter().map(|i| rows[i]).collect()
    };
    let (values, vectors) = dual_axes(&centred(points, &fitted, &mean));
    (mean, values, vectors)
}

/// The nonzero eigenvalues (descending) and unit axes of `x^T x / m` for a centred `m x d`
/// matrix `x`, from the `m x m` Gram matrix `x x^T / m`: if `G u = lambda u`, then
/// `x^T u / sqrt(m lambda)` is a unit eigenvector of the covariance with the same eigenvalue.
fn dual_axes(x: &DMatrix<f64>) -> (Vec<f64>, DMatrix<f64>) {
    let m = x.nrows().max(1) as f64;
    let (gram_values, u) = eigen_desc(x * x.transpose() / m);
    let top = gram_values.first().copied().unwrap_or(0.0);
    let kept: Vec<usize> = (0..gram_values.len())
        .filter(|&i| gram_values[i] > 1e-12 * top.max(f64::MIN_POSITIVE))
        .collect();
    let mut vectors = DMatrix::<f64>::zeros(x.ncols(), kept.len().max(1));
    for (c, &i) in kept.iter().enumerate() {
        let axis = x.transpose() * u.column(i) / (m * gram_values[i]).sqrt();
        vectors.set_column(c, &axis);
    }
    (kept.iter().map(|&i| gram_values[i]).collect(), vectors)
}

fn mean_only(points: &Points<'_>, rows: &[u32]) -> (DVector<f64>, f64) {
    let n = rows.len().max(1) as f64;
    let mut mean = DVector::<f64>::zeros(points.dim);
    for &r in rows {
        for (m, &v) in mean.iter_mut().zip(points.row(r as usize)) {
            *m += v as f64;
        }
    }
    (mean / n, n)
}

/// Eigenvalues (descending) and matching unit eigenvectors (columns) of a symmetric matrix.
pub fn eigen_desc(m: DMatrix<f64>) -> (Vec<f64>, DMatrix<f64>) {
    if m.nrows() == 0 {
        return (Vec::new(), m);
    }
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
    fn classes_past_one_block_get_the_same_covariance_and_projection() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        let (n, d) = (2 * CENTRED_BLOCK + 17, 3);
        let values: Vec<f32> = (0..n * d).map(|_| rng.random_range(-1.0..1.0)).collect();
        let subset = Subset {
            rows: (0..n as u32).collect(),
            labels: vec![0; n],
            n_classes: 1,
            excluded: Vec::new(),
        };
        let points = Points::from_vec(values, d, &subset, View::Raw);
        let rows: Vec<u32> = (0..n as u32).collect();
        let (mean, cov) = mean_covariance(&points, &rows);
        let whole = centred(&points, &rows, &mean);
        let direct = whole.transpose() * &whole / n as f64;
        assert!((&cov - &direct).abs().max() < 1e-12, "{cov} {direct}");
        let axes = DMatrix::from_fn(d, 2, |i, j| (i + 2 * j) as f64 * 0.5 - 1.0);
        let blockwise = project(&points, &rows, &mean, &axes);
        assert_eq!(blockwise.shape(), (n, 2));
        assert!((&blockwise - &whole * &axes).abs().max() < 1e-12);
    }

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

    #[test]
    fn the_dual_axes_match_the_covariance_eigenvectors() {
        // 12 centred rows in 40 dimensions (more dimensions than rows, as with raw pixels).
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let mut x = DMatrix::from_fn(12, 40, |_, _| rng.random_range(-1.0..1.0));
        let mean = x.row_mean();
        for mut row in x.row_iter_mut() {
            row -= &mean;
        }
        let (direct_values, direct) = eigen_desc(x.transpose() * &x / 12.0);
        let (values, axes) = dual_axes(&x);
        // Centred, 12 rows span at most 11 dimensions.
        assert_eq!(values.len(), 11);
        for (c, &v) in values.iter().enumerate() {
            assert!(
                (v - direct_values[c]).abs() < 1e-9 * direct_values[0],
                "{c}"
            );
            // The same axis up to sign, and of unit length.
            let dot = axes.column(c).dot(&direct.column(c));
            assert!((dot.abs() - 1.0).abs() < 1e-6, "axis {c}: {dot}");
        }
    }

    #[test]
    fn the_gram_matrix_matches_nalgebras_product() {
        // Tall, wide and degenerate shapes: the gemm call's strides must be right for each.
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        for (n, d) in [(37, 5), (3, 29), (1, 1), (0, 4), (130, 70)] {
            let x = DMatrix::from_fn(n, d, |_, _| rng.random_range(-2.0..2.0));
            let expected = x.transpose() * &x;
            let got = gram(&x);
            assert_eq!(got.shape(), (d, d));
            let worst = (got - expected).abs().max();
            assert!(worst < 1e-10, "{n} x {d}: {worst}");
        }
    }
}
