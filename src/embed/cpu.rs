//! Helpers of the project's CPU tensor ops (`conv`, `pool`, `bert`): a matrix product on
//! strided slices through the `gemm` crate, and the f32 slice behind a CPU tensor.

use candle_core::{CpuStorage, Layout};

/// A row-major matrix view for [`matmul`]: values, row stride and column stride.
pub(super) struct View<'a>(pub &'a [f32], pub usize, pub usize);

impl View<'_> {
    /// Panics unless every entry of a `rows x cols` matrix lies in the slice: the bound that
    /// makes the unsafe call in [`matmul`] sound.
    fn check(&self, rows: usize, cols: usize) {
        if rows > 0 && cols > 0 {
            assert!((rows - 1) * self.1 + (cols - 1) * self.2 < self.0.len());
        }
    }
}

/// `dst (m x n, row-major) = [dst +] lhs (m x k) * rhs (k x n)`, on the calling thread (the
/// callers are rayon tasks already).
pub(super) fn matmul(
    dst: &mut [f32],
    accumulate: bool,
    lhs: View,
    rhs: View,
    m: usize,
    n: usize,
    k: usize,
) {
    assert!(dst.len() >= m * n);
    lhs.check(m, k);
    rhs.check(k, n);
    if m == 0 || n == 0 || k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    // SAFETY: `dst` holds m x n values (row stride n, column stride 1), and the checks above
    // keep every entry of `lhs` (m x k) and `rhs` (k x n) at their strides inside the slices.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.0.as_ptr(),
            lhs.2 as isize,
            lhs.1 as isize,
            rhs.0.as_ptr(),
            rhs.2 as isize,
            rhs.1 as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// A contiguous f32 slice of a CPU tensor's storage.
pub(super) fn values<'a>(
    s: &'a CpuStorage,
    l: &Layout,
    op: &str,
) -> candle_core::Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((start, end))) => Ok(&v[start..end]),
        _ => candle_core::bail!("{op} needs contiguous f32 tensors"),
    }
}
