//! The network's layers: a convolution with its batch norm (folded into it when the weights
//! are loaded, and then run on the CPU by the kernels of `kernels`) and ReLU6, and torchvision's
//! inverted residual block, each loaded from the state dict's names.

use candle_core::Tensor;
use candle_nn::{BatchNorm, Conv2d, Conv2dConfig, Module, ModuleT, VarBuilder};

use super::kernels::{BiasRelu6, Depthwise3x3};

const BN_EPS: f64 = 1e-5;

/// The shape of one convolution.
pub(super) struct Spec {
    pub(super) c_in: usize,
    pub(super) c_out: usize,
    pub(super) kernel: usize,
    pub(super) stride: usize,
    pub(super) groups: usize,
    pub(super) relu6: bool,
}

/// A convolution and its batch norm (folded into the convolution's weights and bias, or kept
/// apart), then ReLU6 or not.
pub(super) struct ConvBn {
    conv: Conv2d,
    bn: Option<BatchNorm>,
    relu6: bool,
    /// The folded layer's CPU kernels, when the weights are on the CPU.
    cpu: Option<CpuLayer>,
}

/// A folded layer on the CPU: candle's grouped convolution runs one small convolution per
/// channel (13.6 of the 15.7 s a batch of 16 took on two cores), and its bias and ReLU6 are
/// three more passes, each over a fresh tensor.
enum CpuLayer {
    /// A depthwise convolution, bias and ReLU6 in one loop.
    Depthwise(Depthwise3x3),
    /// candle's convolution, then the bias and ReLU6 in place.
    Dense(BiasRelu6),
}

impl ConvBn {
    pub(super) fn load(
        vb: &VarBuilder,
        conv: &str,
        bn: &str,
        spec: Spec,
        fold: bool,
    ) -> candle_core::Result<Self> {
        let config = Conv2dConfig {
            padding: spec.kernel / 2,
            stride: spec.stride,
            groups: spec.groups,
            ..Default::default()
        };
        let weights =
            candle_nn::conv2d_no_bias(spec.c_in, spec.c_out, spec.kernel, config, vb.pp(conv))?;
        let norm = candle_nn::batch_norm(spec.c_out, BN_EPS, vb.pp(bn))?;
        if !fold {
            return Ok(ConvBn {
                conv: weights,
                bn: Some(norm),
                relu6: spec.relu6,
                cpu: None,
            });
        }
        let conv = weights.absorb_bn(&norm)?;
        let cpu = match conv.bias() {
            Some(bias) if bias.device().is_cpu() => {
                let bias_relu6 = BiasRelu6 {
                    bias: bias.to_vec1()?,
                    relu6: spec.relu6,
                };
                let depthwise = spec.kernel == 3 && spec.groups == spec.c_in;
                Some(if depthwise && spec.c_in == spec.c_out {
                    CpuLayer::Depthwise(Depthwise3x3 {
                        weight: conv.weight().flatten_all()?.to_vec1()?,
                        stride: spec.stride,
                        bias_relu6,
                    })
                } else if spec.groups == 1 {
                    CpuLayer::Dense(bias_relu6)
                } else {
                    return Err(candle_core::Error::Msg(format!(
                        "no CPU kernel for a grouped {}x{} convolution",
                        spec.kernel, spec.kernel
                    )));
                })
            }
            _ => None,
        };
        Ok(ConvBn {
            conv,
            bn: None,
            relu6: spec.relu6,
            cpu,
        })
    }

    pub(super) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match &self.cpu {
            Some(CpuLayer::Depthwise(op)) => return x.contiguous()?.apply_op1_no_bwd(op),
            Some(CpuLayer::Dense(op)) => {
                let c = self.conv.config();
                let y = x.conv2d(
                    self.conv.weight(),
                    c.padding,
                    c.stride,
                    c.dilation,
                    c.groups,
                )?;
                y.inplace_op1(op)?;
                return Ok(y);
            }
            None => {}
        }
        let x = self.conv.forward(x)?;
        let x = match &self.bn {
            Some(bn) => bn.forward_t(&x, false)?,
            None => x,
        };
        if self.relu6 {
            x.clamp(0f32, 6f32)
        } else {
            Ok(x)
        }
    }
}

/// An inverted residual block, `features.{i}`: 1x1 expansion (absent when t = 1), 3x3
/// depthwise, 1x1 linear projection, and the input added back when the shape is kept.
pub(super) struct Block {
    expand: Option<ConvBn>,
    depthwise: ConvBn,
    project: ConvBn,
    residual: bool,
}

impl Block {
    pub(super) fn load(
        vb: &VarBuilder,
        i: usize,
        t: usize,
        c_in: usize,
        c_out: usize,
        stride: usize,
        fold: bool,
    ) -> candle_core::Result<Self> {
        let p = format!("features.{i}.conv");
        let hidden = c_in * t;
        let depthwise = |conv: &str, bn: &str| {
            let spec = Spec {
                c_in: hidden,
                c_out: hidden,
                kernel: 3,
                stride,
                groups: hidden,
                relu6: true,
            };
            ConvBn::load(vb, conv, bn, spec, fold)
        };
        let project = |conv: &str, bn: &str| {
            let spec = Spec {
                c_in: hidden,
                c_out,
                kernel: 1,
                stride: 1,
                groups: 1,
                relu6: false,
            };
            ConvBn::load(vb, conv, bn, spec, fold)
        };
        let (expand, depthwise, project) = if t == 1 {
            let depthwise = depthwise(&format!("{p}.0.0"), &format!("{p}.0.1"))?;
            (
                None,
                depthwise,
                project(&format!("{p}.1"), &format!("{p}.2"))?,
            )
        } else {
            let spec = Spec {
                c_in,
                c_out: hidden,
                kernel: 1,
                stride: 1,
                groups: 1,
                relu6: true,
            };
            let expand = ConvBn::load(vb, &format!("{p}.0.0"), &format!("{p}.0.1"), spec, fold)?;
            let depthwise = depthwise(&format!("{p}.1.0"), &format!("{p}.1.1"))?;
            (
                Some(expand),
                depthwise,
                project(&format!("{p}.2"), &format!("{p}.3"))?,
            )
        };
        Ok(Block {
            expand,
            depthwise,
            project,
            residual: stride == 1 && c_in == c_out,
        })
    }

    pub(super) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let h = match &self.expand {
            Some(expand) => expand.forward(x)?,
            None => x.clone(),
        };
        let h = self.project.forward(&self.depthwise.forward(&h)?)?;
        if self.residual {
            h + x
        } else {
            Ok(h)
        }
    }
}
