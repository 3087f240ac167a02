//! The partition behind the exact search's pruning ([`super::exact`]): rows cut into k-means
//! clusters, each with a centre and a radius, plus the two f32 primitives both use (row norms
//! and a matrix product through the gemm crate). This is not the detectors' k-means
//! ([`super::kmeans`], f64 on 10 reduced dimensions with restarts): here the rows are the full
//! embedding, the clustering only decides how much work is skipped, and every assignment is a
//! matrix product.

use rand::SeedableRng;
use rayon::prelude::*;

/// Lloyd rounds of the pruning partition.
const LLOYD_ROUNDS: usize = 4;
/// The partition is seeded, so the work done is the same from run to run.
const PARTITION_SEED: u64 = 0x6b6e_6e5f;
/// Rows per assignment product, at most: fewer where the products of that many rows with
/// every centre would pass [`ASSIGN_BYTES`] (16,384 rows x 4,472 centres was 293 MB).
const ASSIGN_ROWS: usize = 16384;
/// Bytes of products an assignment holds at a time.
const ASSIGN_BYTES: usize = 8 << 20;

/// Squared row norms, read in place: `x.sqr()` would hold a second n x d matrix.
pub(crate) fn row_norms(values: &[f32], d: usize) -> Vec<f32> {
    debug_assert!(d > 0, "zero-width rows have no count");
    values
        .par_chunks(d)
        .map(|row| row.iter().map(|v| v * v).sum())
        .collect()
}

/// `out (m x c) = a (m x d) * b (c x d)^T`, row-major, single-threaded when `parallel` is
/// false (the caller is already one of rayon's tasks).
pub(crate) fn products(
    out: &mut [f32],
    a: &[f32],
    b: &[f32],
    m: usize,
    c: usize,
    d: usize,
    parallel: bool,
) {
    debug_assert!(out.len() >= m * c && a.len() >= m * d && b.len() >= c * d);
    if d == 0 {
        out[..m * c].fill(0.0);
        return;
    }
    let parallelism = if parallel {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: `out` holds m x c values (row stride c, column stride 1); `a` holds m rows of d
    // (row stride d); `b` holds c rows of d, read as a d x c matrix (row stride 1, column
    // stride d). The debug assertion above states the sizes every index stays within.
    unsafe {
        gemm::gemm(
            m,
            c,
            d,
            out.as_mut_ptr(),
            1,
            c as isize,
            false,
            a.as_ptr(),
            1,
            d as isize,
            b.as_ptr(),
            d as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// The rows cut into clusters: centres (`clusters x d`), their squared norms, radii, and
/// members in ascending row order.
pub(super) struct Partition {
    pub centres: Vec<f32>,
    pub centre_norms: Vec<f32>,
    pub radii: Vec<f32>,
    pub members: Vec<Vec<u32>>,
}

impl Partition {
    /// A few rounds of Lloyd's k-means from seeded distinct rows, assignments by matrix
    /// product. The clustering only decides how much work is skipped, never the answer, so a
    /// rough one is enough.
    ///
    /// With `train_rows` below `n`, the rounds run on that many seeded sampled rows and all
    /// rows are then assigned once: at millions of rows, rounds over every row cost more than
    /// the search they serve.
    pub fn new(
        values: &[f32],
        n: usize,
        d: usize,
        clusters: usize,
        train_rows: Option<usize>,
    ) -> Self {
        let clusters = clusters.clamp(1, n.max(1));
        let mut assignment = vec![0u32; n];
        if clusters > 1 && d > 0 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(PARTITION_SEED);
            let sampled: Option<Vec<f32>> = train_rows.filter(|&m| m < n).map(|m| {
                let rows = training_rows(&mut rng, n, m, clusters);
                rows.iter()
                    .flat_map(|&i| values[i as usize * d..(i as usize + 1) * d].iter().copied())
                    .collect()
            });
            let train = sampled.as_deref().unwrap_or(values);
            let (centres, train_assignment) = lloyd(train, d, clusters, &mut rng);
            if sampled.is_some() {
                assign(values, n, d, &centres, &mut assignment);
            } else {
                assignment = train_assignment;
            }
        }
        let (centres, members) = means(values, d, clusters, &assignment);
        let centres: Vec<f32> = centres
            .iter()
            .map(|&v| if v.is_finite() { v } else { 0.0 })
            .collect();
        let radii: Vec<f32> = members
            .par_iter()
            .enumerate()
            .map(|(c, rows)| {
                let centre = &centres[c * d..(c + 1) * d];
                let farthest = rows
                    .iter()
                    .map(|&i| {
                        let row = &values[i as usize * d..(i as usize + 1) * d];
                        row.iter()
                            .zip(centre)
                            .map(|(&x, &m)| (x as f64 - m as f64).powi(2))
                            .sum::<f64>()
                    })
                    .fold(0f64, f64::max);
                // Rounded up: the bound must not shrink in f32.
                (farthest.sqrt() * (1.0 + 1e-6)) as f32
            })
            .collect();
        let centre_norms = if d == 0 {
            vec![0.0; clusters]
        } else {
            row_norms(&centres, d)
        };
        Partition {
            centres,
            centre_norms,
            radii,
            members,
        }
    }

    pub fn len(&self) -> usize {
        self.radii.len()
    }
}

/// The seeded generator a partition's sampling starts from.
pub(crate) fn partition_rng() -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(PARTITION_SEED)
}

/// The `max(m, clusters)` distinct rows (ascending) that a sampled partition is fitted on.
pub(crate) fn training_rows(
    rng: &mut rand::rngs::StdRng,
    n: usize,
    m: usize,
    clusters: usize,
) -> Vec<u32> {
    let mut rows = rand::seq::index::sample(rng, n, m.max(clusters).min(n)).into_vec();
    rows.sort_unstable();
    rows.into_iter().map(|r| r as u32).collect()
}

/// [`LLOYD_ROUNDS`] rounds of Lloyd's k-means on `train` from seeded distinct rows: the
/// centres, and each training row's nearest one. An emptied cluster keeps its old centre.
pub(crate) fn lloyd(
    train: &[f32],
    d: usize,
    clusters: usize,
    rng: &mut rand::rngs::StdRng,
) -> (Vec<f32>, Vec<u32>) {
    let m = train.len() / d;
    let mut train_assignment = vec![0u32; m];
    let mut centres: Vec<f32> = rand::seq::index::sample(rng, m, clusters)
        .into_iter()
        .flat_map(|i| train[i * d..(i + 1) * d].iter().copied())
        .collect();
    for round in 0..=LLOYD_ROUNDS {
        assign(train, m, d, &centres, &mut train_assignment);
        if round < LLOYD_ROUNDS {
            let (means, _) = means(train, d, clusters, &train_assignment);
            for (c, mean) in centres.chunks_mut(d).zip(means.chunks(d)) {
                if mean.iter().all(|v| v.is_finite()) {
                    c.copy_from_slice(mean);
                }
            }
        }
    }
    (centres, train_assignment)
}

/// Each row's nearest centre (`|c|^2 - 2 x.c`), in chunks of rows.
pub(crate) fn assign(values: &[f32], n: usize, d: usize, centres: &[f32], assignment: &mut [u32]) {
    let clusters = centres.len() / d.max(1);
    let centre_norms = row_norms(centres, d);
    let chunk = (ASSIGN_BYTES / 4 / clusters.max(1)).clamp(64, ASSIGN_ROWS);
    let mut dots = vec![0f32; chunk.min(n) * clusters];
    for start in (0..n).step_by(chunk) {
        let rows = chunk.min(n - start);
        let dots = &mut dots[..rows * clusters];
        products(dots, &values[start * d..], centres, rows, clusters, d, true);
        assignment[start..start + rows]
            .par_iter_mut()
            .zip(dots.par_chunks(clusters))
            .for_each(|(a, dots)| {
                let mut best = (f32::INFINITY, 0u32);
                for (c, (&dot, &norm)) in dots.iter().zip(&centre_norms).enumerate() {
                    let v = norm - 2.0 * dot;
                    if v < best.0 {
                        best = (v, c as u32);
                    }
                }
                *a = best.1;
            });
    }
}

/// Member means (f64 sums; NaN for an empty cluster) and member lists.
fn means(
    values: &[f32],
    d: usize,
    clusters: usize,
    assignment: &[u32],
) -> (Vec<f32>, Vec<Vec<u32>>) {
    let mut members = vec![Vec::new(); clusters];
    for (i, &a) in assignment.iter().enumerate() {
        members[a as usize].push(i as u32);
    }
    let centres = members
        .par_iter()
        .flat_map_iter(|rows| {
            let mut sum = vec![0f64; d];
            for &i in rows {
                for (s, &v) in sum
                    .iter_mut()
                    .zip(&values[i as usize * d..(i as usize + 1) * d])
                {
                    *s += v as f64;
                }
            }
            let count = rows.len() as f64;
            sum.into_iter().map(move |s| (s / count) as f32)
        })
        .collect();
    (centres, members)
}
