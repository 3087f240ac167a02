//! The CUDA side of the project's candle ops (built with the `cuda` feature): host code that
//! launches the kernels of `kernels/*.cu`, compiled to PTX by build.rs and loaded once per
//! device by candle.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::cublas::sys::cublasOperation_t;
use candle_core::cuda_backend::cudarc::cublas::{Gemm, GemmConfig};
use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::WrapErr;
use candle_core::{CudaStorage, Layout, Result, Shape};

use crate::detect::exact::GPU_MAX_K as KNN_MAX_K;

const KNN_PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/knn.ptx"));
const KNN_MODULE: &str = "poisongate_knn";

/// Queries per block and rows per tile: 8192 x 16384 f32 products are 512 MiB, and each
/// tile's product is a 137 GFLOP cuBLAS call at d = 512, long enough to run near peak.
const QUERY_BLOCK: usize = 8192;
const REFERENCE_TILE: usize = 16384;
const THREADS: u32 = 256;

/// A launch with one warp per row.
fn warp_per_row(rows: usize) -> LaunchConfig {
    let warps = THREADS as usize / 32;
    LaunchConfig {
        grid_dim: (rows.div_ceil(warps) as u32, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn dim(name: &str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| {
        candle_core::Error::Msg(format!(
            "knn: {name} = {v} is too large for the CUDA kernels"
        ))
    })
}

/// Exact k nearest neighbours of every row of a contiguous `n x d` f32 matrix, itself
/// excluded: `n x k` u32 row indices, nearest first, ties broken by the lower row.
pub fn knn(storage: &CudaStorage, layout: &Layout, k: usize) -> Result<(CudaStorage, Shape)> {
    knn_tiled(storage, layout, k, QUERY_BLOCK, REFERENCE_TILE)
}

fn knn_tiled(
    storage: &CudaStorage,
    layout: &Layout,
    k: usize,
    block: usize,
    tile: usize,
) -> Result<(CudaStorage, Shape)> {
    let (n, d) = layout.shape().dims2()?;
    if k == 0 || k >= n {
        candle_core::bail!("knn: k = {k} needs 0 < k < n = {n}");
    }
    if k > KNN_MAX_K {
        candle_core::bail!(
            "knn: k = {k}, but the CUDA search keeps at most {KNN_MAX_K} neighbours"
        );
    }
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("knn: the matrix must be contiguous");
    };
    let dev = storage.device().clone();
    let x = storage.as_cuda_slice::<f32>()?.slice(start..end);
    let (n32, d32, k32) = (dim("n", n)?, dim("d", d)?, dim("k", k)?);

    let mut norms = dev.alloc_zeros::<f32>(n)?;
    let func = dev.get_or_load_custom_func("row_norms", KNN_MODULE, KNN_PTX)?;
    let mut b = func.builder();
    b.arg(&x).arg(&n32).arg(&d32).arg(&mut norms);
    // SAFETY: row_norms(x: n x d, n, d, norms: n) reads and writes inside those sizes.
    unsafe { b.launch(warp_per_row(n)) }.w()?;

    let block = block.min(n);
    let tile = tile.min(n);
    // Zeroed, so that d = 0 (no product to compute) leaves all-zero products.
    let mut products = dev.alloc_zeros::<f32>(block * tile)?;
    let mut best_d = dev.alloc_zeros::<f32>(block * k)?;
    let mut out = dev.alloc_zeros::<u32>(n * k)?;
    let reset = dev.get_or_load_custom_func("knn_reset", KNN_MODULE, KNN_PTX)?;
    let topk = dev.get_or_load_custom_func("knn_topk_tile", KNN_MODULE, KNN_PTX)?;
    let blas = dev.cublas_handle();
    for qs in (0..n).step_by(block) {
        let ql = block.min(n - qs);
        let (qs32, ql32) = (dim("row", qs)?, dim("block", ql)?);
        let places = ql * k;
        let places32 = dim("places", places)?;
        let mut best_i = out.slice_mut(qs * k..(qs + ql) * k);
        let mut b = reset.builder();
        b.arg(&mut best_d).arg(&mut best_i).arg(&places32);
        // SAFETY: knn_reset writes the first `places` entries of best_d and best_i, which
        // hold at least that many.
        unsafe { b.launch(LaunchConfig::for_num_elems(places as u32)) }.w()?;
        for rs in (0..n).step_by(tile) {
            let rl = tile.min(n - rs);
            let (rs32, rl32) = (dim("row", rs)?, dim("tile", rl)?);
            if d > 0 {
                // Row-major products (ql x rl) are the column-major rl x ql matrix
                // R Q^T, where the row-major tile R (rl x d) is read as a transposed
                // column-major d x rl matrix and the queries likewise.
                let cfg = GemmConfig {
                    transa: cublasOperation_t::CUBLAS_OP_T,
                    transb: cublasOperation_t::CUBLAS_OP_N,
                    m: rl32,
                    n: ql32,
                    k: d32,
                    alpha: 1.0f32,
                    lda: d32,
                    ldb: d32,
                    beta: 0.0f32,
                    ldc: rl32,
                };
                let r = x.slice(rs * d..(rs + rl) * d);
                let q = x.slice(qs * d..(qs + ql) * d);
                // SAFETY: the operands and the product hold exactly the sizes cfg names.
                let mut out = products.slice_mut(..ql * rl);
                unsafe { blas.gemm(cfg, &r, &q, &mut out) }.w()?;
            }
            let tile_products = products.slice(..ql * rl);
            let mut b = topk.builder();
            b.arg(&tile_products)
                .arg(&norms)
                .arg(&ql32)
                .arg(&rl32)
                .arg(&qs32)
                .arg(&rs32)
                .arg(&k32)
                .arg(&mut best_d)
                .arg(&mut best_i);
            // SAFETY: knn_topk_tile reads ql x rl products and n norms, and writes ql x k
            // places of best_d and best_i, all inside their allocations.
            unsafe { b.launch(warp_per_row(ql)) }.w()?;
        }
    }
    Ok((CudaStorage::wrap_cuda_slice(out, dev), (n, k).into()))
}

#[cfg(test)]
mod tests {
    //! The CUDA search against the CPU reference. They skip, saying so, where no GPU answers.
    //!
    //! Tolerance: cuBLAS and the CPU gemm add the d products in different orders, so a float32
    //! squared distance may differ by about d x 2^-24 x (|q|^2 + |x|^2). Where two candidates
    //! are that close, the two searches may order them differently. So each row's k distances
    //! (recomputed in f64 from the returned rows) must agree within 1e-4 x (|q|^2 + max |x|^2),
    //! and at least 99 % of the returned rows must be the same rows.
    use super::*;
    use candle_core::{CustomOp1, Device, Tensor};
    use rand::{Rng, SeedableRng};

    struct Tiled {
        k: usize,
        block: usize,
        tile: usize,
    }

    impl CustomOp1 for Tiled {
        fn name(&self) -> &'static str {
            "knn-tiled-test"
        }
        fn cpu_fwd(
            &self,
            _: &candle_core::CpuStorage,
            _: &Layout,
        ) -> Result<(candle_core::CpuStorage, Shape)> {
            candle_core::bail!("the test op runs on CUDA only")
        }
        fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
            knn_tiled(s, l, self.k, self.block, self.tile)
        }
    }

    fn check(
        values: &[f32],
        n: usize,
        d: usize,
        k: usize,
        block: usize,
        tile: usize,
        gpu: &Device,
    ) {
        let x = crate::detect::exact::prepared(&Tensor::from_slice(values, (n, d), gpu).unwrap())
            .unwrap();
        // The reference searches the same (possibly centred) values.
        let values: &[f32] = &x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let got: Vec<u32> = x
            .apply_op1_no_bwd(&Tiled { k, block, tile })
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let want = crate::detect::exact::search(values, n, d, k);
        let dist = |i: usize, j: u32| -> f64 {
            (0..d)
                .map(|t| (values[i * d + t] as f64 - values[j as usize * d + t] as f64).powi(2))
                .sum()
        };
        let norm = |i: usize| -> f64 { (0..d).map(|t| (values[i * d + t] as f64).powi(2)).sum() };
        let max_norm = (0..n).map(norm).fold(0.0, f64::max);
        let mut same = 0;
        for i in 0..n {
            let tol = 1e-4 * (norm(i) + max_norm) + 1e-12;
            for r in 0..k {
                let (g, w) = (got[i * k + r], want[i * k + r]);
                assert_ne!(g as usize, i, "row {i} is its own neighbour");
                assert!(
                    (dist(i, g) - dist(i, w)).abs() <= tol,
                    "n={n} d={d} k={k} row {i} place {r}: gpu row {g} at {}, cpu row {w} at {}",
                    dist(i, g),
                    dist(i, w)
                );
                same += usize::from(g == w);
            }
        }
        assert!(
            same * 100 >= 99 * n * k,
            "n={n} d={d} k={k}: only {same} of {} rows agree",
            n * k
        );
    }

    #[test]
    fn cuda_knn_matches_the_cpu_reference() {
        let Some(gpu) = crate::device::test_gpu() else {
            return;
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(21);
        // (n, d, k, block, tile): tiles that do not divide n, d = 1, k = n - 1, k at the
        // kernel's limit, the default tiles.
        for (n, d, k, block, tile) in [
            (1000, 7, 10, 300, 257),
            (777, 1, 5, 128, 100),
            (64, 3, 63, 64, 64),
            (2000, 33, 64, 1000, 999),
            (20_000, 128, 10, QUERY_BLOCK, REFERENCE_TILE),
        ] {
            let values: Vec<f32> = (0..n * d).map(|_| rng.random_range(-1.0..1.0)).collect();
            check(&values, n, d, k, block, tile, &gpu);
        }
    }

    #[test]
    fn cuda_knn_holds_with_large_norms() {
        let Some(gpu) = crate::device::test_gpu() else {
            return;
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(22);
        let (n, d) = (1500, 64);
        let values: Vec<f32> = (0..n * d)
            .map(|_| 1.0e3 + 10.0 * rng.random_range(-1.0f32..1.0))
            .collect();
        check(&values, n, d, 10, 512, 700, &gpu);
    }

    #[test]
    fn cuda_knn_refuses_more_than_it_can_keep() {
        let Some(gpu) = crate::device::test_gpu() else {
            return;
        };
        let x = Tensor::zeros((100, 2), candle_core::DType::F32, &gpu).unwrap();
        let err = x
            .apply_op1_no_bwd(&crate::detect::exact::KnnOp { k: KNN_MAX_K + 1 })
            .unwrap_err();
        assert!(err.to_string().contains("at most 64"), "{err}");
    }
}
