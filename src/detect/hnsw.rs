//! Approximate nearest neighbours with an HNSW graph (hnsw_rs), behind
//! [`super::knn::NeighbourIndex`]; nothing else sees its types. Exact k-NN costs `2 n^2 d`
//! flops; the graph trades recall for sub-quadratic work, which pays off on many cores and
//! large n (on two cores at 200,000 x 128 it did not: benches/RESULTS.md).

use hnsw_rs::anndists::dist::DistL2;
use hnsw_rs::hnsw::Hnsw;
use rayon::prelude::*;

/// Graph degree (hnsw_rs's `max_nb_connection`).
const M: usize = 16;
/// Candidates explored while building the graph.
const EF_CONSTRUCTION: usize = 100;
/// Layers of the graph.
const MAX_LAYER: usize = 16;

/// Each row's `k` approximate nearest other rows (`n x k`, nearest first, `u32::MAX` where
/// the graph returned fewer), from row-major `n x d` values. `ef` is the search breadth (at
/// least k + 1).
pub fn neighbours(values: &[f32], d: usize, k: usize, ef: usize) -> Vec<u32> {
    let n = values.len() / d.max(1);
    if k == 0 || n <= k {
        return Vec::new();
    }
    let index: Hnsw<'_, f32, DistL2> = Hnsw::new(M, n, MAX_LAYER, EF_CONSTRUCTION, DistL2 {});
    let rows: Vec<(&[f32], usize)> = (0..n).map(|i| (&values[i * d..(i + 1) * d], i)).collect();
    index.parallel_insert_slice(&rows);
    let mut out = vec![0u32; n * k];
    out.par_chunks_mut(k).enumerate().for_each(|(i, best)| {
        let hits = index.search(&values[i * d..(i + 1) * d], k + 1, ef.max(k + 1));
        // The query itself comes back (distance 0) unless a duplicate displaced it.
        let found = hits
            .iter()
            .map(|h| h.d_id as u32)
            .filter(|&j| j as usize != i);
        // A graph search can return fewer than k (rare, tiny or degenerate inputs): the
        // unfilled places stay `u32::MAX` and cast no vote.
        best.fill(u32::MAX);
        for (b, j) in best.iter_mut().zip(found) {
            *b = j;
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn recall_against_the_exact_search_is_high() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let (n, d, k) = (2000, 16, 10);
        let values: Vec<f32> = (0..n * d).map(|_| rng.random_range(-1.0..1.0)).collect();
        let approx = neighbours(&values, d, k, 64);
        let t = candle_core::Tensor::from_vec(values, (n, d), &candle_core::Device::Cpu).unwrap();
        let exact = super::super::knn::neighbours(&t, k).unwrap();
        let mut hits = 0;
        for i in 0..n {
            let truth: std::collections::HashSet<u32> =
                exact[i * k..(i + 1) * k].iter().copied().collect();
            hits += approx[i * k..(i + 1) * k]
                .iter()
                .filter(|j| truth.contains(j))
                .count();
        }
        let recall = hits as f64 / (n * k) as f64;
        assert!(recall > 0.9, "recall {recall}");
        assert!((0..n).all(|i| !approx[i * k..(i + 1) * k].contains(&(i as u32))));
    }
}
