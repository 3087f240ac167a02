//! The exact neighbour search behind deep k-NN: blocks of queries against tiles of rows, one
//! matrix product per pair (the gemm crate on the CPU, cuBLAS on CUDA), each query's k
//! smallest `|x|^2 - 2 q.x` kept in a running top-k. The `n x n` matrix never exists.

use candle_core::{DType, Tensor};
use rayon::prelude::*;

use crate::embed::{CandleContext, EmbedError};

/// Indices (`n x k`, row-major, nearest first) of each row's k nearest other rows, by
/// Euclidean distance; ties are broken by the lower index. `k` must be below the row count.
///
/// Queries go in blocks of [`QUERY_BLOCK`] rows against tiles of [`REFERENCE_TILE`] rows:
/// one matrix product per (block, tile) pair, whose products are scanned at once into each
/// query's running top-k. Tiling both sides keeps the products small whatever `n` is and
/// reuses each operand's packing over thousands of rows. On two cores at 200,000 x 128 the
/// search took 443 s with 41-query blocks against every row, 350 s with 32 MiB tiles, 141 s
/// with 16 MiB tiles read in place and 95-120 s with 8 MiB tiles (benches/RESULTS.md).
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
        let (n, d) = layout.shape().dims2()?;
        let Some((a, b)) = layout.contiguous_offsets() else {
            candle_core::bail!("knn: the matrix must be contiguous");
        };
        let values = &storage.as_slice::<f32>()?[a..b];
        let out = search(values, n, d, self.k, QUERY_BLOCK, REFERENCE_TILE);
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

/// The CPU reference: each row's k nearest other rows of the row-major `n x d` `values`.
/// `k` must be below `n`.
pub(crate) fn search(
    values: &[f32],
    n: usize,
    d: usize,
    k: usize,
    block: usize,
    tile: usize,
) -> Vec<u32> {
    // Squared norms from the values in place: `x.sqr()` would hold a second n x d matrix.
    let mut norms = vec![0f32; n];
    if d > 0 {
        norms
            .par_iter_mut()
            .zip(values.par_chunks(d))
            .for_each(|(norm, row)| *norm = row.iter().map(|v| v * v).sum());
    }
    let mut out = vec![0u32; n * k];
    // One products buffer for every (block, tile) pair: a fresh 8 MiB allocation each time
    // costs page zeroing (benches/RESULTS.md).
    let mut products = vec![0f32; block.min(n) * tile.min(n)];
    for qs in (0..n).step_by(block) {
        let ql = block.min(n - qs);
        let mut tops: Vec<Top> = (0..ql).map(|i| Top::new(k, qs + i)).collect();
        for rs in (0..n).step_by(tile) {
            let rl = tile.min(n - rs);
            let products = &mut products[..ql * rl];
            if d == 0 {
                products.fill(0.0);
            } else {
                // SAFETY: `products` is ql x rl, row-major (column stride 1, row stride rl);
                // the queries are rows qs.. of `values` (ql x d, row stride d); the right-hand
                // side is rows rs.. read as a d x rl matrix (row stride 1, column stride d).
                // Every index stays inside the slices.
                unsafe {
                    gemm::gemm(
                        ql,
                        rl,
                        d,
                        products.as_mut_ptr(),
                        1,
                        rl as isize,
                        false,
                        values[qs * d..].as_ptr(),
                        1,
                        d as isize,
                        values[rs * d..].as_ptr(),
                        d as isize,
                        1,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::Rayon(rayon::current_num_threads()),
                    );
                }
            }
            tops.par_iter_mut()
                .zip(products.par_chunks(rl))
                .for_each(|(top, row)| top.scan(row, &norms[rs..rs + rl], rs));
        }
        out[qs * k..(qs + ql) * k]
            .par_chunks_mut(k)
            .zip(tops.par_iter())
            .for_each(|(best, top)| {
                for (b, &(_, j)) in best.iter_mut().zip(&top.items) {
                    *b = j;
                }
            });
    }
    out
}

/// The most neighbours the CUDA kernel keeps per query (`KNN_MAX_K` in kernels/knn.cu).
pub const GPU_MAX_K: usize = 64;

/// Rows per chunk when a whole-matrix temporary would cost memory.
const CHUNK_ROWS: usize = 16384;

/// Queries per block of the exact search.
const QUERY_BLOCK: usize = 1024;
/// Reference rows per tile: with [`QUERY_BLOCK`], 8 MiB of f32 products at a time. At 32 MiB
/// glibc's allocator maps and unmaps every product afresh, and zeroing those pages took more
/// time than the arithmetic (benches/RESULTS.md).
const REFERENCE_TILE: usize = 2048;

/// One query's k nearest rows so far: a sorted list of (distance less the query's own norm,
/// row), kept at k entries (k is small, so insertion beats a heap). The query's own norm is the
/// same for every candidate, so it is left out of the comparison.
struct Top {
    query: usize,
    k: usize,
    items: Vec<(f32, u32)>,
    /// The k-th distance once the list is full; a candidate must beat it.
    worst: f32,
}

impl Top {
    fn new(k: usize, query: usize) -> Self {
        Top {
            query,
            k,
            items: Vec::with_capacity(k + 1),
            worst: f32::INFINITY,
        }
    }

    /// Takes in the rows `offset..offset + products.len()`, given the query's dot products
    /// with them and their squared norms. Rows are seen in ascending order, so an equal
    /// distance never displaces an earlier row.
    fn scan(&mut self, products: &[f32], norms: &[f32], offset: usize) {
        // Almost every candidate loses to the k-th distance: test 16 at a time with a
        // branch-free minimum (vectorised) and look closer only when one can win.
        const LANES: usize = 16;
        let mut distances = [0f32; LANES];
        for (c, (g, norm)) in products.chunks(LANES).zip(norms.chunks(LANES)).enumerate() {
            let lanes = g.len();
            for ((d, &g), &norm) in distances.iter_mut().zip(g).zip(norm) {
                *d = norm - 2.0 * g;
            }
            let least = distances[..lanes]
                .iter()
                .fold(f32::INFINITY, |m, &d| m.min(d));
            if least >= self.worst {
                continue;
            }
            for (l, &d) in distances[..lanes].iter().enumerate() {
                let j = offset + c * LANES + l;
                if d >= self.worst || j == self.query {
                    continue;
                }
                let at = self.items.partition_point(|&(e, _)| e <= d);
                self.items.insert(at, (d, j as u32));
                self.items.truncate(self.k);
                if self.items.len() == self.k {
                    self.worst = self.items[self.k - 1].0;
                }
            }
        }
    }
}
