//! The exact neighbour search behind deep k-NN: blocks of queries against tiles of rows, one
//! matrix product per pair (the gemm crate on the CPU, cuBLAS on CUDA), each query's k
//! smallest `|x|^2 - 2 q.x` kept in a running top-k. The `n x n` matrix never exists. On the
//! CPU, clusters of rows that cannot hold a query's neighbours are skipped (triangle
//! inequality), which changes the work and never the answer.

use candle_core::{DType, Tensor};
use rayon::prelude::*;

use super::partition::{products, row_norms, Partition};

mod ivf;
mod top;
use crate::embed::{CandleContext, EmbedError};
#[cfg(test)]
pub(crate) use ivf::ivf_search;
pub use ivf::{ivf_neighbours, IvfReport};
pub(crate) use ivf::{neighbour_ranks, probe_for, recall_of, recall_sample};
pub(crate) use top::{offer_tiles, Top};

/// Indices (`n x k`, row-major, nearest first) of each row's k nearest other rows, by
/// Euclidean distance; ties are broken by the lower index. `k` must be below the row count.
///
/// On the CPU ([`search_with`]) queries go in blocks of one k-means cluster against tiles of
/// the clusters their distance bounds cannot rule out, one matrix product per (block, tile)
/// pair. On two cores at 200,000 x 128 the search took 443 s with 41-query blocks against every
/// row, 95-120 s with shared-thread products over every pair, 62 s with one product per rayon
/// task, and 7 s when the rows form ten separate groups and most clusters are skipped
/// (benches/RESULTS.md).
pub fn neighbours(matrix: &Tensor, k: usize) -> Result<Vec<u32>, EmbedError> {
    let n = matrix.dim(0).context("k-NN")?;
    if k == 0 || n <= k {
        return Ok(Vec::new());
    }
    // The CUDA kernel keeps at most GPU_MAX_K places per query; a larger k is searched on
    // the CPU.
    let on_cpu;
    let matrix = if !matrix.device().is_cpu() && k > GPU_MAX_K {
        on_cpu = matrix
            .to_device(&candle_core::Device::Cpu)
            .context("k-NN")?;
        &on_cpu
    } else {
        matrix
    };
    prepared(matrix)
        .and_then(|x| x.apply_op1_no_bwd(&KnnOp { k }))
        .and_then(|nn| nn.flatten_all())
        .and_then(|nn| nn.to_vec1::<u32>())
        .context("k-NN")
}

/// The matrix the search runs on: f32, contiguous, and centred when its rows sit far from the
/// origin compared with their spread (squared norm of the mean above the mean squared distance
/// to it). Distances do not change, but `|x|^2 - 2 q.x` in f32 loses about `d x 2^-24 x |x|^2`
/// to cancellation, which at large norms is more than the gaps between neighbours. Data that
/// is already about centred (standardised features) is not copied.
pub(crate) fn prepared(matrix: &Tensor) -> candle_core::Result<Tensor> {
    let x = matrix.to_dtype(DType::F32)?.contiguous()?;
    if x.dim(0)? == 0 || x.dim(1)? == 0 {
        return Ok(x);
    }
    let mean = x.mean_keepdim(0)?;
    let offset = mean.sqr()?.sum_all()?.to_scalar::<f32>()?;
    // The mean squared distance to the mean is the mean squared norm less the mean's own.
    // In chunks of rows: `x.sqr()` at once would hold a second n x d matrix.
    let n = x.dim(0)?;
    let mut squares = 0f64;
    for start in (0..n).step_by(CHUNK_ROWS) {
        let chunk = x.narrow(0, start, CHUNK_ROWS.min(n - start))?;
        squares += chunk.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
    }
    let spread = (squares / n as f64) as f32 - offset;
    if offset > spread.max(0.0) {
        x.broadcast_sub(&mean)?.contiguous()
    } else {
        Ok(x)
    }
}

/// A contiguous `n x d` f32 matrix's values, with n and d.
fn rows<'a>(
    storage: &'a candle_core::CpuStorage,
    layout: &candle_core::Layout,
) -> candle_core::Result<(&'a [f32], usize, usize)> {
    let (n, d) = layout.shape().dims2()?;
    let Some((a, b)) = layout.contiguous_offsets() else {
        candle_core::bail!("knn: the matrix must be contiguous");
    };
    Ok((&storage.as_slice::<f32>()?[a..b], n, d))
}

/// The exact search as a candle op on an `n x d` f32 matrix, giving `n x k` u32 indices:
/// `cpu_fwd` is the reference ([`search`]), `cuda_fwd` the kernels in `kernels/knn.cu`.
#[derive(Debug, Clone, Copy)]
pub struct KnnOp {
    pub k: usize,
}

impl candle_core::CustomOp1 for KnnOp {
    fn name(&self) -> &'static str {
        "knn"
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let (values, n, d) = rows(storage, layout)?;
        let out = search(values, n, d, self.k);
        Ok((candle_core::CpuStorage::U32(out), (n, self.k).into()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        storage: &candle_core::CudaStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, candle_core::Shape)> {
        crate::cuda::knn(storage, layout, self.k)
    }
}

/// The CPU search: each row's k nearest other rows of the row-major `n x d` `values`, with
/// the default plan. `k` must be below `n`.
pub(crate) fn search(values: &[f32], n: usize, d: usize, k: usize) -> Vec<u32> {
    search_with(values, n, d, k, &Plan::for_rows(n)).0
}

/// How [`search_with`] cuts the work: queries per block, reference rows per tile, and the
/// number of clusters the rows are partitioned into for pruning (1: every pair is computed).
/// With `probe`, the search is approximate (an inverted-file search): each query looks only in
/// the `probe` clusters whose centres are nearest to it. With `train_rows`, the partition's
/// centres are fitted on that many sampled rows and every row is then assigned once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub block: usize,
    pub tile: usize,
    pub clusters: usize,
    pub probe: Option<usize>,
    pub train_rows: Option<usize>,
}

impl Plan {
    /// One cluster per [`CLUSTER_ROWS`] rows.
    pub(crate) fn for_rows(n: usize) -> Self {
        Plan {
            block: QUERY_BLOCK,
            tile: REFERENCE_TILE,
            clusters: (n / CLUSTER_ROWS).max(1),
            probe: None,
            train_rows: None,
        }
    }
}

/// The exact search with pruning. The rows are partitioned by k-means into clusters, each with
/// a centre `c` and a radius `r` (its farthest member). By the triangle inequality no member of
/// a cluster is nearer to a query `q` than `|q - c| - r`. Queries go a block of one cluster at
/// a time; the clusters are visited nearest bound first, and a cluster is only compared with
/// the queries whose bound does not exceed their k-th distance so far (less a margin for f32
/// rounding). Which rows are pruned never changes the answer, only the work: on rows that
/// fall into well-separated groups (a network's embeddings of a labelled set) most pairs are
/// skipped; on structureless rows the search computes every pair as before.
///
/// Returns the neighbours and the number of (query, row) distances computed.
pub(crate) fn search_with(
    values: &[f32],
    n: usize,
    d: usize,
    k: usize,
    plan: &Plan,
) -> (Vec<u32>, u64) {
    Index::new(values, n, d, plan).search(k, plan, plan.probe, None)
}

/// The rows with their norms and partition, searched once or many times (the inverted file
/// measures its recall on sampled queries before the full search).
struct Index<'a> {
    values: &'a [f32],
    n: usize,
    d: usize,
    norms: Vec<f32>,
    parts: Partition,
    /// An upper bound on every row's squared norm, for the rounding margin.
    max_norm: f32,
}

impl<'a> Index<'a> {
    fn new(values: &'a [f32], n: usize, d: usize, plan: &Plan) -> Self {
        let norms = if d == 0 {
            vec![0.0; n]
        } else {
            row_norms(values, d)
        };
        let parts = Partition::new(values, n, d, plan.clusters, plan.train_rows);
        let max_norm = norms.iter().fold(0f32, |m, &v| m.max(v));
        Index {
            values,
            n,
            d,
            norms,
            parts,
            max_norm,
        }
    }

    /// The k nearest other rows of every row, or of the rows `only` (ascending) in their
    /// order, searching `probe` partitions a query (all: exact). Also the number of (query,
    /// row) distances computed.
    fn search(
        &self,
        k: usize,
        plan: &Plan,
        probe: Option<usize>,
        only: Option<&[u32]>,
    ) -> (Vec<u32>, u64) {
        let wanted: Option<Vec<bool>> = only.map(|rows| {
            let mut wanted = vec![false; self.n];
            for &r in rows {
                wanted[r as usize] = true;
            }
            wanted
        });
        let queries: Vec<Vec<u32>> = match &wanted {
            None => Vec::new(),
            Some(w) => self
                .parts
                .members
                .iter()
                .map(|m| m.iter().copied().filter(|&r| w[r as usize]).collect())
                .collect(),
        };
        let work: Vec<&[u32]> = match &wanted {
            None => self
                .parts
                .members
                .iter()
                .flat_map(|m| m.chunks(plan.block.max(1)))
                .collect(),
            Some(_) => queries
                .iter()
                .flat_map(|m| m.chunks(plan.block.max(1)))
                .collect(),
        };
        let context = Context {
            values: self.values,
            d: self.d,
            k,
            probe,
            tile: plan.tile.max(1),
            norms: &self.norms,
            parts: &self.parts,
            max_norm: self.max_norm,
        };
        let results: Vec<(Vec<u32>, u64)> = work
            .par_iter()
            .map_init(Scratch::default, |scratch, queries| {
                context.block(queries, scratch)
            })
            .collect();
        // Where each query's list goes: its row, or its place in `only`.
        let place: Box<dyn Fn(u32) -> usize> = match only {
            None => Box::new(|q| q as usize),
            Some(rows) => Box::new(move |q| rows.binary_search(&q).unwrap_or(0)),
        };
        let mut out = vec![0u32; only.map_or(self.n, <[u32]>::len) * k];
        let mut pairs = 0u64;
        for (queries, (nearest, computed)) in work.iter().zip(results) {
            pairs += computed;
            for (&q, found) in queries.iter().zip(nearest.chunks(k)) {
                let at = place(q);
                out[at * k..(at + 1) * k].copy_from_slice(found);
            }
        }
        (out, pairs)
    }
}

/// What every block of queries reads.
struct Context<'a> {
    values: &'a [f32],
    d: usize,
    k: usize,
    probe: Option<usize>,
    tile: usize,
    norms: &'a [f32],
    parts: &'a Partition,
    max_norm: f32,
}

/// One rayon task's buffers, reused from block to block.
#[derive(Default)]
struct Scratch {
    queries: Vec<f32>,
    subset: Vec<f32>,
    rows: Vec<f32>,
    row_norms: Vec<f32>,
    products: Vec<f32>,
}

impl Context<'_> {
    fn row(&self, i: u32) -> &[f32] {
        &self.values[i as usize * self.d..(i as usize + 1) * self.d]
    }

    /// The k nearest rows of each of `queries` (all members of one cluster), and the number of
    /// distances computed.
    fn block(&self, queries: &[u32], scratch: &mut Scratch) -> (Vec<u32>, u64) {
        let (d, k, parts) = (self.d, self.k, self.parts);
        let ql = queries.len();
        let clusters = parts.len();
        scratch.queries.clear();
        for &q in queries {
            scratch.queries.extend_from_slice(self.row(q));
        }
        let query_norms: Vec<f32> = queries.iter().map(|&q| self.norms[q as usize]).collect();
        // f32 rounding: a computed squared distance is within about `d u (|q|^2 + |x|^2)` of
        // the true one (u = 2^-24); the margin is four times that.
        let rounding = 4.0 * (d.max(1) as f32) * f32::EPSILON / 2.0;
        let margins: Vec<f32> = query_norms
            .iter()
            .map(|&qn| rounding * (qn + self.max_norm) + f32::MIN_POSITIVE)
            .collect();
        // Lower bounds on the distance from each query to each cluster's members.
        let mut bounds = vec![0f32; ql * clusters];
        products(
            &mut bounds,
            &scratch.queries,
            &parts.centres,
            ql,
            clusters,
            d,
            false,
        );
        // The inverted file: each query's `probe` nearest centres (squared distance, then
        // index) are the only clusters it looks in; `allowed` is the farthest of them.
        let allowed: Vec<(f32, usize)> = match self.probe {
            Some(probe) if probe < clusters => bounds
                .chunks(clusters)
                .zip(&query_norms)
                .map(|(dots, &qn)| {
                    let mut near: Vec<(f32, usize)> = dots
                        .iter()
                        .zip(&parts.centre_norms)
                        .enumerate()
                        .filter(|(c, _)| !parts.members[*c].is_empty())
                        .map(|(c, (&dot, &cn))| (qn + cn - 2.0 * dot, c))
                        .collect();
                    let last = probe.min(near.len()).saturating_sub(1);
                    near.select_nth_unstable_by(last, |a, b| {
                        a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
                    });
                    near.get(last)
                        .copied()
                        .unwrap_or((f32::INFINITY, usize::MAX))
                })
                .collect(),
            _ => vec![(f32::INFINITY, usize::MAX); ql],
        };
        let centre_distance = |dot: f32, qn: f32, c: usize| qn + parts.centre_norms[c] - 2.0 * dot;
        let mut visits = vec![true; ql * clusters];
        if self.probe.is_some() {
            for (i, (dots, &qn)) in bounds.chunks(clusters).zip(&query_norms).enumerate() {
                for (c, &dot) in dots.iter().enumerate() {
                    let key = (centre_distance(dot, qn, c), c);
                    visits[i * clusters + c] = key
                        .0
                        .total_cmp(&allowed[i].0)
                        .then(key.1.cmp(&allowed[i].1))
                        .is_le();
                }
            }
        }
        for (row, (&qn, &margin)) in bounds
            .chunks_mut(clusters)
            .zip(query_norms.iter().zip(&margins))
        {
            for (b, (&cn, &r)) in row
                .iter_mut()
                .zip(parts.centre_norms.iter().zip(&parts.radii))
            {
                let squared = (qn + cn - 2.0 * *b - margin).max(0.0);
                *b = (squared.sqrt() - r).max(0.0);
            }
        }
        let nearest_bound: Vec<f32> = (0..clusters)
            .map(|c| {
                (0..ql)
                    .filter(|&i| visits[i * clusters + c])
                    .map(|i| bounds[i * clusters + c])
                    .fold(f32::INFINITY, f32::min)
            })
            .collect();
        let mut order: Vec<usize> = (0..clusters)
            .filter(|&c| !parts.members[c].is_empty() && nearest_bound[c].is_finite())
            .collect();
        order.sort_by(|&a, &b| {
            nearest_bound[a]
                .total_cmp(&nearest_bound[b])
                .then(a.cmp(&b))
        });

        let mut tops: Vec<Top> = queries.iter().map(|&q| Top::new(k, q as usize)).collect();
        let mut pairs = 0u64;
        let mut needed = Vec::with_capacity(ql);
        for c in order {
            // The squared distance a row must beat for each query, with the margin.
            let reach = |i: usize| tops[i].kth(query_norms[i]) + margins[i];
            let widest = (0..ql).map(reach).fold(0f32, f32::max);
            if nearest_bound[c] * nearest_bound[c] > widest {
                // Clusters come nearest bound first: no later one can reach any query.
                break;
            }
            needed.clear();
            needed.extend((0..ql).filter(|&i| {
                let b = bounds[i * clusters + c];
                visits[i * clusters + c] && b * b <= reach(i)
            }));
            if needed.is_empty() {
                continue;
            }
            let queries_here: &[f32] = if needed.len() == ql {
                &scratch.queries
            } else {
                scratch.subset.clear();
                for &i in &needed {
                    scratch
                        .subset
                        .extend_from_slice(&scratch.queries[i * d..(i + 1) * d]);
                }
                &scratch.subset
            };
            for ids in parts.members[c].chunks(self.tile) {
                let rl = ids.len();
                scratch.rows.clear();
                scratch.row_norms.clear();
                for &j in ids {
                    scratch.rows.extend_from_slice(self.row(j));
                    scratch.row_norms.push(self.norms[j as usize]);
                }
                scratch.products.resize(needed.len() * rl, 0.0);
                products(
                    &mut scratch.products,
                    queries_here,
                    &scratch.rows,
                    needed.len(),
                    rl,
                    d,
                    false,
                );
                for (&i, dots) in needed.iter().zip(scratch.products.chunks(rl)) {
                    tops[i].scan(dots, &scratch.row_norms, ids);
                }
                pairs += (needed.len() * rl) as u64;
            }
        }
        let mut out = Vec::with_capacity(ql * k);
        for top in &tops {
            // Only the inverted file can leave places empty (too few rows in the partitions
            // a query searched): they cast no vote.
            out.extend(top.list());
        }
        (out, pairs)
    }
}

/// The most neighbours the CUDA kernel keeps per query (`KNN_MAX_K` in kernels/knn.cu).
pub const GPU_MAX_K: usize = 64;

/// Rows per chunk when a whole-matrix temporary would cost memory.
const CHUNK_ROWS: usize = 16384;

/// Rows per cluster of the pruning partition ([`Plan::for_rows`]).
const CLUSTER_ROWS: usize = 2048;
/// Queries per block of the exact search.
const QUERY_BLOCK: usize = 1024;
/// Reference rows per tile: with [`QUERY_BLOCK`], 8 MiB of f32 products at a time. At 32 MiB
/// glibc's allocator maps and unmaps every product afresh, and zeroing those pages took more
/// time than the arithmetic (benches/RESULTS.md).
const REFERENCE_TILE: usize = 2048;

#[cfg(test)]
pub(crate) mod tests;
