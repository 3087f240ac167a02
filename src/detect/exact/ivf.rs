//! The inverted-file search behind `--knn-index ivf`: the exact search's partition cut into
//! about `sqrt(n)` clusters, each query compared only with the rows of its nearest few, and
//! the recall of that measured against the exact search on sampled queries.

use candle_core::Tensor;
use rand::SeedableRng;

use super::{prepared, rows, Index, Plan, QUERY_BLOCK, REFERENCE_TILE};
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

/// Queries whose exact neighbours the inverted file's recall is measured against.
const RECALL_SAMPLE: usize = 256;
const RECALL_SEED: u64 = 0x7265_6361_6c6c;

/// Approximate neighbours by the inverted-file search ([`Plan::ivf`]) on the CPU: each row's
/// k nearest other rows among those in the partitions whose centres are nearest to it. The
/// recall is measured, not assumed: [`RECALL_SAMPLE`] seeded rows are searched exactly, and
/// starting from `probe` partitions the number searched doubles until the sample's recall@k
/// reaches `min_recall` (or every partition is searched, which is the exact search). The same
/// layout as [`neighbours`]; a place no row filled is `u32::MAX`.
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
    let mut rng = rand::rngs::StdRng::seed_from_u64(RECALL_SEED);
    let mut sample = rand::seq::index::sample(&mut rng, n, RECALL_SAMPLE.min(n)).into_vec();
    sample.sort_unstable();
    let sample: Vec<u32> = sample.into_iter().map(|r| r as u32).collect();
    let (exact, _) = index.search(k, &plan, None, Some(&sample));
    let mut probe = probe.max(1);
    let recall = loop {
        let (approx, _) = index.search(k, &plan, Some(probe), Some(&sample));
        let recall = recall_of(&exact, &approx, k);
        if recall >= min_recall || probe >= clusters {
            break recall;
        }
        probe = (probe * 2).min(clusters);
    };
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
