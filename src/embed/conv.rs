//! The probe's 3x3 convolution (padding 1, stride 1) with its bias on the CPU, forward and
//! backward, as a candle `CustomOp` (so autograd and the optimiser are unchanged; on other
//! devices the probe keeps candle's `conv2d`): im2col and one matrix product (the `gemm`
//! crate) per image. candle's CPU backend runs a direct tiled convolution forward and a
//! transposed convolution for the input gradient, which left the probe at about 1 % of the
//! machine's FP32 peak (benches/RESULTS.md). Checked against candle's `conv2d` and its
//! gradients in the tests below.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::cpu::{matmul, values, View};

/// Images per task of the weight gradient. Its partial sums are added in task order, so the
/// result does not depend on the number of threads.
const CHUNK: usize = 8;

/// `conv2d(x, weight, padding 1) + bias` for an f32 CPU tensor `x` (`n x c x h x w`),
/// `weight` (`o x c x 3 x 3`) and `bias` (`o`), with gradients for all three.
pub fn conv3x3(x: &Tensor, weight: &Tensor, bias: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?
        .apply_op3(&weight.contiguous()?, &bias.contiguous()?, Conv3x3)
}

/// The sizes of one convolution: `n` images of `c x h x w` in, `o` channels out.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
}

impl Geometry {
    fn new(x: &Shape, weight: &Shape) -> candle_core::Result<Self> {
        let (n, c, h, w) = x.dims4()?;
        let (o, wc, kh, kw) = weight.dims4()?;
        if wc != c || (kh, kw) != (3, 3) || c == 0 || o == 0 || h == 0 || w == 0 {
            candle_core::bail!("conv3x3: input {x:?} and weight {weight:?} do not fit");
        }
        Ok(Geometry { n, c, h, w, o })
    }

    fn hw(&self) -> usize {
        self.h * self.w
    }

    /// Rows of an image's column matrix: one per input channel and kernel tap.
    fn taps(&self) -> usize {
        self.c * 9
    }

    /// Lays image `x` (`c x h x w`) out as `col` (`c*9 x h*w`): row `(ch, ky, kx)` holds the
    /// input that tap meets at every output pixel, zero in the padding.
    fn im2col(&self, x: &[f32], col: &mut [f32]) {
        let (h, w, hw) = (self.h, self.w, self.hw());
        for (ch, plane) in x.chunks_exact(hw).enumerate() {
            for ky in 0..3 {
                for kx in 0..3 {
                    let row = &mut col[(ch * 9 + ky * 3 + kx) * hw..][..hw];
                    for (y, out) in row.chunks_exact_mut(w).enumerate() {
                        let Some(sy) = (y + ky).checked_sub(1).filter(|&sy| sy < h) else {
                            out.fill(0.0);
                            continue;
                        };
                        let src = &plane[sy * w..(sy + 1) * w];
                        match kx {
                            0 => {
                                out[0] = 0.0;
                                out[1..].copy_from_slice(&src[..w - 1]);
                            }
                            1 => out.copy_from_slice(src),
                            _ => {
                                out[..w - 1].copy_from_slice(&src[1..]);
                                out[w - 1] = 0.0;
                            }
                        }
                    }
                }
            }
        }
    }

    /// The adjoint of [`Geometry::im2col`]: adds each entry of `col` back to the input pixel
    /// it was read from (`dx` is `c x h x w`).
    fn col2im(&self, col: &[f32], dx: &mut [f32]) {
        let (h, w, hw) = (self.h, self.w, self.hw());
        for (ch, plane) in dx.chunks_exact_mut(hw).enumerate() {
            for ky in 0..3 {
                for kx in 0..3 {
                    let row = &col[(ch * 9 + ky * 3 + kx) * hw..][..hw];
                    for (y, src) in row.chunks_exact(w).enumerate() {
                        let Some(sy) = (y + ky).checked_sub(1).filter(|&sy| sy < h) else {
                            continue;
                        };
                        let dst = &mut plane[sy * w..(sy + 1) * w];
                        let (dst, src) = match kx {
                            0 => (&mut dst[..w - 1], &src[1..]),
                            1 => (dst, src),
                            _ => (&mut dst[1..], &src[..w - 1]),
                        };
                        dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                    }
                }
            }
        }
    }
}

/// The convolution with its bias: `(x, weight, bias) -> n x o x h x w`.
struct Conv3x3;

impl CustomOp3 for Conv3x3 {
    fn name(&self) -> &'static str {
        "conv3x3"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = Geometry::new(l1.shape(), l2.shape())?;
        let (x, weight, bias) = (
            values(s1, l1, self.name())?,
            values(s2, l2, self.name())?,
            values(s3, l3, self.name())?,
        );
        if bias.len() != g.o {
            candle_core::bail!("conv3x3: {} biases for {} channels", bias.len(), g.o);
        }
        let (hw, taps) = (g.hw(), g.taps());
        let mut out = vec![0f32; g.n * g.o * hw];
        out.par_chunks_mut(g.o * hw)
            .zip(x.par_chunks(g.c * hw))
            .for_each_init(
                || vec![0f32; taps * hw],
                |col, (out, x)| {
                    g.im2col(x, col);
                    for (row, &b) in out.chunks_exact_mut(hw).zip(bias) {
                        row.fill(b);
                    }
                    let lhs = View(weight, taps, 1);
                    matmul(out, true, lhs, View(col, hw, 1), g.o, hw, taps);
                },
            );
        Ok((CpuStorage::F32(out), Shape::from((g.n, g.o, g.h, g.w))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        // The first layer's input is the data, which needs no gradient.
        let dx = if x.track_op() {
            Some(grad.apply_op2_no_bwd(weight, &GradInput)?)
        } else {
            None
        };
        let params = x.apply_op2_no_bwd(&grad, &GradParams)?;
        let (o, weights) = (bias.elem_count(), weight.elem_count());
        let dw = params.narrow(0, 0, weights)?.reshape(weight.shape())?;
        let db = params.narrow(0, weights, o)?;
        Ok((dx, Some(dw), Some(db)))
    }
}

/// The input gradient: `(grad, weight) -> n x c x h x w`, each image's `weight^T * grad`
/// folded back by [`Geometry::col2im`].
struct GradInput;

impl CustomOp2 for GradInput {
    fn name(&self) -> &'static str {
        "conv3x3-grad-input"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, o, h, w) = l1.shape().dims4()?;
        let c = l2.shape().dims4()?.1;
        let g = Geometry::new(&Shape::from((n, c, h, w)), l2.shape())?;
        if g.o != o {
            candle_core::bail!("conv3x3-grad-input: {o} gradient channels, weight {:?}", l2);
        }
        let (grad, weight) = (values(s1, l1, self.name())?, values(s2, l2, self.name())?);
        let (hw, taps) = (g.hw(), g.taps());
        let mut dx = vec![0f32; n * c * hw];
        dx.par_chunks_mut(c * hw)
            .zip(grad.par_chunks(o * hw))
            .for_each_init(
                || vec![0f32; taps * hw],
                |col, (dx, grad)| {
                    // weight^T: taps x o, read from the o x taps weight.
                    matmul(
                        col,
                        false,
                        View(weight, 1, taps),
                        View(grad, hw, 1),
                        taps,
                        hw,
                        o,
                    );
                    g.col2im(col, dx);
                },
            );
        Ok((CpuStorage::F32(dx), Shape::from((n, c, h, w))))
    }
}

/// The parameter gradients: `(x, grad) -> o*c*9 + o` values, the weight gradient (`o x c*9`,
/// summed over images of `grad * im2col(x)^T`) and then the bias gradient.
struct GradParams;

impl CustomOp2 for GradParams {
    fn name(&self) -> &'static str {
        "conv3x3-grad-params"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = l1.shape().dims4()?;
        let (gn, o, gh, gw) = l2.shape().dims4()?;
        if (gn, gh, gw) != (n, h, w) {
            candle_core::bail!("conv3x3-grad-params: input {l1:?}, gradient {l2:?}");
        }
        let g = Geometry::new(l1.shape(), &Shape::from((o, c, 3, 3)))?;
        let (x, grad) = (values(s1, l1, self.name())?, values(s2, l2, self.name())?);
        let (hw, taps) = (g.hw(), g.taps());
        let size = o * taps + o;
        let partials: Vec<Vec<f32>> = x
            .par_chunks(CHUNK * c * hw)
            .zip(grad.par_chunks(CHUNK * o * hw))
            .map(|(x, grad)| {
                let mut sums = vec![0f32; size];
                let mut col = vec![0f32; taps * hw];
                for (x, grad) in x.chunks_exact(c * hw).zip(grad.chunks_exact(o * hw)) {
                    g.im2col(x, &mut col);
                    let (dw, db) = sums.split_at_mut(o * taps);
                    // im2col(x)^T: hw x taps, read from the taps x hw columns.
                    matmul(dw, true, View(grad, hw, 1), View(&col, 1, hw), o, taps, hw);
                    for (b, row) in db.iter_mut().zip(grad.chunks_exact(hw)) {
                        *b += row.iter().sum::<f32>();
                    }
                }
                sums
            })
            .collect();
        let mut total = vec![0f32; size];
        for part in partials {
            total.iter_mut().zip(part).for_each(|(t, p)| *t += p);
        }
        Ok((CpuStorage::F32(total), Shape::from(size)))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};
    use rand::{Rng, SeedableRng};

    use super::*;

    fn random(shape: &[usize], rng: &mut rand::rngs::StdRng) -> Tensor {
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        assert_eq!(a.dims(), b.dims());
        let (a, b) = (
            a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            b.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    /// Forward values and the gradients of all three inputs against candle's `conv2d`, on
    /// odd sizes (including a one-pixel-wide image) and more images than one chunk.
    #[test]
    fn matches_candles_convolution_and_its_gradients() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for (n, c, h, w, o) in [(19, 3, 7, 5, 6), (2, 1, 4, 1, 3), (9, 16, 14, 14, 32)] {
            let x = Var::from_tensor(&random(&[n, c, h, w], &mut rng)).unwrap();
            let weight = Var::from_tensor(&random(&[o, c, 3, 3], &mut rng)).unwrap();
            let bias = Var::from_tensor(&random(&[o], &mut rng)).unwrap();
            let probe = random(&[n, o, h, w], &mut rng);
            let ours = conv3x3(&x, &weight, &bias).unwrap();
            let theirs = x
                .conv2d(&weight, 1, 1, 1, 1)
                .and_then(|y| y.broadcast_add(&bias.reshape((1, o, 1, 1))?))
                .unwrap();
            assert!(max_diff(&ours, &theirs) < 1e-4, "forward {n}x{c}x{h}x{w}");
            let g1 = (&ours * &probe)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let g2 = (&theirs * &probe)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            for (name, v) in [("input", &x), ("weight", &weight), ("bias", &bias)] {
                let (a, b) = (g1.get(v).unwrap(), g2.get(v).unwrap());
                assert!(max_diff(a, b) < 1e-3, "{name} gradient, {n}x{c}x{h}x{w}");
            }
        }
    }

    #[test]
    fn the_data_gets_no_gradient_and_the_result_is_repeatable() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let x = random(&[20, 2, 6, 6], &mut rng);
        let weight = Var::from_tensor(&random(&[4, 2, 3, 3], &mut rng)).unwrap();
        let bias = Var::from_tensor(&random(&[4], &mut rng)).unwrap();
        let run = || {
            let grads = conv3x3(&x, &weight, &bias)
                .and_then(|y| y.sqr()?.sum_all())
                .and_then(|l| l.backward())
                .unwrap();
            assert!(grads.get(&x).is_none());
            grads
                .get(&weight)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn mismatched_shapes_are_errors() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let x = random(&[1, 2, 4, 4], &mut rng);
        let bias = random(&[4], &mut rng);
        assert!(conv3x3(&x, &random(&[4, 3, 3, 3], &mut rng), &bias).is_err());
        assert!(conv3x3(&x, &random(&[4, 2, 5, 5], &mut rng), &bias).is_err());
        assert!(conv3x3(&x, &random(&[5, 2, 3, 3], &mut rng), &bias).is_err());
    }
}
