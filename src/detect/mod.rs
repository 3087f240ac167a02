//! Detectors: embeddings + labels -> one score per sample (higher = more suspicious) and, where
//! the method has one, its own flag rule. Spectral signatures (Tran, Li, Madry 2018),
//! activation clustering (Chen et al. 2018) and deep k-NN label consistency (Peri et al. 2020),
//! plus the shifted-copy test (`shift/`) that tells which half of a class was planted and,
//! for text, the shared-token test (`tokens/`) that pools neighbour evidence over a token.
//! The per-class statistics each method computed are kept for the report.

pub mod clustering;
pub mod exact;
pub mod hnsw;
pub mod ica;
pub mod kmeans;
pub mod knn;
pub mod linalg;
pub mod metrics;
pub(crate) mod partition;
pub mod robust;
pub mod shift;
pub mod spectral;
pub mod stats;
pub mod tokens;

use serde::Serialize;

use crate::embed::{EmbedError, Embedding, Subset, View};

/// An embedding's values on the host, with its subset: what the CPU reference implementations
/// read. A CPU tensor is borrowed, not copied (the embedding matrix is the working set, and
/// the detectors must stay within twice its size); a GPU tensor is copied once.
pub struct Points<'a> {
    host: Host<'a>,
    pub dim: usize,
    pub subset: &'a Subset,
    pub view: View,
}

enum Host<'a> {
    Borrowed {
        storage: candle_core::StorageRef<'a>,
        start: usize,
        end: usize,
    },
    Owned(Vec<f32>),
}

impl<'a> Points<'a> {
    pub fn new(embedding: &'a Embedding, subset: &'a Subset) -> Result<Self, EmbedError> {
        let (storage, layout) = embedding.matrix.storage_and_layout();
        let borrowed = match (&*storage, layout.contiguous_offsets()) {
            (candle_core::Storage::Cpu(cpu), Some((start, end))) => {
                cpu.as_slice::<f32>().is_ok().then_some((start, end))
            }
            _ => None,
        };
        let host = match borrowed {
            Some((start, end)) => Host::Borrowed {
                storage,
                start,
                end,
            },
            None => {
                drop(storage);
                Host::Owned(embedding.to_host()?)
            }
        };
        Ok(Points {
            host,
            dim: embedding.dim(),
            subset,
            view: embedding.view,
        })
    }

    /// Points from row-major host values (tests, and callers that already hold them).
    pub fn from_vec(values: Vec<f32>, dim: usize, subset: &'a Subset, view: View) -> Self {
        Points {
            host: Host::Owned(values),
            dim,
            subset,
            view,
        }
    }

    /// All values, row-major `n x d`.
    pub fn values(&self) -> &[f32] {
        match &self.host {
            Host::Borrowed {
                storage,
                start,
                end,
            } => match &**storage {
                candle_core::Storage::Cpu(cpu) => &cpu
                    .as_slice::<f32>()
                    .expect("checked to be f32 in Points::new")[*start..*end],
                _ => unreachable!("only CPU storage is borrowed"),
            },
            Host::Owned(v) => v,
        }
    }

    pub fn len(&self) -> usize {
        self.subset.len()
    }

    pub fn is_empty(&self) -> bool {
        self.subset.is_empty()
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.values()[i * self.dim..(i + 1) * self.dim]
    }

    /// Positions (into the subset) of each class's members.
    pub fn classes(&self) -> Vec<Vec<u32>> {
        let mut members = vec![Vec::new(); self.subset.n_classes];
        for (i, &c) in self.subset.labels.iter().enumerate() {
            members[c as usize].push(i as u32);
        }
        members
    }
}

/// One detector's result over the subset.
#[derive(Debug, Clone, Serialize)]
pub struct Detection {
    pub detector: &'static str,
    pub view: View,
    /// Parameters that shaped the result, as `name=value` pairs for the report.
    pub parameters: Vec<(String, String)>,
    #[serde(skip)]
    pub scores: Vec<f32>,
    /// The method's own flag rule, where it has one that needs no poison rate or was given
    /// one.
    #[serde(skip)]
    pub flags: Vec<bool>,
    pub classes: Vec<ClassStatistic>,
}

/// What a detector saw in one class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassStatistic {
    pub class: u32,
    pub size: usize,
    pub statistic: &'static str,
    pub value: f64,
    /// The method's threshold on `value`, where it has one.
    pub threshold: Option<f64>,
    /// Samples of this class that the method's own rule flags.
    pub flagged: usize,
}
