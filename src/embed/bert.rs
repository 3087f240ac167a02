//! A BERT encoder for inference on the CPU, for the sentence-transformer (`text.rs`): the
//! same weights, names and arithmetic as candle-transformers' `BertModel` (from which the
//! layer structure is adapted; MIT OR Apache-2.0), laid out for two cores rather than for
//! generality. candle's model on the CPU spent most of its non-matrix time on the attention
//! scores: a 64-text batch of 256 tokens makes 200 MB score tensors that are divided, masked,
//! exponentiated and normalised in separate single-threaded passes, each a fresh allocation
//! whose pages the kernel zeroes (benches/RESULTS.md). Here:
//! - the hidden states stay one `(texts x tokens) x hidden` matrix, so each linear layer is one
//!   matrix product (query, key and value together);
//! - attention runs per (text, head) as a rayon task on a scores buffer of one head
//!   (`tokens x tokens`): one product with the scale folded in, the padding mask and the
//!   softmax in one pass, one product with the values;
//! - GELU (the exact, erf form) runs in parallel chunks.
//!
//! On other devices `text.rs` keeps candle-transformers' model; the CUDA cross-check test
//! compares the two.

use candle_core::{Device, Module, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};
use candle_transformers::models::bert::{Config, HiddenAct};
use rayon::prelude::*;

use super::cpu::{matmul, View};

/// The encoder's weights.
pub struct Encoder {
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    hidden: usize,
}

struct Layer {
    /// Query, key and value stacked: `3 hidden x hidden`.
    qkv: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

fn linear(vb: &VarBuilder, inputs: usize, outputs: usize) -> candle_core::Result<Linear> {
    candle_nn::linear(inputs, outputs, vb.clone())
}

fn layer_norm(vb: VarBuilder, size: usize, eps: f64) -> candle_core::Result<LayerNorm> {
    candle_nn::layer_norm(size, eps, vb)
}

impl Encoder {
    /// Loads the weights `vb` holds (under `bert.` or not), as candle-transformers does.
    pub fn load(vb: VarBuilder, config: &Config) -> candle_core::Result<Self> {
        if config.hidden_act != HiddenAct::Gelu {
            candle_core::bail!(
                "the CPU encoder computes the exact GELU; the config asks for {:?}",
                config.hidden_act
            );
        }
        let (h, eps) = (config.hidden_size, config.layer_norm_eps);
        if config.num_attention_heads == 0 || h % config.num_attention_heads != 0 {
            candle_core::bail!(
                "{} attention heads do not divide the hidden size {h}",
                config.num_attention_heads
            );
        }
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else {
            vb
        };
        let e = vb.pp("embeddings");
        let embedding = |name: &str, rows: usize| candle_nn::embedding(rows, h, e.pp(name));
        let word = embedding("word_embeddings", config.vocab_size)?;
        let position = embedding("position_embeddings", config.max_position_embeddings)?;
        let token_type = embedding("token_type_embeddings", config.type_vocab_size)?;
        let embedding_norm = layer_norm(e.pp("LayerNorm"), h, eps)?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let l = vb.pp(format!("encoder.layer.{i}"));
                let a = l.pp("attention");
                let s = a.pp("self");
                let parts: Vec<Linear> = ["query", "key", "value"]
                    .iter()
                    .map(|p| linear(&s.pp(*p), h, h))
                    .collect::<candle_core::Result<_>>()?;
                let weight = Tensor::cat(&parts.iter().map(|p| p.weight()).collect::<Vec<_>>(), 0)?;
                let bias = parts
                    .iter()
                    .map(|p| {
                        p.bias()
                            .cloned()
                            .ok_or_else(|| candle_core::Error::Msg("a bias".into()))
                    })
                    .collect::<candle_core::Result<Vec<_>>>()?;
                Ok(Layer {
                    qkv: Linear::new(weight, Some(Tensor::cat(&bias, 0)?)),
                    attention_out: linear(&a.pp("output").pp("dense"), h, h)?,
                    attention_norm: layer_norm(a.pp("output").pp("LayerNorm"), h, eps)?,
                    intermediate: linear(
                        &l.pp("intermediate").pp("dense"),
                        h,
                        config.intermediate_size,
                    )?,
                    output: linear(&l.pp("output").pp("dense"), config.intermediate_size, h)?,
                    output_norm: layer_norm(l.pp("output").pp("LayerNorm"), h, eps)?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Encoder {
            word,
            position,
            token_type,
            embedding_norm,
            layers,
            heads: config.num_attention_heads,
            hidden: h,
        })
    }

    /// The last hidden states (`texts x tokens x hidden`) of token ids and a 0/1 attention
    /// mask (both `texts x tokens`, u32), the token types all 0.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (texts, tokens) = ids.dims2()?;
        if tokens > self.position.embeddings().dim(0)? {
            candle_core::bail!("{tokens} tokens, more than the model's positions");
        }
        let flat = ids.flatten_all()?;
        let positions = Tensor::arange(0u32, tokens as u32, ids.device())?;
        let x = self
            .word
            .forward(&flat)?
            .reshape((texts, tokens, self.hidden))?
            .broadcast_add(&self.position.forward(&positions)?)?
            .broadcast_add(&self.token_type.embeddings().get(0)?)?
            .reshape((texts * tokens, self.hidden))?;
        let mut x = self.embedding_norm.forward(&x)?;
        let mask: Vec<u32> = mask.flatten_all()?.to_vec1()?;
        for layer in &self.layers {
            let context = self.attention(&layer.qkv.forward(&x)?, &mask, texts, tokens)?;
            let attended = layer
                .attention_norm
                .forward(&(layer.attention_out.forward(&context)? + &x)?)?;
            let inner = gelu_erf(&layer.intermediate.forward(&attended)?)?;
            x = layer
                .output_norm
                .forward(&(layer.output.forward(&inner)? + &attended)?)?;
        }
        x.reshape((texts, tokens, self.hidden))
    }

    /// Self-attention of every text and head: `qkv` is `(texts x tokens) x 3 hidden`; the
    /// result `(texts x tokens) x hidden`, the heads side by side as BERT concatenates them.
    fn attention(
        &self,
        qkv: &Tensor,
        mask: &[u32],
        texts: usize,
        tokens: usize,
    ) -> candle_core::Result<Tensor> {
        let qkv = qkv.contiguous()?;
        let (values, _) = qkv.storage_and_layout();
        let candle_core::Storage::Cpu(storage) = &*values else {
            candle_core::bail!("the CPU encoder got a tensor off the CPU");
        };
        let all = storage.as_slice::<f32>()?;
        let offset = qkv.layout().start_offset();
        let (h, heads) = (self.hidden, self.heads);
        let d = h / heads;
        let qkv = &all[offset..offset + texts * tokens * 3 * h];
        let scale = 1.0 / (d as f32).sqrt();
        let mut out = vec![0f32; texts * tokens * h];
        // One task per (text, head), each writing its own `tokens x d` block.
        let blocks: Vec<Vec<f32>> = (0..texts * heads)
            .into_par_iter()
            .map_init(
                || vec![0f32; tokens * tokens],
                |scores, task| {
                    let (t, head) = (task / heads, task % heads);
                    let rows = &qkv[t * tokens * 3 * h..(t + 1) * tokens * 3 * h];
                    let q = &rows[head * d..];
                    let k = &rows[h + head * d..];
                    let v = &rows[2 * h + head * d..];
                    // scores = scale q k^T: q is tokens x d (row stride 3h), k^T is d x tokens.
                    let q = View(q, 3 * h, 1);
                    let kt = View(k, 1, 3 * h);
                    matmul_scaled(scores, q, kt, tokens, tokens, d, scale);
                    let keep = &mask[t * tokens..(t + 1) * tokens];
                    for row in scores.chunks_exact_mut(tokens) {
                        softmax_masked(row, keep);
                    }
                    let mut context = vec![0f32; tokens * d];
                    let v = View(v, 3 * h, 1);
                    matmul(
                        &mut context,
                        false,
                        View(scores, tokens, 1),
                        v,
                        tokens,
                        d,
                        tokens,
                    );
                    context
                },
            )
            .collect();
        for (task, block) in blocks.into_iter().enumerate() {
            let (t, head) = (task / heads, task % heads);
            for (i, row) in block.chunks_exact(d).enumerate() {
                let at = (t * tokens + i) * h + head * d;
                out[at..at + d].copy_from_slice(row);
            }
        }
        Tensor::from_vec(out, (texts * tokens, h), &Device::Cpu)
    }
}

/// `dst (m x n) = scale * lhs (m x k) * rhs (k x n)`.
fn matmul_scaled(dst: &mut [f32], lhs: View, rhs: View, m: usize, n: usize, k: usize, scale: f32) {
    matmul(dst, false, lhs, rhs, m, n, k);
    if scale != 1.0 {
        dst[..m * n].iter_mut().for_each(|v| *v *= scale);
    }
}

/// The softmax of one row of scores over the keys whose mask is 1; masked keys get 0, as
/// candle's mask of `f32::MIN` gives them. A row with no key kept stays all 0.
fn softmax_masked(row: &mut [f32], keep: &[u32]) {
    let max = row
        .iter()
        .zip(keep)
        .filter(|(_, &k)| k != 0)
        .fold(f32::NEG_INFINITY, |m, (&v, _)| m.max(v));
    if max == f32::NEG_INFINITY {
        row.fill(0.0);
        return;
    }
    let mut sum = 0f32;
    for (v, &k) in row.iter_mut().zip(keep) {
        *v = if k != 0 { (*v - max).exp() } else { 0.0 };
        sum += *v;
    }
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|v| *v *= inv);
}

/// The exact GELU, `x (1 + erf(x / sqrt 2)) / 2`, in parallel chunks.
fn gelu_erf(x: &Tensor) -> candle_core::Result<Tensor> {
    let shape = x.shape().clone();
    let mut v: Vec<f32> = x.flatten_all()?.to_vec1()?;
    v.par_chunks_mut(4096).for_each(|chunk| {
        for x in chunk {
            *x = 0.5 * *x * (1.0 + libm::erff(*x * std::f32::consts::FRAC_1_SQRT_2));
        }
    });
    Tensor::from_vec(v, shape, &Device::Cpu)
}
