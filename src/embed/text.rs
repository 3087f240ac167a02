//! Sentence embeddings from a BERT-family sentence-transformer folder (all-MiniLM-L6-v2 by
//! default, fetched by `datasets/models/fetch-minilm.sh`): the tokenizer from `tokenizer.json`
//! (the `tokenizers` crate), the encoder from `model.safetensors` through candle-transformers'
//! BERT, then the mean of the token states over the real tokens (padding excluded) and L2
//! normalisation, as sentence-transformers does for this model.
//!
//! Model files are untrusted input. Only safetensors weights are read (a header and raw
//! tensor bytes: nothing in them is executed), the known weights are checked against a
//! pinned SHA-256, and a missing, truncated or wrongly shaped file is an error naming it.
//!
//! `scan --text-col COL` embeds the column with it as the `minilm` view (`--model DIR` for
//! another BERT-family folder); the probe then trains on these vectors.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::bert::{BertModel, Config};
use sha2::{Digest, Sha256};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::{CandleContext, EmbedError, Embedding, Subset, View};
use crate::dataset::{TextValue, Texts};
use crate::progress::Progress;

/// Texts per progress step (and per call of [`TextModel::embed`]).
pub const CHUNK: usize = 1024;
/// Texts per forward pass: the fastest of 16, 64 and 256 on two cores (benches/RESULTS.md).
pub const BATCH: usize = 64;

/// The `minilm` view of a text payload: one unit vector per subset row, and the dataset rows
/// whose text was cut at the model's token limit. `model_dir` None means the folder that
/// `datasets/models/fetch-minilm.sh` writes, checked against the pinned SHA-256.
pub fn embed_texts(
    texts: &Texts,
    subset: &Subset,
    model_dir: Option<&Path>,
    device: &Device,
    progress: &Progress,
) -> Result<(Embedding, Vec<u32>, usize), EmbedError> {
    let model = load_model(model_dir, device)?;
    let strings: Vec<&str> = subset
        .rows
        .iter()
        .map(|&r| match &texts.values[r as usize] {
            TextValue::Text(s) => Ok(s.as_str()),
            // Subset::usable leaves these out; reaching one is a bug, not bad input.
            _ => Err(EmbedError::Text(format!(
                "dataset row {r}: no usable text in column {}",
                texts.column
            ))),
        })
        .collect::<Result<_, _>>()?;
    let bar = progress.bar(strings.len() as u64, "texts");
    let mut parts = Vec::new();
    let mut truncated = Vec::new();
    for (c, chunk) in strings.chunks(CHUNK).enumerate() {
        let out = model.embed(chunk, BATCH)?;
        truncated.extend(out.truncated.iter().map(|&i| subset.rows[c * CHUNK + i]));
        parts.push(out.matrix);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let matrix = if parts.is_empty() {
        Tensor::zeros((0, model.dim), DType::F32, device).context("text embedding")?
    } else {
        Tensor::cat(&parts, 0).context("text embedding")?
    };
    Ok((
        Embedding {
            view: View::Minilm,
            matrix,
            training: None,
        },
        truncated,
        model.max_tokens,
    ))
}

/// The report's note on texts cut at the model's `limit` of tokens (`truncated`: their
/// dataset rows, ascending), if any were.
pub fn cut_note(truncated: &[u32], limit: usize) -> Option<String> {
    if truncated.is_empty() {
        return None;
    }
    let shown: Vec<String> = truncated.iter().take(10).map(u32::to_string).collect();
    Some(format!(
        "{} text(s) were cut at the model's limit of {limit} tokens before embedding (dataset rows {}{})",
        truncated.len(),
        shown.join(", "),
        if truncated.len() > 10 { ", ..." } else { "" }
    ))
}

/// The model in `model_dir`, or (None) the fetched all-MiniLM-L6-v2 checked against its
/// pinned SHA-256.
pub fn load_model(model_dir: Option<&Path>, device: &Device) -> Result<TextModel, EmbedError> {
    let (dir, pinned) = match model_dir {
        Some(dir) => (dir.to_path_buf(), None),
        None => (
            default_minilm_dir().ok_or_else(|| {
                EmbedError::Text("HOME is not set: give the model folder with --model".into())
            })?,
            Some(MINILM_SHA256),
        ),
    };
    TextModel::load(&dir, pinned, device)
}

/// SHA-256 of all-MiniLM-L6-v2's `model.safetensors` as sentence-transformers publishes it
/// (also pinned in `datasets/models/fetch-minilm.sh`).
pub const MINILM_SHA256: &str = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db";

/// Where `datasets/models/fetch-minilm.sh` puts the model by default.
pub fn default_minilm_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".cache/poisongate-models/all-MiniLM-L6-v2"))
}

/// The encoder: our CPU layout ([`super::bert`]) on the CPU, candle-transformers' model
/// elsewhere.
enum Net {
    Cpu(super::bert::Encoder),
    Candle(Box<BertModel>),
}

/// A loaded sentence-transformer.
pub struct TextModel {
    model: Net,
    tokenizer: Tokenizer,
    device: Device,
    /// Tokens per text, [CLS] and [SEP] included; longer texts are cut.
    pub max_tokens: usize,
    /// Width of the embeddings.
    pub dim: usize,
}

/// Embeddings of a list of texts, in their order.
pub struct TextEmbedding {
    /// `n x dim` f32, each row of unit length.
    pub matrix: Tensor,
    /// Indices of the texts cut at `max_tokens`.
    pub truncated: Vec<usize>,
}

fn file_error(path: &Path, problem: impl std::fmt::Display) -> EmbedError {
    EmbedError::File {
        path: path.to_path_buf(),
        problem: problem.to_string(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, EmbedError> {
    std::fs::read(path).map_err(|e| {
        file_error(
            path,
            format!("cannot read it ({e}); a sentence-transformer folder needs config.json, tokenizer.json and model.safetensors (datasets/models/fetch-minilm.sh fetches one)"),
        )
    })
}

impl TextModel {
    /// Loads the folder `dir`. With `expected_sha256`, `model.safetensors` must hash to it.
    pub fn load(
        dir: &Path,
        expected_sha256: Option<&str>,
        device: &Device,
    ) -> Result<Self, EmbedError> {
        let config_path = dir.join("config.json");
        let config: Config = serde_json::from_slice(&read(&config_path)?)
            .map_err(|e| file_error(&config_path, format!("not a BERT config.json: {e}")))?;
        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_bytes(read(&tokenizer_path)?)
            .map_err(|e| file_error(&tokenizer_path, format!("not a tokenizer.json: {e}")))?;
        // sentence-transformers' own limit when the folder gives one, else the model's.
        let st_path = dir.join("sentence_bert_config.json");
        let max_tokens = match std::fs::read(&st_path) {
            Ok(bytes) => serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("max_seq_length")?.as_u64())
                .ok_or_else(|| file_error(&st_path, "no integer max_seq_length"))?
                as usize,
            Err(_) => config.max_position_embeddings,
        }
        .min(config.max_position_embeddings);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..Default::default()
            }))
            .map_err(|e| file_error(&tokenizer_path, format!("cannot truncate: {e}")))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));

        let weights_path = dir.join("model.safetensors");
        let bytes = read(&weights_path)?;
        if let Some(expected) = expected_sha256 {
            let actual = format!("{:x}", Sha256::digest(&bytes));
            if actual != expected {
                return Err(file_error(
                    &weights_path,
                    format!("SHA-256 {actual}, expected {expected}: not the known weights (a different or damaged file)"),
                ));
            }
        }
        let tensors = candle_core::safetensors::load_buffer(&bytes, device).map_err(|e| {
            file_error(
                &weights_path,
                format!("not a readable safetensors file: {e}"),
            )
        })?;
        drop(bytes);
        let vb = candle_nn::VarBuilder::from_tensors(tensors, DType::F32, device);
        let model = if device.is_cpu() {
            super::bert::Encoder::load(vb, &config).map(Net::Cpu)
        } else {
            BertModel::load(vb, &config).map(|m| Net::Candle(Box::new(m)))
        }
        .map_err(|e| {
            file_error(
                &weights_path,
                format!("the weights do not fit config.json: {e}"),
            )
        })?;
        Ok(TextModel {
            model,
            tokenizer,
            device: device.clone(),
            max_tokens,
            dim: config.hidden_size,
        })
    }

    /// Embeds `texts` in batches of `batch`. Texts are grouped by token count so that a batch
    /// carries little padding; the result keeps their order. An empty text embeds as
    /// [CLS] [SEP], like sentence-transformers.
    pub fn embed(&self, texts: &[&str], batch: usize) -> Result<TextEmbedding, EmbedError> {
        let mut encodings = Vec::with_capacity(texts.len());
        let mut truncated = Vec::new();
        // One at a time: batch encoding would pad every text to the longest of all.
        for (i, text) in texts.iter().enumerate() {
            let encoding = self
                .tokenizer
                .encode(*text, true)
                .map_err(|e| EmbedError::Text(format!("text {i}: cannot tokenise: {e}")))?;
            if !encoding.get_overflowing().is_empty() {
                truncated.push(i);
            }
            encodings.push(encoding);
        }
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| encodings[i].get_ids().len());
        let mut batches = Vec::new();
        for chunk in order.chunks(batch.max(1)) {
            let width = chunk
                .iter()
                .map(|&i| encodings[i].get_ids().len())
                .max()
                .unwrap_or(0);
            let mut ids = Vec::with_capacity(chunk.len() * width);
            let mut mask = Vec::with_capacity(chunk.len() * width);
            for &i in chunk {
                let e = &encodings[i];
                ids.extend_from_slice(e.get_ids());
                mask.extend_from_slice(e.get_attention_mask());
                let pad = width - e.get_ids().len();
                ids.extend(std::iter::repeat_n(0u32, pad));
                mask.extend(std::iter::repeat_n(0u32, pad));
            }
            batches.push(self.forward(ids, mask, chunk.len(), width)?);
        }
        let matrix = if batches.is_empty() {
            Tensor::zeros((0, self.dim), DType::F32, &self.device).context("text embedding")?
        } else {
            // Rows come out in token-count order; put them back in the texts' order.
            let mut place = vec![0u32; texts.len()];
            for (sorted, &i) in order.iter().enumerate() {
                place[i] = sorted as u32;
            }
            let place = Tensor::new(place.as_slice(), &self.device).context("text embedding")?;
            Tensor::cat(&batches, 0)
                .and_then(|m| m.index_select(&place, 0))
                .context("text embedding")?
        };
        Ok(TextEmbedding { matrix, truncated })
    }

    /// One padded batch: token states, their mean over the real tokens, L2-normalised.
    fn forward(
        &self,
        ids: Vec<u32>,
        mask: Vec<u32>,
        rows: usize,
        width: usize,
    ) -> Result<Tensor, EmbedError> {
        let what = "text embedding";
        let ids = Tensor::from_vec(ids, (rows, width), &self.device).context(what)?;
        let mask = Tensor::from_vec(mask, (rows, width), &self.device).context(what)?;
        let states = match &self.model {
            Net::Cpu(encoder) => encoder.forward(&ids, &mask),
            Net::Candle(model) => ids
                .zeros_like()
                .and_then(|types| model.forward(&ids, &types, Some(&mask))),
        }
        .context(what)?;
        let weights = mask
            .to_dtype(DType::F32)
            .and_then(|m| m.unsqueeze(2))
            .context(what)?;
        let sum = states
            .broadcast_mul(&weights)
            .and_then(|s| s.sum(1))
            .context(what)?;
        let count = weights.sum(1).context(what)?;
        let mean = sum.broadcast_div(&count).context(what)?;
        let norm = mean
            .sqr()
            .and_then(|s| s.sum_keepdim(1))
            .and_then(|s| s.sqrt())
            .context(what)?;
        mean.broadcast_div(&norm).context(what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fetched model, or None with the reason printed (the fetch script is part of the
    /// README's test command, so CI has it).
    fn minilm() -> Option<TextModel> {
        let dir = std::env::var_os("POISONGATE_MINILM")
            .map(PathBuf::from)
            .or_else(default_minilm_dir)?;
        if !dir.join(".complete").exists() && !dir.join("model.safetensors").exists() {
            eprintln!(
                "skipped: no model at {} (bash datasets/models/fetch-minilm.sh)",
                dir.display()
            );
            return None;
        }
        Some(TextModel::load(&dir, Some(MINILM_SHA256), &Device::Cpu).expect("the pinned model"))
    }

    fn cosine(m: &Tensor, a: usize, b: usize) -> f32 {
        (m.get(a).unwrap() * m.get(b).unwrap())
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn minilm_matches_the_published_similarity() {
        let Some(model) = minilm() else { return };
        let texts = [
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "The new movie is awesome.",
            "",
        ];
        // Batches of 1 and of 4 (padding) must agree.
        let one = model.embed(&texts, 1).unwrap();
        let four = model.embed(&texts, 4).unwrap();
        assert_eq!(one.matrix.dims(), [4, 384]);
        let diff = (&one.matrix - &four.matrix)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-4, "padding changed an embedding by {diff}");
        // The sentence-transformers model card gives 0.755 for this pair.
        let food = cosine(&one.matrix, 0, 1);
        eprintln!("cosine of the two food sentences: {food}");
        assert!((food - 0.755).abs() < 0.005, "cosine {food}");
        assert!(cosine(&one.matrix, 0, 2) < 0.2);
        for i in 0..4 {
            assert!(
                (cosine(&one.matrix, i, i) - 1.0).abs() < 1e-5,
                "row {i} not unit"
            );
        }
        assert!(one.truncated.is_empty());
    }

    #[test]
    fn long_texts_are_cut_and_reported() {
        let Some(model) = minilm() else { return };
        let long = "word ".repeat(3 * model.max_tokens);
        let out = model.embed(&["short", &long], 2).unwrap();
        assert_eq!(out.truncated, [1]);
        assert_eq!(out.matrix.dims(), [2, model.dim]);
    }

    #[test]
    fn missing_truncated_and_foreign_weights_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = TextModel::load(dir.path(), None, &Device::Cpu)
            .err()
            .unwrap();
        assert!(err.to_string().contains("config.json"), "{err}");

        // A config and a tokenizer, but weights cut short.
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"vocab_size": 10, "hidden_size": 4, "num_hidden_layers": 1,
               "num_attention_heads": 1, "intermediate_size": 8, "hidden_act": "gelu",
               "max_position_embeddings": 16, "type_vocab_size": 2,
               "layer_norm_eps": 1e-12, "pad_token_id": 0, "hidden_dropout_prob": 0.1,
               "initializer_range": 0.02, "position_embedding_type": "absolute",
               "use_cache": true, "model_type": "bert"}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("tokenizer.json"),
            r#"{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
               "normalizer": null, "pre_tokenizer": {"type": "Whitespace"},
               "post_processor": null, "decoder": null,
               "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "a": 1},
                         "unk_token": "[UNK]"}}"#,
        )
        .unwrap();
        let weights = dir.path().join("model.safetensors");
        std::fs::write(&weights, b"\x40\x00\x00\x00\x00\x00\x00\x00{\"a\":").unwrap();
        let err = TextModel::load(dir.path(), None, &Device::Cpu)
            .err()
            .unwrap();
        let text = err.to_string();
        assert!(
            text.contains("model.safetensors") && text.contains("safetensors"),
            "{text}"
        );
        // The pinned sum refuses any other file before parsing it.
        let err = TextModel::load(dir.path(), Some(MINILM_SHA256), &Device::Cpu)
            .err()
            .unwrap();
        assert!(err.to_string().contains("SHA-256"), "{err}");

        // A well-formed file whose tensors do not fit the config.
        let t = Tensor::zeros((3, 3), DType::F32, &Device::Cpu).unwrap();
        candle_core::safetensors::save(
            &std::collections::HashMap::from([(
                "embeddings.word_embeddings.weight".to_string(),
                t,
            )]),
            &weights,
        )
        .unwrap();
        let err = TextModel::load(dir.path(), None, &Device::Cpu)
            .err()
            .unwrap();
        assert!(err.to_string().contains("do not fit config.json"), "{err}");
    }

    /// The model on the GPU against the CPU, on short, padded and cut texts. The weights need
    /// not be the pinned ones (benches/gpu.sh brings stand-ins of the same shapes): the check
    /// is that both devices compute the same function.
    #[cfg(feature = "cuda")]
    #[test]
    fn cuda_minilm_matches_the_cpu() {
        let Some(gpu) = crate::device::test_gpu() else {
            return;
        };
        let Some(dir) = std::env::var_os("POISONGATE_MINILM")
            .map(PathBuf::from)
            .or_else(default_minilm_dir)
            .filter(|d| d.join("model.safetensors").exists())
        else {
            eprintln!("skipped: no model (bash datasets/models/fetch-minilm.sh)");
            return;
        };
        let long = "the data of the model is a sample ".repeat(80);
        let texts = [
            "A man is eating food.",
            "The new movie is awesome.",
            "",
            long.as_str(),
            "Click here to update your account today, free offer",
        ];
        let embed = |device: &Device| {
            let model = TextModel::load(&dir, None, device).unwrap();
            model
                .embed(&texts, 2)
                .unwrap()
                .matrix
                .to_device(&Device::Cpu)
                .unwrap()
        };
        let (cpu, cuda) = (embed(&Device::Cpu), embed(&gpu));
        for i in 0..texts.len() {
            let c = (cpu.get(i).unwrap() * cuda.get(i).unwrap())
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(c >= 0.9999, "text {i}: cosine {c} between CPU and GPU");
        }
    }
}
