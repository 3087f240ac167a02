//! A table with a text column (`--text-col`) on the Ray engine: the driver reads and validates
//! it in memory, as `poisongate scan` does, and its MiniLM view (the expensive step: a
//! transformer over every text) is computed by workers, on shards of [`CHUNK`] texts that
//! each worker's model, loaded once, embeds. The view's rows go to a file of the work folder,
//! and the detectors are the streaming scan's (`super::detect`).
//!
//! A shard is [`CHUNK`] consecutive usable rows from a multiple of [`CHUNK`], the chunks the
//! in-memory view embeds (sorted by length, in batches of [`BATCH`]), so each row's vector is
//! the in-memory scan's, bit for bit.

use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use super::detect;
use super::embedding::{read_model, write_model};
use super::images::subset_view;
use super::remote::Tasks;
use super::spill::Spill;
use super::wire::{Reader, Writer};
use super::StreamError;
use crate::cli::config::ScanConfig;
use crate::dataset::{Payload, TextValue};
use crate::device::DeviceChoice;
use crate::embed::text::{self, TextModel, BATCH, CHUNK};
use crate::embed::{EmbedError, Subset, View};
use crate::progress::Progress;
use crate::report::detection;
use crate::scan::Outcome;
use crate::validate;
use crate::validate::schema::Schema;
use crate::Error;

/// The stage name of a shard's embedding ([`TextWorker::run`]).
pub const TEXTS_STAGE: &str = "texts";

/// Whether `config` names a text column: such a table's view is computed by this module's
/// workers when the scan's steps run as tasks.
pub fn wanted(config: &ScanConfig) -> bool {
    config.input.columns.text.is_some()
}

/// What a worker needs: the model (None: the fetched all-MiniLM-L6-v2, checked against its
/// pinned SHA-256) and the device.
#[derive(Debug, Clone, PartialEq)]
pub struct TextSpec {
    pub model: Option<String>,
    pub device: DeviceChoice,
}

impl TextSpec {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        write_model(&mut w, self.model.as_deref(), self.device);
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<TextSpec, StreamError> {
        let mut r = Reader::new(bytes, "the text view's settings");
        let (model, device) = read_model(&mut r)?;
        r.end()?;
        Ok(TextSpec { model, device })
    }
}

/// A shard: its first position in the subset, and each text with its dataset row.
fn shard_item(first: usize, rows: &[u32], texts: &[&str]) -> Vec<u8> {
    let mut w = Writer::new();
    w.usize(first).u32s(rows).usize(texts.len());
    for t in texts {
        w.str(t);
    }
    w.finish()
}

/// A shard's answer: its first position, the dataset rows whose text was cut at the model's
/// token limit, the limit, and the rows of the view.
struct Answer {
    first: usize,
    truncated: Vec<u32>,
    limit: usize,
    values: Vec<f32>,
}

impl Answer {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.usize(self.first)
            .u32s(&self.truncated)
            .usize(self.limit)
            .f32s(&self.values);
        w.finish()
    }

    fn decode(bytes: &[u8]) -> Result<Answer, StreamError> {
        let mut r = Reader::new(bytes, "a text shard's answer");
        let answer = Answer {
            first: r.usize()?,
            truncated: r.u32s()?,
            limit: r.usize()?,
            values: r.f32s()?,
        };
        r.end()?;
        Ok(answer)
    }
}

/// Embeds shards of texts (a worker of the Ray engine keeps one: the model is loaded once).
pub struct TextWorker {
    model: TextModel,
}

impl TextWorker {
    pub fn new(spec: &[u8]) -> Result<TextWorker, StreamError> {
        let spec = TextSpec::decode(spec)?;
        let failed = |e: String| StreamError::Tasks(format!("the minilm view: {e}"));
        let (device, _) = crate::device::select(spec.device).map_err(|e| failed(e.to_string()))?;
        let model = text::load_model(spec.model.as_deref().map(Path::new), &device)
            .map_err(|e| failed(e.to_string()))?;
        Ok(TextWorker { model })
    }

    /// Values a row of the view holds.
    pub fn dim(&self) -> usize {
        self.model.dim
    }

    /// The shard in `item` embedded: the answer's bytes.
    pub fn run(&self, item: &[u8]) -> Result<Vec<u8>, StreamError> {
        let mut r = Reader::new(item, "a text shard");
        let first = r.usize()?;
        let rows = r.u32s()?;
        let texts: Vec<String> = (0..r.usize()?).map(|_| r.str()).collect::<Result<_, _>>()?;
        r.end()?;
        if texts.len() != rows.len() {
            return Err(StreamError::Unsupported(format!(
                "a text shard holds {} texts for {} rows",
                texts.len(),
                rows.len()
            )));
        }
        let failed = |e: EmbedError| {
            StreamError::Tasks(format!("texts {first}..{}: {e}", first + texts.len()))
        };
        let strings: Vec<&str> = texts.iter().map(String::as_str).collect();
        let out = self.model.embed(&strings, BATCH).map_err(failed)?;
        let values = out
            .matrix
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| failed(EmbedError::Text(e.to_string())))?;
        Ok(Answer {
            first,
            truncated: out.truncated.iter().map(|&i| rows[i]).collect(),
            limit: self.model.max_tokens,
            values,
        }
        .encode())
    }
}

/// The scan of a table with a text column whose MiniLM view `tasks` compute: read and
/// validated in memory, detection on the view on disk.
pub fn scan(
    config: &ScanConfig,
    declared: Option<&Schema>,
    tasks: &dyn Tasks,
    progress: &Progress,
) -> Result<Outcome, Error> {
    let (dataset, findings) = crate::scan::load(&config.input, declared, progress)?;
    if !matches!(dataset.payload, Payload::Text(_)) {
        return Err(StreamError::Unsupported(format!(
            "{}: the Ray engine embeds a text column named with --text-col; this table's payload is {}",
            config.input.path.display(),
            dataset.payload.kind()
        ))
        .into());
    }
    let streamed = streams(config, &dataset);
    finish(
        config,
        declared,
        dataset,
        findings,
        Some(tasks),
        streamed,
        progress,
    )
}

/// Bytes a text table's in-memory scan is estimated to hold at its peak, beyond the texts
/// (`text_bytes`): the MiniLM view and the probe's copy of its input (384 f32 each), and
/// about 200 bytes a row for labels, neighbours, votes and scores.
pub fn in_memory_bytes(rows: u64, text_bytes: u64) -> u64 {
    text_bytes.saturating_add(rows.saturating_mul(384 * 4 * 2 + 200))
}

/// The estimate and the limit, where `dataset` (read with `config`) is a text table whose
/// detection is streamed: its in-memory estimate is over the memory limit.
pub fn streams(config: &ScanConfig, dataset: &crate::dataset::Dataset) -> Option<(u64, u64)> {
    let Payload::Text(texts) = &dataset.payload else {
        return None;
    };
    config.detect.as_ref()?;
    let limit = config.memory_limit.or_else(super::default_limit)?;
    let text_bytes: u64 = texts
        .values
        .iter()
        .map(|v| match v {
            TextValue::Text(s) => s.len() as u64,
            _ => 0,
        })
        .sum();
    let estimate = in_memory_bytes(texts.values.len() as u64, text_bytes);
    (estimate > limit).then_some((estimate, limit))
}

/// Validation of a text table read in memory, then detection with its MiniLM view computed
/// in shards (by `tasks`, or in this process) and kept on disk. `streamed`: the estimate and
/// the limit it passed ([`streams`]), for the report's note.
pub fn finish(
    config: &ScanConfig,
    declared: Option<&Schema>,
    dataset: crate::dataset::Dataset,
    mut findings: Vec<crate::validate::Finding>,
    tasks: Option<&dyn Tasks>,
    streamed: Option<(u64, u64)>,
    progress: &Progress,
) -> Result<Outcome, Error> {
    let Payload::Text(texts) = &dataset.payload else {
        return Err(StreamError::Unsupported("a text table was expected".into()).into());
    };
    findings.extend(validate::rows::check(&dataset, declared));
    validate::finish(&mut findings, &dataset, config.strict);
    let detection = match (&config.detect, Subset::usable(&dataset)) {
        (None, _) => detection::Outcome::NotRequested,
        (Some(_), None) => detection::Outcome::Skipped(crate::scan::NO_LABELS.into()),
        (Some(detect), Some(subset)) => {
            if subset.is_empty() {
                let why = subset.excluded.first().map_or("no rows", |e| e.1);
                return Err(EmbedError::NothingUsable(why.to_string()).into());
            }
            // For text the raw view is the sentence model's, as in memory.
            let Some((_, detectors)) = detect
                .plan
                .iter()
                .find(|(v, _)| matches!(v, View::Raw | View::Minilm))
            else {
                return Err(StreamError::Unsupported(format!(
                    "{}: the Ray engine computes a text column's minilm view; run it with --embedder auto, raw or minilm",
                    config.input.path.display()
                ))
                .into());
            };
            let parent = config.work_dir.clone().unwrap_or_else(std::env::temp_dir);
            let work = tempfile::Builder::new()
                .prefix("poisongate-")
                .tempdir_in(&parent)
                .map_err(|e| StreamError::io(&parent, e))?;
            let spec = TextSpec {
                model: detect.model.as_ref().map(|m| m.display().to_string()),
                device: detect.device,
            };
            // Loaded here also when tasks embed: a missing or wrong model is then one error
            // naming it, before any shard is handed out.
            let spec_bytes = spec.encode();
            let worker = TextWorker::new(&spec_bytes)?;
            let dim = worker.dim();
            let local = match tasks {
                Some(_) => {
                    drop(worker);
                    None
                }
                None => Some(worker),
            };
            let t = Instant::now();
            let view = Spill::create(&work.path().join("minilm.f32"), subset.len(), dim)?;
            let mut items = Vec::with_capacity(subset.len().div_ceil(CHUNK));
            for (c, rows) in subset.rows.chunks(CHUNK).enumerate() {
                let strings: Vec<&str> = rows
                    .iter()
                    .map(|&r| match &texts.values[r as usize] {
                        TextValue::Text(s) => s.as_str(),
                        // Subset::usable leaves these out.
                        _ => "",
                    })
                    .collect();
                items.push(shard_item(c * CHUNK, rows, &strings));
            }
            let bar = progress.bar(subset.len() as u64, "texts");
            let done = Mutex::new((vec![false; items.len()], Vec::new(), 0usize));
            let sink = |answer: &[u8]| -> Result<(), StreamError> {
                let a = Answer::decode(answer)?;
                let count = a.values.len() / dim.max(1);
                let shard = a.first / CHUNK;
                let expected = CHUNK.min(subset.len().saturating_sub(a.first));
                if a.first % CHUNK != 0
                    || a.first >= subset.len()
                    || count != expected
                    || a.values.len() != count * dim
                {
                    return Err(StreamError::Unsupported(format!(
                        "the text shard at {} answered {} values; {expected} rows of {dim} were due",
                        a.first,
                        a.values.len()
                    )));
                }
                view.write_rows(a.first, &a.values)?;
                let mut done = done.lock().unwrap_or_else(|e| e.into_inner());
                if std::mem::replace(&mut done.0[shard], true) {
                    return Err(StreamError::Unsupported(format!(
                        "the text shard at {} came twice",
                        a.first
                    )));
                }
                done.1.extend(a.truncated);
                done.2 = a.limit;
                bar.inc(count as u64);
                Ok(())
            };
            if let Some(tasks) = tasks {
                tasks.embed_shards(TEXTS_STAGE, &spec_bytes, items, &sink)?;
            } else if let Some(worker) = &local {
                for item in items {
                    if progress.cancelled() {
                        return Err(EmbedError::Cancelled.into());
                    }
                    sink(&worker.run(&item)?)?;
                }
            }
            bar.finish_and_clear();
            let (covered, mut truncated, limit) =
                done.into_inner().unwrap_or_else(|e| e.into_inner());
            if let Some(missing) = covered.iter().position(|&c| !c) {
                return Err(StreamError::Unsupported(format!(
                    "the text shard at {} has no answer",
                    missing * CHUNK
                ))
                .into());
            }
            truncated.sort_unstable();
            let memory_limit = config.memory_limit.or_else(super::default_limit);
            let mut notes = Vec::new();
            if let Some((estimate, limit)) = streamed {
                notes.push(format!(
                    "streamed: the in-memory scan of {} texts was estimated at {}, over the memory limit of {} (--memory-limit); the minilm view was computed in shards of {CHUNK} and kept on disk",
                    texts.values.len(),
                    super::detect::bytes(estimate),
                    super::detect::bytes(limit)
                ));
            }
            if let Some(tasks) = tasks {
                notes.push(format!(
                    "the minilm view, the per-class detectors and the k-NN search ran as tasks on {}; reading, validation, the partition and the verdict ran in this process, and the view was kept on disk",
                    tasks.describe()
                ));
            }
            for (other, _) in detect
                .plan
                .iter()
                .filter(|(v, _)| !matches!(v, View::Raw | View::Minilm))
            {
                notes.push(format!(
                    "the {} view was not computed: the Ray engine computes a text column's minilm view only",
                    other.name()
                ));
            }
            notes.extend(text::cut_note(&truncated, limit));
            let keep: Vec<u32> = (0..subset.len() as u32).collect();
            let seconds = t.elapsed().as_secs_f64();
            let on_view = subset_view(
                view,
                &keep,
                &subset.rows,
                View::Minilm,
                work.path(),
                seconds,
            )?;
            drop(keep);
            // A sixteenth of the limit with tasks, a quarter without, as for tables.
            let share = if tasks.is_some() { 16 } else { 4 };
            let budget = (memory_limit.unwrap_or(4 << 30) / share) as usize;
            let analysis = detect::detect_view(
                subset,
                on_view,
                Some(texts),
                detectors,
                detect,
                notes,
                work.path(),
                budget,
                tasks,
                progress,
            )?;
            detection::Outcome::Ran(Box::new(analysis))
        }
    };
    Ok(crate::scan::outcome(config, dataset, findings, detection))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_and_answers_round_trip() {
        let spec = TextSpec {
            model: Some("/m/minilm".into()),
            device: DeviceChoice::Cuda,
        };
        assert_eq!(TextSpec::decode(&spec.encode()).unwrap(), spec);
        let plain = TextSpec {
            model: None,
            device: DeviceChoice::Auto,
        };
        assert_eq!(TextSpec::decode(&plain.encode()).unwrap(), plain);
        let answer = Answer {
            first: 1024,
            truncated: vec![1030],
            limit: 256,
            values: vec![0.5, -0.25],
        }
        .encode();
        let back = Answer::decode(&answer).unwrap();
        assert_eq!(
            (back.first, back.truncated, back.limit, back.values),
            (1024, vec![1030], 256, vec![0.5, -0.25])
        );
        assert!(Answer::decode(&answer[..answer.len() - 1]).is_err());
    }
}
