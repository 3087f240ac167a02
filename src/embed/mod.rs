//! Embedders: turn a dataset into an `n x d` f32 tensor on a candle `Device`.
//!
//! - `raw`: standardised numeric columns, or pixels scaled to [0, 1];
//! - `probe`: a small network (MLP or CNN, candle-nn) trained on the dataset itself, whose
//!   penultimate activations are the representation spectral signatures and activation
//!   clustering were designed for;
//! - `precomputed`: vectors from an `.npy` file (or a vector column read as the table payload);
//! - `minilm`, `mobilenet_v2`: pretrained sentence and ImageNet models (`text.rs`,
//!   `images.rs`), not trained on the labels.
//!
//! Only usable rows are embedded (a label, and a payload without NaN, decode failure or missing
//! text); [`Subset`] says which, so scores map back to dataset rows.

mod bert;
mod conv;
mod cpu;
pub mod images;
pub mod mobilenet;
mod pool;
pub mod precomputed;
pub mod probe;
pub mod pth;
pub mod raw;
pub mod text;

use candle_core::Tensor;
use serde::Serialize;

use crate::dataset::{Dataset, ImageStatus, Payload, TextValue};

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("tensor operation failed while computing {what}")]
    Candle {
        what: &'static str,
        #[source]
        source: candle_core::Error,
    },
    #[error("{} embedding needs a numeric or image payload; text is embedded by a pretrained sentence model (the minilm view), or give --embeddings", .0)]
    Unsupported(&'static str),
    #[error("the {0} view needs the table in memory; a streamed table (over --memory-limit) has the raw view only")]
    OnDisk(&'static str),
    #[error("{}: {problem}", .path.display())]
    File {
        path: std::path::PathBuf,
        problem: String,
    },
    #[error("the {view} embedding of dataset row {row} is not finite (NaN or infinite); for the probe this means training diverged (try fewer --epochs)")]
    NonFinite { view: String, row: u32 },
    #[error("no row can be embedded: every row lacks a label or has an unusable payload ({0})")]
    NothingUsable(String),
    #[error(transparent)]
    Device(#[from] crate::device::DeviceError),
    #[error("{0}")]
    Text(String),
    /// The caller asked the run to stop ([`crate::progress::Progress::cancel_flag`]).
    #[error("interrupted")]
    Cancelled,
}

pub(crate) trait CandleContext<T> {
    fn context(self, what: &'static str) -> Result<T, EmbedError>;
}

impl<T> CandleContext<T> for candle_core::Result<T> {
    fn context(self, what: &'static str) -> Result<T, EmbedError> {
        self.map_err(|source| EmbedError::Candle { what, source })
    }
}

/// The rows that take part in embedding and detection, with their class indices.
#[derive(Debug, Clone, PartialEq)]
pub struct Subset {
    /// Dataset rows, ascending.
    pub rows: Vec<u32>,
    /// Class index of each row in `rows`.
    pub labels: Vec<u32>,
    pub n_classes: usize,
    /// Rows left out, and why (for the report).
    pub excluded: Vec<(u32, &'static str)>,
}

impl Subset {
    /// Rows with a label and a usable payload. Rows with validation errors that make them
    /// unusable are left out here, and reported, rather than guessed at.
    pub fn usable(dataset: &Dataset) -> Option<Subset> {
        let labels = dataset.labels.as_ref()?;
        let mut subset = Subset {
            rows: Vec::new(),
            labels: Vec::new(),
            n_classes: labels.classes.len(),
            excluded: Vec::new(),
        };
        for i in 0..dataset.len() {
            let problem = match (&labels.index[i], &dataset.payload) {
                (None, _) => Some("no label"),
                (_, Payload::Table(t)) if !t.row(i).iter().all(|v| v.is_finite()) => {
                    Some("a feature is null, NaN, infinite or not a number")
                }
                (_, Payload::Spilled(t)) if !t.finite[i] => {
                    Some("a feature is null, NaN, infinite or not a number")
                }
                (_, Payload::Images(img) | Payload::SpilledImages(img))
                    if matches!(img.status[i], ImageStatus::Failed(_)) =>
                {
                    Some("the image could not be decoded")
                }
                (_, Payload::Text(t)) if !matches!(t.values[i], TextValue::Text(_)) => {
                    Some("the text is missing or not UTF-8")
                }
                _ => None,
            };
            match (problem, labels.index[i]) {
                (None, Some(c)) => {
                    subset.rows.push(i as u32);
                    subset.labels.push(c);
                }
                (p, _) => subset.excluded.push((i as u32, p.unwrap_or("no label"))),
            }
        }
        Some(subset)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Which representation a matrix is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum View {
    /// Standardised features or [0, 1] pixels: not trained on the labels.
    Raw,
    /// Penultimate activations of a network trained on the (possibly poisoned) labels.
    Probe,
    /// Vectors supplied by the user.
    Precomputed,
    /// Sentence embeddings of a text column by a pretrained sentence-transformer
    /// (all-MiniLM-L6-v2 unless `--model` names another): not trained on the labels. For
    /// text it takes the place of `raw`.
    Minilm,
    /// ImageNet features of an image payload by torchvision's MobileNetV2 (1280-d, the
    /// classifier's input): not trained on the labels.
    MobilenetV2,
}

impl View {
    /// The name used in reports, column names and JSON (as serde writes it).
    pub fn name(self) -> &'static str {
        match self {
            View::Raw => "raw",
            View::Probe => "probe",
            View::Precomputed => "precomputed",
            View::Minilm => "minilm",
            View::MobilenetV2 => "mobilenet_v2",
        }
    }
}

/// An embedding of a subset's rows.
#[derive(Debug, Clone)]
pub struct Embedding {
    pub view: View,
    /// `subset.len() x d`, f32.
    pub matrix: Tensor,
    pub training: Option<probe::TrainingSummary>,
}

impl Embedding {
    pub fn dim(&self) -> usize {
        self.matrix.dims().get(1).copied().unwrap_or(0)
    }

    /// The matrix as row-major f32 on the host.
    pub fn to_host(&self) -> Result<Vec<f32>, EmbedError> {
        self.matrix
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .context("copying embeddings to the host")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_names_match_the_json() {
        for view in [
            View::Raw,
            View::Probe,
            View::Precomputed,
            View::Minilm,
            View::MobilenetV2,
        ] {
            assert_eq!(serde_json::to_value(view).unwrap(), view.name());
        }
    }
}
