//! The inverted-file search behind `--knn-index ivf`: the exact search's partition cut into
//! about `sqrt(n)` clusters, each query compared only with the rows of its nearest few, and
//! the recall of that measured against the exact search on sampled queries.

use candle_core::Tensor;
use rand::SeedableRng;
use rayon::prelude::*;

use super::{prepared, products, rows, Index, Plan, QUERY_BLOCK, REFERENCE_TILE};
use crate::embed::{CandleContext, EmbedError};

impl Plan {
    /// The inverted-file search: about `sqrt(n)` clusters (so that assigning the rows and
    /// searching `probe` clusters a query both grow as `n^1.5`), centres fitted on
    /// [`IVF_TRAIN_PER_CLUSTER`] sampled rows a cluster.
    pub(crate) fn ivf(n: usize, probe: usize) -> Self {
        let clusters = ((n as f64).sqrt().round() as usize).max(1);
        Plan {
            block: QUERY_BLOCK,
            tile: REFERENCE_TILE,
            clusters,
            probe: Some(probe.max(1)),
            train_rows: Some(clusters * IVF_TRAIN_PER_CLUSTER),
        }
    }
}

/// Rows sampled a cluster to fit the inverted file's centres (FAISS advises 30 to 256).
const IVF_TRAIN_PER_CLUSTER: usize = 64;

/// What the inverted-file search did: the partitions it searched a query, and the recall@k
/// it measured for that setting against the exact search on `sample` seeded rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IvfReport {
    pub clusters: usize,
    pub probe: usize,
    pub recall: f64,
    pub sample: usize,
}

/// Queries whose exact neighbours the inverted file's recall is measured against: at a
/// recall near 0.95 the standard error of its estimate is about 0.003 (benches/RESULTS.md).
pub(crate) const RECALL_SAMPLE: usize = 1024;
pub(crate) const RECALL_SEED: u64 = 0x7265_6361_6c6c;
/// The one-sided 95 % normal quantile: the probe chosen is the fewest partitions whose
/// sampled recall, less this many standard errors, still reaches the recall asked for.
const RECALL_Z: f64 = 1.645;

/// The seeded rows (ascending) whose exact neighbours measure an inverted file's recall.
pub(crate) fn recall_sample(n: usize) -> Vec<u32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(RECALL_SEED);
    let mut sample = rand::seq::index::sample(&mut rng, n, RECALL_SAMPLE.min(n)).into_vec();
    sample.sort_unstable();
    sample.into_iter().map(|r| r as u32).collect()
}

/// For each sampled query (rows of `queries`) and each of its exact neighbours, the rank of
/// the neighbour's partition (`parts`, `k` a query, `u32::MAX` for an empty place) among the
/// query's partitions ordered by centre distance, nearest first (ties to the lower
/// partition): the search with `p` partitions a query finds exactly the neighbours whose rank
/// is below `p`. An empty place has rank `u32::MAX`.
pub(crate) fn neighbour_ranks(
    centres: &[f32],
    centre_norms: &[f32],
    queries: &[f32],
    d: usize,
    parts: &[u32],
    k: usize,
) -> Vec<u32> {
    let m = queries.len().checked_div(d).unwrap_or(0);
    let clusters = centre_norms.len();
    let mut dots = vec![0f32; m * clusters];
    products(&mut dots, queries, centres, m, clusters, d, true);
    dots.par_chunks(clusters.max(1))
        .zip(parts.par_chunks(k.max(1)))
        .flat_map_iter(|(dots, parts)| {
            let key = |c: usize| (centre_norms[c] - 2.0 * dots[c], c);
            parts.iter().map(move |&a| {
                if a as usize >= clusters {
                    return u32::MAX;
                }
                let own = key(a as usize);
                (0..clusters)
                    .filter(|&c| {
                        let other = key(c);
                        other.0.total_cmp(&own.0).then(other.1.cmp(&own.1)).is_lt()
                    })
                    .count() as u32
            })
        })
        .collect()
}

/// The fewest partitions a query, at least `least`, at which the sampled queries' mean
/// recall less [`RECALL_Z`] standard errors reaches `min_recall`, from the ranks of
/// [`neighbour_ranks`]; every partition when none does. A query with no neighbour counts
/// as recalled.
pub(crate) fn probe_for(
    ranks: &[u32],
    k: usize,
    least: usize,
    clusters: usize,
    min_recall: f64,
) -> usize {
    let least = least.clamp(1, clusters.max(1));
    if min_recall <= 0.0 || ranks.is_empty() {
        return least;
    }
    let queries: Vec<&[u32]> = ranks.chunks(k.max(1)).collect();
    let m = queries.len() as f64;
    // Each probe at which some neighbour is first found, in order: the recall only changes
    // there.
    let mut steps: Vec<usize> = ranks
        .iter()
        .filter(|&&r| r != u32::MAX)
        .map(|&r| r as usize + 1)
        .filter(|&p| p > least)
        .collect();
    steps.sort_unstable();
    steps.dedup();
    for p in std::iter::once(least).chain(steps) {
        let recalls: Vec<f64> = queries
            .iter()
            .map(|q| {
                let held = q.iter().filter(|&&r| r != u32::MAX).count();
                let found = q.iter().filter(|&&r| (r as usize) < p).count();
                if held == 0 {
                    1.0
                } else {
                    found as f64 / held as f64
                }
            })
            .collect();
        let mean = recalls.iter().sum::<f64>() / m;
        let variance = if m > 1.0 {
            recalls.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (m - 1.0)
        } else {
            0.0
        };
        if mean - RECALL_Z * (variance / m).sqrt() >= min_recall {
            return p;
        }
    }
    clusters.max(least)
}

/// Approximate neighbours by the inverted-file search ([`Plan::ivf`]) on the CPU: each row's
/// k nearest other rows among those in the partitions whose centres are nearest to it. The
/// recall is measured, not assumed: [`RECALL_SAMPLE`] seeded rows are searched exactly, and
/// the partitions searched a query are the fewest, at least `probe`, whose sampled recall@k
/// reaches `min_recall` with 95 % confidence ([`probe_for`]; every partition, which is the
/// exact search, when none does). The recall reported is the one the search at that probe
/// gives on the sample. The same layout as [`neighbours`]; a place no row filled is
/// `u32::MAX`.
pub fn ivf_neighbours(
    matrix: &Tensor,
    k: usize,
    probe: usize,
    min_recall: f64,
) -> Result<(Vec<u32>, Option<IvfReport>), EmbedError> {
    let n = matrix.dim(0).context("k-NN")?;
    if k == 0 || n <= k {
        return Ok((Vec::new(), None));
    }
    let op = IvfOp {
        k,
        probe,
        min_recall,
        report: std::sync::Mutex::new(None),
    };
    let nn = matrix
        .to_device(&candle_core::Device::Cpu)
        .and_then(|x| prepared(&x))
        .and_then(|x| x.apply_op1_no_bwd(&op))
        .and_then(|nn| nn.flatten_all())
        .and_then(|nn| nn.to_vec1::<u32>())
        .context("k-NN")?;
    let report = op.report.lock().ok().and_then(|r| *r);
    Ok((nn, report))
}

/// [`ivf_neighbours`] on a row-major slice.
pub(crate) fn ivf_search(
    values: &[f32],
    n: usize,
    d: usize,
    k: usize,
    probe: usize,
    min_recall: f64,
) -> (Vec<u32>, IvfReport) {
    let plan = Plan::ivf(n, probe);
    let index = Index::new(values, n, d, &plan);
    let clusters = index.parts.len();
    let sample = recall_sample(n);
    let (exact, _) = index.search(k, &plan, None, Some(&sample));
    let mut part_of = vec![u32::MAX; n];
    for (c, members) in index.parts.members.iter().enumerate() {
        for &j in members {
            part_of[j as usize] = c as u32;
        }
    }
    let parts: Vec<u32> = exact
        .iter()
        .map(|&j| part_of.get(j as usize).copied().unwrap_or(u32::MAX))
        .collect();
    drop(part_of);
    let queries: Vec<f32> = sample
        .iter()
        .flat_map(|&q| values[q as usize * d..(q as usize + 1) * d].iter().copied())
        .collect();
    let ranks = neighbour_ranks(
        &index.parts.centres,
        &index.parts.centre_norms,
        &queries,
        d,
        &parts,
        k,
    );
    let probe = probe_for(&ranks, k, probe, clusters, min_recall);
    let (approx, _) = index.search(k, &plan, Some(probe), Some(&sample));
    let recall = recall_of(&exact, &approx, k);
    let (nn, _) = index.search(k, &plan, Some(probe), None);
    let report = IvfReport {
        clusters,
        probe,
        recall,
        sample: sample.len(),
    };
    (nn, report)
}

/// Share of the exact lists' entries that the approximate lists hold (`k` a query).
pub(crate) fn recall_of(exact: &[u32], approx: &[u32], k: usize) -> f64 {
    if exact.is_empty() {
        return 1.0;
    }
    let hits: usize = exact
        .chunks(k)
        .zip(approx.chunks(k))
        .map(|(e, a)| e.iter().filter(|j| a.contains(j)).count())
        .sum();
    hits as f64 / exact.len() as f64
}

/// The inverted-file search as a candle op, so it reads the matrix in place (at 20M x 64 a
/// copy is 5 GB); what it did is left in `report`.
#[derive(Debug)]
struct IvfOp {
    k: usize,
    probe: usize,
    min_recall: f64,
    report: std::sync::Mutex<Option<IvfReport>>,
}

impl candle_core::CustomOp1 for IvfOp {
    fn name(&self) -> &'static str {
        "knn-ivf"
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let (values, n, d) = rows(storage, layout)?;
        let (out, report) = ivf_search(values, n, d, self.k, self.probe, self.min_recall);
        if let Ok(mut slot) = self.report.lock() {
            *slot = Some(report);
        }
        Ok((candle_core::CpuStorage::U32(out), (n, self.k).into()))
    }
}
