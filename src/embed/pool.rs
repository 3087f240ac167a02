//! ReLU and a 2x2 max-pool in one pass on the CPU, and its gradient in one more, as candle
//! `CustomOp`s for the probe. candle's own backward passes of the two take about a dozen
//! full-size tensor ops (masks, upsampling, products), each a pass over the largest
//! activations of the network, and its max-pool gradient is scaled (see the tests). Checked
//! against candle's values and against finite differences below.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::cpu::values;

/// `max_pool2d(relu(x), 2)` for an f32 CPU tensor `x` (`n x c x h x w`): `n x c x h/2 x w/2`
/// (rounded down, as candle's pool). Its gradient goes to the first largest input of each
/// window (row by row) when that input is positive; candle's splits it between exactly equal
/// maxima, which only differs on ties.
pub fn relu_max_pool2(x: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1(ReluMaxPool2)
}

/// The pooled sizes of an `n x c x h x w` input, refused when a side is under 2.
fn pooled(shape: &Shape) -> candle_core::Result<(usize, usize, usize, usize)> {
    let (n, c, h, w) = shape.dims4()?;
    if h < 2 || w < 2 {
        candle_core::bail!("relu-max-pool2: input {shape:?} has a side under 2");
    }
    Ok((n * c, h, w, (h / 2) * (w / 2)))
}

/// The offset in its `h x w` plane of the first largest input of window `(y, x)`, and that
/// input.
fn window_max(plane: &[f32], w: usize, y: usize, x: usize) -> (usize, f32) {
    let top = 2 * y * w + 2 * x;
    [top, top + 1, top + w, top + w + 1]
        .into_iter()
        .fold((top, plane[top]), |best, i| {
            if plane[i] > best.1 {
                (i, plane[i])
            } else {
                best
            }
        })
}

struct ReluMaxPool2;

impl CustomOp1 for ReluMaxPool2 {
    fn name(&self) -> &'static str {
        "relu-max-pool2"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (planes, h, w, per) = pooled(l.shape())?;
        let x = values(s, l, self.name())?;
        let (oh, ow) = (h / 2, w / 2);
        let mut out = vec![0f32; planes * per];
        out.par_chunks_mut(per)
            .zip(x.par_chunks(h * w))
            .with_min_len(16)
            .for_each(|(out, plane)| {
                for (y, row) in out.chunks_exact_mut(ow).enumerate() {
                    for (x, o) in row.iter_mut().enumerate() {
                        *o = window_max(plane, w, y, x).1.max(0.0);
                    }
                }
            });
        let (n, c, _, _) = l.shape().dims4()?;
        Ok((CpuStorage::F32(out), Shape::from((n, c, oh, ow))))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(
            &grad.contiguous()?,
            &ReluMaxPool2Grad,
        )?))
    }
}

/// The gradient of [`ReluMaxPool2`]: `(x, grad) -> dx`, each window's gradient on its first
/// largest input when that is positive, zero elsewhere.
struct ReluMaxPool2Grad;

impl CustomOp2 for ReluMaxPool2Grad {
    fn name(&self) -> &'static str {
        "relu-max-pool2-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (planes, h, w, per) = pooled(l1.shape())?;
        if l2.shape().elem_count() != planes * per {
            candle_core::bail!("relu-max-pool2-grad: input {l1:?}, gradient {l2:?}");
        }
        let (x, grad) = (values(s1, l1, self.name())?, values(s2, l2, self.name())?);
        let ow = w / 2;
        let mut dx = vec![0f32; planes * h * w];
        dx.par_chunks_mut(h * w)
            .zip(x.par_chunks(h * w).zip(grad.par_chunks(per)))
            .with_min_len(16)
            .for_each(|(dx, (plane, grad))| {
                for (y, row) in grad.chunks_exact(ow).enumerate() {
                    for (x, &g) in row.iter().enumerate() {
                        let (at, v) = window_max(plane, w, y, x);
                        if v > 0.0 {
                            dx[at] = g;
                        }
                    }
                }
            });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
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

    /// ReLU and the pool against candle's `relu` and `max_pool2d` (values), and the gradient
    /// against central finite differences (exact here: the function is linear around inputs
    /// without ties or zeros), on even and odd sizes (an odd side's last row or column is
    /// dropped). candle's own max-pool gradient is not the reference: it scales each window's
    /// gradient by the share of the window at the maximum (1/4 for one maximum).
    #[test]
    fn relu_max_pool_matches_candles_values_and_finite_differences() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(12);
        for (n, c, h, w) in [(3, 4, 8, 6), (2, 3, 7, 5), (1, 2, 3, 3)] {
            let x = Var::from_tensor(&random(&[n, c, h, w], &mut rng)).unwrap();
            let probe = random(&[n, c, h / 2, w / 2], &mut rng);
            let ours = relu_max_pool2(&x).unwrap();
            let theirs = x.relu().and_then(|r| r.max_pool2d(2)).unwrap();
            assert_eq!(max_diff(&ours, &theirs), 0.0, "forward {n}x{c}x{h}x{w}");
            let grads = (&ours * &probe)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let grad = grads
                .get(&x)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let values = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let f = |v: &[f32]| -> f64 {
                let t = Tensor::from_slice(v, (n, c, h, w), &Device::Cpu).unwrap();
                let y = relu_max_pool2(&t).unwrap();
                let p = probe.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let y = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                y.iter().zip(&p).map(|(a, b)| *a as f64 * *b as f64).sum()
            };
            let eps = 1e-3f32;
            for i in 0..values.len() {
                let (mut up, mut down) = (values.clone(), values.clone());
                up[i] += eps;
                down[i] -= eps;
                let numeric = (f(&up) - f(&down)) / (2.0 * eps as f64);
                assert!(
                    (numeric - grad[i] as f64).abs() < 1e-3,
                    "{n}x{c}x{h}x{w} input {i}: gradient {}, finite difference {numeric}",
                    grad[i]
                );
            }
        }
        assert!(relu_max_pool2(&random(&[1, 1, 1, 4], &mut rng)).is_err());
    }

    /// What the note above says of candle's max-pool gradient (kept so that a candle release
    /// that changes it shows up here).
    #[test]
    fn candles_max_pool_gradient_is_scaled_by_the_share_at_the_maximum() {
        let x = Var::from_slice(&[1f32, 2.0, 3.0, 4.0], (1, 1, 2, 2), &Device::Cpu).unwrap();
        let grads = x
            .max_pool2d(2)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g = grads
            .get(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(g, [0.0, 0.0, 0.0, 0.25]);
        let ours = relu_max_pool2(&x)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g = ours
            .get(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(g, [0.0, 0.0, 0.0, 1.0]);
    }
}
