//! The embedding steps as messages: what a worker is told and answers when it computes a
//! view for the streaming scan in another process (the Ray engine's workers and actors).
//! [`RawSpec`] and [`embed_frame`]: a table's raw view of a shard of row groups. [`Worker`]:
//! the pretrained views, images ([`super::images::ImageWorker`]) and texts
//! ([`super::texts::TextWorker`]), each with its model loaded once.

use super::remote::{position, variant};
use super::wire::{Reader, Writer};
use super::StreamError;
use crate::device::DeviceChoice;

/// A worker of an embedding stage, its model loaded once: [`super::images::ImageWorker`]
/// (`images`) or [`super::texts::TextWorker`] (`texts`).
pub enum Worker {
    // Boxed: both are large, and a worker is built once.
    Images(Box<super::images::ImageWorker>),
    Texts(Box<super::texts::TextWorker>),
}

impl Worker {
    pub fn new(stage: &str, spec: &[u8]) -> Result<Worker, StreamError> {
        match stage {
            super::images::IMAGES_STAGE => Ok(Worker::Images(Box::new(
                super::images::ImageWorker::new(spec)?,
            ))),
            super::texts::TEXTS_STAGE => Ok(Worker::Texts(Box::new(
                super::texts::TextWorker::new(spec)?,
            ))),
            other => Err(StreamError::Unsupported(format!(
                "`{other}` is not an embedding step of this build of poisongate (images, texts)"
            ))),
        }
    }

    /// One shard: the answer's bytes.
    pub fn run(&self, item: &[u8]) -> Result<Vec<u8>, StreamError> {
        match self {
            Worker::Images(w) => w.run(item),
            Worker::Texts(w) => w.run(item),
        }
    }
}

/// Where `embed_shards` delivers a shard's answer.
pub type AnswerSink<'a> = dyn Fn(&[u8]) -> Result<(), StreamError> + Sync + 'a;

/// Where `embed` delivers a shard's raw view: `(first row, rows x d values)`.
pub type Sink<'a> = dyn Fn(usize, &[f32]) -> Result<(), StreamError> + Sync + 'a;

/// What a worker needs to compute the raw view of a shard of the input: the Parquet files
/// (rows are numbered across them in this order), the feature columns, and each column's
/// centre and scale (the scan's, over the usable rows).
#[derive(Debug, Clone, PartialEq)]
pub struct RawSpec {
    pub files: Vec<String>,
    pub columns: Vec<String>,
    pub centre: Vec<f32>,
    pub scale: Vec<f32>,
}

impl RawSpec {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.usize(self.files.len());
        for f in &self.files {
            w.str(f);
        }
        w.usize(self.columns.len());
        for c in &self.columns {
            w.str(c);
        }
        w.f32s(&self.centre).f32s(&self.scale);
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<RawSpec, StreamError> {
        let mut r = Reader::new(bytes, "the raw view's settings");
        let files = (0..r.usize()?).map(|_| r.str()).collect::<Result<_, _>>()?;
        let columns: Vec<String> = (0..r.usize()?).map(|_| r.str()).collect::<Result<_, _>>()?;
        let centre = r.f32s()?;
        let scale = r.f32s()?;
        r.end()?;
        if centre.len() != columns.len() || scale.len() != columns.len() {
            return Err(StreamError::Unsupported(
                "the raw view's settings name more columns than centres and scales".into(),
            ));
        }
        Ok(RawSpec {
            files,
            columns,
            centre,
            scale,
        })
    }

    /// The raw view of `columns` (one f32 column each, in `self.columns`' order, equal
    /// lengths): row-major, each value centred and scaled as the scan does.
    pub fn apply(&self, columns: &[Vec<f32>]) -> Vec<f32> {
        let d = self.columns.len();
        let n = columns.first().map_or(0, Vec::len);
        let mut out = vec![0f32; n * d];
        for (j, column) in columns.iter().enumerate() {
            let (c, s) = (self.centre[j], self.scale[j]);
            for (i, &x) in column.iter().enumerate() {
                out[i * d + j] = (x - c) * s;
            }
        }
        out
    }
}

/// The raw view of a shard of the input read into `df` (a worker's part of the embedding
/// step): each of `spec.columns` cast to f32 as the scan casts it (a null is NaN), then centred
/// and scaled. `shard` names the shard in errors.
pub fn embed_frame(
    spec: &RawSpec,
    df: &polars::prelude::DataFrame,
    shard: &str,
) -> Result<Vec<f32>, StreamError> {
    use polars::prelude::DataType;
    let n = df.height();
    let mut columns = Vec::with_capacity(spec.columns.len());
    for name in &spec.columns {
        let failed = |what: String| {
            StreamError::Unsupported(format!("{shard}: feature column `{name}`: {what}"))
        };
        let column = df
            .column(name)
            .map_err(|_| failed("missing from the shard".into()))?;
        let values = column
            .cast(&DataType::Float32)
            .map_err(|e| failed(format!("cannot be read as numbers ({e})")))?;
        let values = values
            .f32()
            .map_err(|e| failed(format!("cannot be read as numbers ({e})")))?;
        let mut out = vec![f32::NAN; n];
        for (slot, v) in out.iter_mut().zip(values.iter()) {
            if let Some(v) = v {
                *slot = v;
            }
        }
        columns.push(out);
    }
    Ok(spec.apply(&columns))
}

/// A pretrained model's folder or file (None: the fetched one) and the device, as an
/// embedding step's settings carry them.
pub(super) fn write_model(w: &mut Writer, model: Option<&str>, device: DeviceChoice) {
    w.bool(model.is_some())
        .str(model.unwrap_or(""))
        .usize(position(&device));
}

/// What [`write_model`] wrote.
pub(super) fn read_model(
    r: &mut Reader<'_>,
) -> Result<(Option<String>, DeviceChoice), StreamError> {
    let has_model = r.bool()?;
    let model = r.str()?;
    let device = variant(r.usize()?, "the device")?;
    Ok((has_model.then_some(model), device))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_is_scaled_as_the_scan_scales_and_a_missing_column_is_named() {
        use polars::prelude::{Column, DataFrame};
        let spec = RawSpec {
            files: vec!["t.parquet".into()],
            columns: vec!["b".into(), "a".into()],
            centre: vec![1.0, 0.0],
            scale: vec![2.0, 0.5],
        };
        assert_eq!(RawSpec::decode(&spec.encode()).unwrap(), spec);
        let df = DataFrame::new(
            2,
            vec![
                Column::new("a".into(), [4.0f64, 6.0]),
                Column::new("b".into(), [Some(3i64), None]),
            ],
        )
        .unwrap();
        let out = embed_frame(&spec, &df, "t.parquet (row group 0)").unwrap();
        // Row-major in the spec's column order; a null is NaN.
        assert_eq!(out[..2], [4.0, 2.0]);
        assert!(out[2].is_nan());
        assert_eq!(out[3], 3.0);
        let only_a = df.select(["a"]).unwrap();
        let err = embed_frame(&spec, &only_a, "t.parquet (row group 3)").unwrap_err();
        let err = err.to_string();
        assert!(
            err.contains("row group 3") && err.contains("`b`") && err.contains("missing"),
            "{err}"
        );
    }
}
