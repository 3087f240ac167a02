//! The `probe` view: a small network trained on the dataset itself (seeded), whose penultimate
//! activations are returned. Tabular data (and images too small for two 2x2 pools) get an MLP,
//! images a two-block CNN, after average pooling to at most 32 px a side. Spectral signatures and activation clustering were designed for exactly this
//! representation: a model trained on the possibly poisoned labels.
//!
//! Tabular inputs are scaled as in the raw view. Weights are drawn from a seeded generator (PyTorch's default uniform bounds, 1/sqrt(fan_in))
//! so that the same seed gives the same embedding.

use candle_core::{DType, Device, Module, Tensor, Var, D};
use candle_nn::{Linear, Optimizer};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::{conv, pool, raw, CandleContext, EmbedError, Embedding, Subset, View};
use crate::dataset::{Images, Payload};
use crate::progress::Progress;

/// Training steps the default epoch count aims for.
const TARGET_STEPS: usize = 800;
/// Images are average-pooled so that neither side exceeds this before the CNN.
const MAX_CNN_SIDE: usize = 32;
const BATCH: usize = 64;

/// The probe's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ProbeNet {
    /// Images: the CNN where the pooled image is at least 8 px a side, else the MLP; tables and
    /// text: the MLP.
    #[default]
    Auto,
    /// The two-block CNN (images only).
    Cnn,
    /// The MLP (images: on the pixels, average-pooled to at most 32 px a side as for the CNN).
    Mlp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProbeConfig {
    /// `None`: enough epochs for about 800 steps, between 3 and 30.
    pub epochs: Option<usize>,
    pub net: ProbeNet,
    /// Width of the penultimate layer (the embedding dimension).
    pub width: usize,
    pub learning_rate: f64,
    pub seed: u64,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            epochs: None,
            net: ProbeNet::Auto,
            width: 64,
            learning_rate: 1e-3,
            seed: 0,
        }
    }
}

/// What the report says about the probe's training.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainingSummary {
    pub architecture: String,
    pub parameters: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub seed: u64,
    /// Mean training loss and accuracy of each epoch.
    pub loss: Vec<f32>,
    pub accuracy: Vec<f32>,
}

enum Net {
    Mlp {
        hidden: Linear,
        features: Linear,
    },
    Cnn {
        pool: usize,
        c1: Conv,
        c2: Conv,
        features: Linear,
    },
}

struct Probe {
    net: Net,
    head: Linear,
    vars: Vec<Var>,
}

struct Init {
    rng: StdRng,
    vars: Vec<Var>,
    device: Device,
}

impl Init {
    /// A tensor with values uniform in ±1/sqrt(fan_in), registered for training.
    fn uniform(&mut self, shape: &[usize], fan_in: usize) -> Result<Tensor, EmbedError> {
        let bound = 1.0 / (fan_in as f32).sqrt();
        let n = shape.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|_| self.rng.random_range(-bound..bound))
            .collect();
        let t = Tensor::from_vec(data, shape, &self.device).context("probe initialisation")?;
        let var = Var::from_tensor(&t).context("probe initialisation")?;
        let t = var.as_tensor().clone();
        self.vars.push(var);
        Ok(t)
    }

    fn linear(&mut self, inputs: usize, outputs: usize) -> Result<Linear, EmbedError> {
        let w = self.uniform(&[outputs, inputs], inputs)?;
        let b = self.uniform(&[outputs], inputs)?;
        Ok(Linear::new(w, Some(b)))
    }

    fn conv(&mut self, inputs: usize, outputs: usize) -> Result<Conv, EmbedError> {
        let fan_in = inputs * 9;
        let weight = self.uniform(&[outputs, inputs, 3, 3], fan_in)?;
        let bias = self.uniform(&[outputs], fan_in)?;
        Ok(Conv { weight, bias })
    }
}

/// A 3x3 convolution with padding 1 and a bias: im2col and GEMM on the CPU ([`conv`]),
/// candle's `conv2d` elsewhere.
struct Conv {
    weight: Tensor,
    bias: Tensor,
}

impl Conv {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if x.device().is_cpu() {
            conv::conv3x3(x, &self.weight, &self.bias)
        } else {
            let bias = self.bias.reshape((1, (), 1, 1))?;
            x.conv2d(&self.weight, 1, 1, 1, 1)?.broadcast_add(&bias)
        }
    }
}

/// ReLU, then a 2x2 max-pool: one fused op with its gradient on the CPU ([`pool`]). Elsewhere
/// the pool is a maximum over reshaped windows rather than candle's `max_pool2d`, whose
/// gradient is scaled by the share of the window at the maximum (see [`pool`]'s tests).
fn relu_pool(x: &Tensor) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() {
        pool::relu_max_pool2(x)
    } else {
        relu_pool_reshaped(x)
    }
}

/// [`relu_pool`] from candle's ops (any device).
fn relu_pool_reshaped(x: &Tensor) -> candle_core::Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (oh, ow) = (h / 2, w / 2);
    x.relu()?
        .narrow(2, 0, 2 * oh)?
        .narrow(3, 0, 2 * ow)?
        .contiguous()?
        .reshape((n, c, oh, 2, ow, 2))?
        .max(5)?
        .max(3)
}

impl Probe {
    fn features(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match &self.net {
            Net::Mlp { hidden, features } => features.forward(&hidden.forward(x)?.relu()?)?.relu(),
            Net::Cnn {
                pool,
                c1,
                c2,
                features,
            } => {
                let x = if *pool > 1 {
                    x.avg_pool2d(*pool)?
                } else {
                    x.clone()
                };
                let x = relu_pool(&c1.forward(&x)?)?;
                let x = relu_pool(&c2.forward(&x)?)?;
                features.forward(&x.flatten_from(1)?)?.relu()
            }
        }
    }

    fn parameters(&self) -> usize {
        self.vars.iter().map(|v| v.elem_count()).sum()
    }
}

/// Inputs as a tensor (tabular: standardised `m x d`; images: `m x c x h x w` in [0, 1]) and
/// the network that fits them.
fn build(
    payload: &Payload,
    text_features: Option<&Tensor>,
    subset: &Subset,
    config: &ProbeConfig,
    device: &Device,
) -> Result<(Tensor, Probe, String), EmbedError> {
    let mut init = Init {
        rng: StdRng::seed_from_u64(config.seed),
        vars: Vec::new(),
        device: device.clone(),
    };
    if config.net == ProbeNet::Cnn && !matches!(payload, Payload::Images(_)) {
        return Err(EmbedError::Text(
            "--probe-net cnn needs an image payload; tables and text take the MLP (auto or mlp)"
                .into(),
        ));
    }
    let (input, net, architecture) = match payload {
        Payload::Spilled(_) | Payload::SpilledImages(_) => return Err(EmbedError::OnDisk("probe")),
        Payload::Table(t) => {
            let x = Tensor::from_vec(
                raw::scaled(t, &subset.rows),
                (subset.len(), t.dim()),
                device,
            )
            .context("probe input")?;
            mlp(x, t.dim(), config.width, &mut init)?
        }
        Payload::Images(img) if config.net != ProbeNet::Mlp && cnn_pool(img).is_some() => {
            cnn(img, subset, config.width, &mut init)?
        }
        Payload::Images(img) if config.net == ProbeNet::Cnn => {
            return Err(EmbedError::Text(format!(
                "--probe-net cnn needs images of at least 8 px a side after pooling to at most \
                 {MAX_CNN_SIDE} px; these are {}x{} (use --probe-net mlp or auto)",
                img.width, img.height
            )))
        }
        Payload::Images(img) => {
            let (pixels, per) = pooled_pixels(img, subset);
            let x = Tensor::from_vec(pixels, (subset.len(), per), device).context("probe input")?;
            mlp(x, per, config.width, &mut init)?
        }
        Payload::Text(_) => match text_features {
            // An MLP on the sentence embeddings: the model trained on the (possibly
            // poisoned) labels, over a representation that was not.
            Some(x) => {
                let d = x.dim(1).context("probe input")?;
                mlp(x.clone(), d, config.width, &mut init)?
            }
            None => return Err(EmbedError::Unsupported("probe")),
        },
    };
    let head = init.linear(config.width, subset.n_classes)?;
    let probe = Probe {
        net,
        head,
        vars: init.vars,
    };
    Ok((input, probe, architecture))
}

fn mlp(
    x: Tensor,
    d: usize,
    width: usize,
    init: &mut Init,
) -> Result<(Tensor, Net, String), EmbedError> {
    let net = Net::Mlp {
        hidden: init.linear(d, width)?,
        features: init.linear(width, width)?,
    };
    Ok((x, net, format!("mlp {d}-{width}-{width}")))
}

/// The subset's images in [0, 1], average-pooled by the CNN's factor (so that neither side
/// exceeds [`MAX_CNN_SIDE`]; a partial window at the edge is dropped, as `avg_pool2d` does),
/// one row of `c x h' x w'` values (channel last) per image, and that row length.
fn pooled_pixels(img: &Images, subset: &Subset) -> (Vec<f32>, usize) {
    let (w, h, c) = (
        img.width as usize,
        img.height as usize,
        img.channels as usize,
    );
    let pool = w.max(h).div_ceil(MAX_CNN_SIDE).max(1);
    let (ph, pw) = (h / pool, w / pool);
    let per = ph * pw * c;
    let scale = 1.0 / (255.0 * (pool * pool) as f32);
    let mut out = Vec::with_capacity(subset.len() * per);
    for &r in &subset.rows {
        let image = img.image(r as usize);
        for y in 0..ph {
            for x in 0..pw {
                for ch in 0..c {
                    let mut sum = 0u32;
                    for dy in 0..pool {
                        for dx in 0..pool {
                            sum += image[((y * pool + dy) * w + x * pool + dx) * c + ch] as u32;
                        }
                    }
                    out.push(sum as f32 * scale);
                }
            }
        }
    }
    (out, per)
}

/// The input pooling factor for the CNN, or `None` if the pooled image would be under 8 px
/// on a side (two 2x2 max-pools need at least 4, and 8 leaves some spatial structure).
fn cnn_pool(img: &Images) -> Option<usize> {
    let (w, h) = (img.width as usize, img.height as usize);
    let pool = w.max(h).div_ceil(MAX_CNN_SIDE);
    (w.min(h) / pool >= 8).then_some(pool)
}

fn cnn(
    img: &Images,
    subset: &Subset,
    width: usize,
    init: &mut Init,
) -> Result<(Tensor, Net, String), EmbedError> {
    let (w, h, c) = (
        img.width as usize,
        img.height as usize,
        img.channels as usize,
    );
    // Channel-first layout for the convolutions.
    let mut x = Vec::with_capacity(subset.len() * c * h * w);
    for &r in &subset.rows {
        let image = img.image(r as usize);
        for ch in 0..c {
            x.extend((0..h * w).map(|p| image[p * c + ch] as f32 / 255.0));
        }
    }
    let x = Tensor::from_vec(x, (subset.len(), c, h, w), &init.device).context("probe input")?;
    let pool = cnn_pool(img).unwrap_or(1);
    let (ph, pw) = (h / pool / 4, w / pool / 4);
    let flat = 32 * ph * pw;
    let net = Net::Cnn {
        pool,
        c1: init.conv(c, 16)?,
        c2: init.conv(16, 32)?,
        features: init.linear(flat, width)?,
    };
    let architecture = format!("cnn {c}x{h}x{w} /{pool} conv16 conv32 fc{width}");
    Ok((x, net, architecture))
}

/// Fewer rows a class than this on average, and the probe is not trained.
const MIN_ROWS_PER_CLASS: usize = 4;

/// Refuses a probe that cannot learn anything: fewer than [`MIN_ROWS_PER_CLASS`] rows a class
/// on average (200,000 rows in 200,000 classes took minutes for a head of 200,000 outputs).
/// Checked before any view is computed.
pub fn check_feasible(subset: &Subset) -> Result<(), EmbedError> {
    let mut seen = vec![false; subset.n_classes];
    for &c in &subset.labels {
        seen[c as usize] = true;
    }
    let classes = seen.iter().filter(|&&s| s).count();
    if subset.len() < MIN_ROWS_PER_CLASS * classes {
        return Err(EmbedError::Text(format!(
            "the probe cannot learn {classes} classes from {} labelled rows (fewer than \
             {MIN_ROWS_PER_CLASS} rows a class on average); use --embedder raw, or give \
             --embeddings",
            subset.len()
        )));
    }
    Ok(())
}

/// Trains the probe on the subset's labels and returns its penultimate activations. A text
/// payload needs `text_features`, its sentence embeddings (subset rows x d): the probe is an
/// MLP on them.
pub fn embed(
    payload: &Payload,
    text_features: Option<&Tensor>,
    subset: &Subset,
    config: &ProbeConfig,
    device: &Device,
    progress: &Progress,
) -> Result<Embedding, EmbedError> {
    let (input, probe, architecture) = build(payload, text_features, subset, config, device)?;
    let n = subset.len();
    let labels = Tensor::new(subset.labels.as_slice(), device).context("probe labels")?;
    let epochs = config
        .epochs
        .unwrap_or_else(|| (TARGET_STEPS * BATCH).div_ceil(n.max(1)).clamp(3, 30));
    let params = candle_nn::ParamsAdamW {
        lr: config.learning_rate,
        weight_decay: 1e-4,
        ..Default::default()
    };
    let mut opt = candle_nn::AdamW::new(probe.vars.clone(), params).context("probe optimiser")?;
    let mut rng = StdRng::seed_from_u64(config.seed.wrapping_add(1));
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut summary = TrainingSummary {
        architecture,
        parameters: probe.parameters(),
        epochs,
        batch_size: BATCH,
        learning_rate: config.learning_rate,
        seed: config.seed,
        loss: Vec::new(),
        accuracy: Vec::new(),
    };
    let bar = progress.bar(epochs as u64, "probe epochs");
    for _ in 0..epochs {
        order.shuffle(&mut rng);
        let (mut loss_sum, mut correct) = (0f64, 0usize);
        for batch in order.chunks(BATCH) {
            if progress.cancelled() {
                return Err(EmbedError::Cancelled);
            }
            let idx = Tensor::new(batch, device).context("probe batch")?;
            let x = input.index_select(&idx, 0).context("probe batch")?;
            let y = labels.index_select(&idx, 0).context("probe batch")?;
            let logits = probe
                .features(&x)
                .and_then(|f| probe.head.forward(&f))
                .context("probe forward pass")?;
            let loss = candle_nn::loss::cross_entropy(&logits, &y).context("probe loss")?;
            opt.backward_step(&loss).context("probe backward pass")?;
            loss_sum += loss.to_scalar::<f32>().context("probe loss")? as f64 * batch.len() as f64;
            let hits = logits
                .argmax(D::Minus1)
                .and_then(|p| p.eq(&y))
                .and_then(|e| e.to_dtype(DType::F32))
                .and_then(|e| e.sum_all())
                .and_then(|s| s.to_scalar::<f32>())
                .context("probe accuracy")?;
            correct += hits as usize;
        }
        summary.loss.push((loss_sum / n as f64) as f32);
        summary.accuracy.push(correct as f32 / n as f32);
        bar.set_message(format!("loss {:.3}", loss_sum / n as f64));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut parts = Vec::new();
    for start in (0..n).step_by(1024) {
        let len = 1024.min(n - start);
        let x = input.narrow(0, start, len).context("probe features")?;
        parts.push(probe.features(&x).context("probe features")?.detach());
    }
    let matrix = Tensor::cat(&parts, 0).context("probe features")?;
    Ok(Embedding {
        view: View::Probe,
        matrix,
        training: Some(summary),
    })
}

#[cfg(test)]
mod tests;
