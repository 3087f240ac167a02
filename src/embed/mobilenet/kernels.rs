//! The two CPU kernels of the folded layers, each checked against candle's own ops: the bias
//! and ReLU6 of a convolution in place, and a direct 3x3 depthwise convolution with its bias
//! and ReLU6 in one loop.

use candle_core::{CpuStorage, CustomOp1, InplaceOp1, Layout, Shape};
use rayon::prelude::*;

/// Adds a bias per channel to an f32 NCHW CPU tensor and applies ReLU6 if asked, in place.
pub(super) struct BiasRelu6 {
    pub(super) bias: Vec<f32>,
    pub(super) relu6: bool,
}

impl BiasRelu6 {
    fn apply(&self, ch: usize, values: &mut [f32]) {
        let b = self.bias[ch];
        if self.relu6 {
            values
                .iter_mut()
                .for_each(|v| *v = (*v + b).clamp(0.0, 6.0));
        } else {
            values.iter_mut().for_each(|v| *v += b);
        }
    }
}

impl InplaceOp1 for BiasRelu6 {
    fn name(&self) -> &'static str {
        "bias-relu6"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let (_, c, h, w) = layout.shape().dims4()?;
        let (CpuStorage::F32(data), Some((start, end))) = (storage, layout.contiguous_offsets())
        else {
            candle_core::bail!("bias-relu6 needs a contiguous f32 tensor");
        };
        if c != self.bias.len() || h * w == 0 {
            candle_core::bail!(
                "bias-relu6: {c} channels of {h}x{w}, {} biases",
                self.bias.len()
            );
        }
        data[start..end]
            .par_chunks_mut(h * w)
            .enumerate()
            .for_each(|(i, plane)| self.apply(i % c, plane));
        Ok(())
    }
}

/// A 3x3 depthwise convolution with padding 1, then [`BiasRelu6`], on f32 NCHW CPU tensors:
/// each channel plane is one task, each output row a sum of nine shifted input rows. Tested
/// against candle's grouped convolution (`Conv2d` with `groups` = channels).
pub(super) struct Depthwise3x3 {
    /// `channels x 9`, row-major 3x3 per channel.
    pub(super) weight: Vec<f32>,
    pub(super) stride: usize,
    pub(super) bias_relu6: BiasRelu6,
}

impl CustomOp1 for Depthwise3x3 {
    fn name(&self) -> &'static str {
        "depthwise-conv3x3"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = layout.shape().dims4()?;
        let (CpuStorage::F32(data), Some((start, end))) = (storage, layout.contiguous_offsets())
        else {
            candle_core::bail!("depthwise-conv3x3 needs a contiguous f32 tensor");
        };
        if c != self.bias_relu6.bias.len() || c * 9 != self.weight.len() || h * w == 0 {
            candle_core::bail!(
                "depthwise-conv3x3: input {n}x{c}x{h}x{w}, {} weights",
                self.weight.len()
            );
        }
        let (ho, wo) = ((h - 1) / self.stride + 1, (w - 1) / self.stride + 1);
        let mut out = vec![0f32; n * c * ho * wo];
        out.par_chunks_mut(ho * wo)
            .zip(data[start..end].par_chunks(h * w))
            .enumerate()
            .for_each(|(i, (out, plane))| {
                self.plane(i % c, plane, w, out, wo);
                self.bias_relu6.apply(i % c, out);
            });
        Ok((CpuStorage::F32(out), Shape::from((n, c, ho, wo))))
    }
}

impl Depthwise3x3 {
    /// One output plane of channel `ch` from its `h x w` input `plane`, before the bias.
    fn plane(&self, ch: usize, plane: &[f32], w: usize, out: &mut [f32], wo: usize) {
        let s = self.stride;
        let h = plane.len() / w;
        for (oy, row) in out.chunks_mut(wo).enumerate() {
            for ky in 0..3 {
                // Input row oy * s + ky - 1, absent in the padding.
                let Some(iy) = (oy * s + ky).checked_sub(1).filter(|&iy| iy < h) else {
                    continue;
                };
                let input = &plane[iy * w..(iy + 1) * w];
                for kx in 0..3 {
                    let k = self.weight[ch * 9 + ky * 3 + kx];
                    // Outputs whose input column ox * s + kx - 1 lies in 0..w.
                    let first = usize::from(kx == 0);
                    let Some(last) = (w + 1).checked_sub(kx + 1).map(|m| (m / s).min(wo - 1))
                    else {
                        continue;
                    };
                    if first > last {
                        continue;
                    }
                    let columns = input[first * s + kx - 1..].iter().step_by(s);
                    for (o, x) in row[first..=last].iter_mut().zip(columns) {
                        *o += k * x;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};
    use candle_nn::{Conv2d, Conv2dConfig, Module};

    use super::*;
    use crate::embed::mobilenet::tests::max_abs_diff;

    #[test]
    fn depthwise_kernel_matches_candles_grouped_convolution() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut random =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-2.0f32..2.0)).collect() };
        let cpu = &Device::Cpu;
        // Even and odd sides, both strides, planes smaller than the kernel.
        for (n, c, h, w, stride, relu6) in [
            (2, 3, 7, 7, 1, true),
            (1, 4, 14, 14, 2, true),
            (3, 2, 5, 8, 2, false),
            (2, 3, 6, 9, 1, false),
            (1, 5, 1, 1, 1, true),
            (1, 2, 1, 3, 2, true),
            (1, 2, 2, 2, 2, false),
        ] {
            let (weight, bias) = (random(c * 9), random(c));
            let x = Tensor::from_vec(random(n * c * h * w), (n, c, h, w), cpu).unwrap();
            let op = Depthwise3x3 {
                weight: weight.clone(),
                stride,
                bias_relu6: BiasRelu6 {
                    bias: bias.clone(),
                    relu6,
                },
            };
            let fast = x.apply_op1_no_bwd(&op).unwrap();
            let config = Conv2dConfig {
                padding: 1,
                stride,
                groups: c,
                ..Default::default()
            };
            let conv = Conv2d::new(
                Tensor::from_vec(weight, (c, 1, 3, 3), cpu).unwrap(),
                Some(Tensor::from_vec(bias, c, cpu).unwrap()),
                config,
            );
            let mut slow = conv.forward(&x).unwrap();
            if relu6 {
                slow = slow.clamp(0f32, 6f32).unwrap();
            }
            assert_eq!(fast.dims(), slow.dims());
            // Ten terms below 4 in magnitude summed in another order: f32 rounding is ~1e-6.
            let diff = max_abs_diff(&fast, &slow);
            assert!(diff < 1e-5, "{n}x{c}x{h}x{w} stride {stride}: {diff}");
        }
    }

    #[test]
    fn bias_relu6_in_place_matches_candles_ops() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        let (n, c, h, w) = (2, 5, 3, 4);
        let values: Vec<f32> = (0..n * c * h * w)
            .map(|_| rng.random_range(-8.0..8.0))
            .collect();
        let bias: Vec<f32> = (0..c).map(|_| rng.random_range(-2.0..2.0)).collect();
        let b = Tensor::from_vec(bias.clone(), (1, c, 1, 1), &Device::Cpu).unwrap();
        for relu6 in [false, true] {
            let x = Tensor::from_vec(values.clone(), (n, c, h, w), &Device::Cpu).unwrap();
            let mut expected = x.broadcast_add(&b).unwrap();
            if relu6 {
                expected = expected.clamp(0f32, 6f32).unwrap();
            }
            let op = BiasRelu6 {
                bias: bias.clone(),
                relu6,
            };
            x.inplace_op1(&op).unwrap();
            // The same two f32 operations per value: equal, not close.
            assert_eq!(max_abs_diff(&x, &expected), 0.0, "relu6 {relu6}");
        }
    }
}
