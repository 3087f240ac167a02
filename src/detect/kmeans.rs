//! k-means (Lloyd's algorithm with k-means++ seeding, best of several seeded restarts), the
//! CPU reference for the clustering step of activation clustering. Data are small here: one
//! class, reduced to about 10 dimensions.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const MAX_ITERATIONS: usize = 100;

#[derive(Debug, Clone, PartialEq)]
pub struct Clusters {
    pub assignment: Vec<u32>,
    /// `k x d`, row-major.
    pub centroids: Vec<f64>,
    pub sizes: Vec<usize>,
    pub inertia: f64,
}

fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Clusters the `n x d` row-major `data` into `k` groups. With fewer distinct points than `k`
/// some clusters stay empty (size 0).
pub fn kmeans(data: &[f64], d: usize, k: usize, restarts: usize, seed: u64) -> Clusters {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..restarts.max(1))
        .map(|_| lloyd(data, d, k, &mut rng))
        .min_by(|a, b| a.inertia.total_cmp(&b.inertia))
        .expect("at least one restart")
}

fn lloyd(data: &[f64], d: usize, k: usize, rng: &mut StdRng) -> Clusters {
    let n = data.len() / d.max(1);
    let row = |i: usize| &data[i * d..(i + 1) * d];
    // k-means++: each next centre drawn with probability proportional to squared distance.
    let mut centroids = Vec::with_capacity(k * d);
    centroids.extend_from_slice(row(rng.random_range(0..n)));
    let mut nearest: Vec<f64> = (0..n).map(|i| sq_dist(row(i), &centroids[..d])).collect();
    for _ in 1..k {
        let total: f64 = nearest.iter().sum();
        let pick = if total > 0.0 {
            let mut target = rng.random_range(0.0..total);
            nearest
                .iter()
                .position(|&w| {
                    target -= w;
                    target < 0.0
                })
                .unwrap_or(n - 1)
        } else {
            rng.random_range(0..n)
        };
        centroids.extend_from_slice(row(pick));
        let c = centroids.len() - d;
        for (i, w) in nearest.iter_mut().enumerate() {
            *w = w.min(sq_dist(row(i), &centroids[c..]));
        }
    }
    let mut assignment = vec![0u32; n];
    for iteration in 0..MAX_ITERATIONS {
        let mut changed = false;
        for (i, a) in assignment.iter_mut().enumerate() {
            let best = (0..k)
                .min_by(|&x, &y| {
                    sq_dist(row(i), &centroids[x * d..(x + 1) * d])
                        .total_cmp(&sq_dist(row(i), &centroids[y * d..(y + 1) * d]))
                })
                .unwrap_or(0) as u32;
            changed |= *a != best;
            *a = best;
        }
        if !changed && iteration > 0 {
            break;
        }
        let mut sums = vec![0f64; k * d];
        let mut counts = vec![0usize; k];
        for (i, &a) in assignment.iter().enumerate() {
            counts[a as usize] += 1;
            for (s, v) in sums[a as usize * d..].iter_mut().zip(row(i)) {
                *s += v;
            }
        }
        for c in 0..k {
            if counts[c] > 0 {
                for j in 0..d {
                    centroids[c * d + j] = sums[c * d + j] / counts[c] as f64;
                }
            }
        }
    }
    let mut sizes = vec![0usize; k];
    let mut inertia = 0.0;
    for (i, &a) in assignment.iter().enumerate() {
        sizes[a as usize] += 1;
        inertia += sq_dist(row(i), &centroids[a as usize * d..(a as usize + 1) * d]);
    }
    Clusters {
        assignment,
        centroids,
        sizes,
        inertia,
    }
}

/// Mean silhouette coefficient (Rousseeuw 1987) of a two-or-more-cluster assignment, exact over
/// at most `sample` points chosen with `seed` (all points when there are fewer). Points in
/// singleton clusters count 0, as in scikit-learn.
pub fn silhouette(
    data: &[f64],
    d: usize,
    assignment: &[u32],
    k: usize,
    sample: usize,
    seed: u64,
) -> f64 {
    let n = assignment.len();
    let mut chosen: Vec<usize> = (0..n).collect();
    if n > sample {
        let mut rng = StdRng::seed_from_u64(seed);
        rand::seq::SliceRandom::shuffle(chosen.as_mut_slice(), &mut rng);
        chosen.truncate(sample);
    }
    let row = |i: usize| &data[i * d..(i + 1) * d];
    let mut sizes = vec![0usize; k];
    for &i in &chosen {
        sizes[assignment[i] as usize] += 1;
    }
    if sizes.iter().filter(|&&s| s > 0).count() < 2 {
        return 0.0;
    }
    let mut total = 0.0;
    for &i in &chosen {
        let own = assignment[i] as usize;
        if sizes[own] < 2 {
            continue;
        }
        let mut sums = vec![0f64; k];
        for &j in &chosen {
            if j != i {
                sums[assignment[j] as usize] += sq_dist(row(i), row(j)).sqrt();
            }
        }
        let a = sums[own] / (sizes[own] - 1) as f64;
        let b = (0..k)
            .filter(|&c| c != own && sizes[c] > 0)
            .map(|c| sums[c] / sizes[c] as f64)
            .fold(f64::INFINITY, f64::min);
        let s = if a.max(b) > 0.0 {
            (b - a) / a.max(b)
        } else {
            0.0
        };
        total += s;
    }
    total / chosen.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_blobs() -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(9);
        (0..60)
            .flat_map(|i| {
                let c = if i < 40 { 0.0 } else { 10.0 };
                [
                    c + rng.random_range(-1.0..1.0),
                    c + rng.random_range(-1.0..1.0),
                ]
            })
            .collect()
    }

    #[test]
    fn separates_two_blobs_and_scores_a_high_silhouette() {
        let data = two_blobs();
        let c = kmeans(&data, 2, 2, 3, 1);
        let mut sizes = c.sizes.clone();
        sizes.sort();
        assert_eq!(sizes, [20, 40]);
        assert!(c.assignment[..40].iter().all(|&a| a == c.assignment[0]));
        assert!(c.assignment[40..].iter().all(|&a| a != c.assignment[0]));
        let s = silhouette(&data, 2, &c.assignment, 2, 1000, 0);
        assert!(s > 0.8, "{s}");
        assert_eq!(c, kmeans(&data, 2, 2, 3, 1), "seeded runs agree");
    }

    #[test]
    fn silhouette_matches_a_hand_computed_case() {
        // Points 0, 1 in cluster 0 and 4 in cluster 1 on a line.
        let data = [0.0, 1.0, 4.0];
        let s = silhouette(&data, 1, &[0, 0, 1], 2, 10, 0);
        // s(0) = (4 - 1) / 4, s(1) = (3 - 1) / 3, s(2) = 0 (singleton).
        let expected = (0.75 + 2.0 / 3.0) / 3.0;
        assert!((s - expected).abs() < 1e-12, "{s}");
    }

    #[test]
    fn identical_points_do_not_break_it() {
        let data = vec![1.0; 20];
        let c = kmeans(&data, 2, 2, 2, 0);
        assert_eq!(c.inertia, 0.0);
        assert_eq!(silhouette(&data, 2, &c.assignment, 2, 100, 0), 0.0);
    }
}
