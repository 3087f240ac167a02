//! From a dataset to detections: choose the usable rows, embed them in each view of the plan,
//! run the planned detectors on each view, and reach the verdict.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use crate::dataset::{Dataset, Payload};
use crate::detect::clustering::{self, ClusteringConfig};
use crate::detect::knn::{self, KnnConfig, Votes};
use crate::detect::shift::{self, ShiftConfig};
use crate::detect::spectral::{self, SpectralConfig};
use crate::detect::tokens::{self, TokenConfig};
use crate::detect::{Detection, Points};
use crate::embed::probe::ProbeConfig;
use crate::embed::{images, precomputed, probe, raw, text, EmbedError, Embedding, Subset, View};
use crate::progress::Progress;
use crate::verdict::{self, Verdict, VerdictConfig};
use candle_core::Tensor;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum DetectorKind {
    Spectral,
    Clustering,
    Knn,
}

/// The user's own vectors: an `.npy` file (`--embeddings`) or a matrix handed over in memory
/// (the Python package's `embeddings=`).
#[derive(Debug, Clone, PartialEq)]
pub enum Embeddings {
    Npy(PathBuf),
    Matrix(std::sync::Arc<HostMatrix>),
}

/// A row-major `rows x dim` matrix of f32 on the host, named in errors by `name`.
#[derive(Debug, Clone, PartialEq)]
pub struct HostMatrix {
    pub name: String,
    pub rows: usize,
    pub dim: usize,
    pub values: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DetectConfig {
    pub device: crate::device::DeviceChoice,
    /// Which detectors run on which view, in order.
    pub plan: Vec<(View, Vec<DetectorKind>)>,
    /// The vectors behind `View::Precomputed`, if that view is planned from them.
    pub embeddings: Option<Embeddings>,
    pub probe: ProbeConfig,
    pub spectral: SpectralConfig,
    pub clustering: ClusteringConfig,
    pub knn: KnnConfig,
    /// The shifted-copy test, run on the view label consistency is judged in.
    pub shift: ShiftConfig,
    /// The shared-token test, run on text with the votes of the view label consistency is
    /// judged in.
    pub tokens: TokenConfig,
    pub verdict: VerdictConfig,
    /// The pretrained model (`--model`): a sentence-transformer folder for text, MobileNetV2
    /// weights for images; None: the fetched, pinned one.
    pub model: Option<PathBuf>,
}

impl DetectConfig {
    /// The same settings with every seed (the probe's, clustering's, the shifted-copy test's)
    /// set to `seed`.
    pub fn reseeded(&self, seed: u64) -> DetectConfig {
        let mut config = self.clone();
        config.probe.seed = seed;
        config.clustering.seed = seed;
        config.shift.seed = seed;
        config
    }
}

/// One detector on one view, and how long it took.
#[derive(Debug)]
pub struct Run {
    pub detection: Detection,
    pub seconds: f64,
}

/// One computed view and how long it took.
#[derive(Debug)]
pub struct ViewRun {
    pub view: View,
    pub dim: usize,
    pub training: Option<crate::embed::probe::TrainingSummary>,
    /// The matrix, when it is held in memory (a streaming scan keeps it on disk only).
    pub embedding: Option<Embedding>,
    pub seconds: f64,
}

impl ViewRun {
    pub fn in_memory(embedding: Embedding, seconds: f64) -> Self {
        ViewRun {
            view: embedding.view,
            dim: embedding.dim(),
            training: embedding.training.clone(),
            embedding: Some(embedding),
            seconds,
        }
    }
}

#[derive(Debug)]
pub struct Analysis {
    /// `cpu` or `cuda`.
    pub device: &'static str,
    pub subset: Subset,
    pub views: Vec<ViewRun>,
    pub runs: Vec<Run>,
    pub verdict: Verdict,
    pub verdict_config: VerdictConfig,
    /// The view label consistency was judged in (and the shifted-copy test ran on), when
    /// k-NN ran.
    pub judged_view: Option<View>,
    /// The shifted-copy test's threshold, when the test ran.
    pub shift_threshold: Option<f64>,
    pub verdict_seconds: f64,
}

/// Why the shifted-copy test is not run on sentence vectors (see [`analyse`]).
pub(crate) const NO_SHIFT_ON_SENTENCES: &str = "the shifted-copy test did not run: it is not used on sentence vectors (the shared-token test looks for text triggers)";

/// The shared-token test of a text payload (`texts`), pooling the `judged` view's neighbour
/// votes: its run and the token groups the verdict reads. None without text, a judged view
/// or a threshold.
pub(crate) fn shared_tokens(
    texts: Option<&crate::dataset::Texts>,
    subset: &Subset,
    judged: Option<View>,
    votes: &[(View, Votes)],
    config: &tokens::TokenConfig,
) -> Option<(Run, tokens::TokenGroups)> {
    let texts = texts.filter(|_| config.threshold > 0.0)?;
    let (view, v) = votes.iter().find(|(v, _)| Some(*v) == judged)?;
    let t = Instant::now();
    let (detection, found) = tokens::run(texts, subset, *view, v, config);
    let run = Run {
        detection,
        seconds: t.elapsed().as_secs_f64(),
    };
    Some((run, found))
}

pub fn analyse(
    dataset: &Dataset,
    config: &DetectConfig,
    progress: &Progress,
) -> Result<Option<Analysis>, EmbedError> {
    let Some(subset) = Subset::usable(dataset) else {
        return Ok(None);
    };
    if subset.is_empty() {
        let why = subset.excluded.first().map_or("no rows", |e| e.1);
        return Err(EmbedError::NothingUsable(why.to_string()));
    }
    let (device, notice) = crate::device::select(config.device)?;
    let mut views = Vec::new();
    let mut runs = Vec::new();
    let mut votes: Vec<(View, Votes)> = Vec::new();
    let mut notes = Vec::new();
    if let Some(notice) = notice {
        eprintln!("poisongate: {notice}");
        notes.push(notice);
    }
    // A text column has no raw view: the sentence model's vectors take its place, and the
    // probe trains on them. Computed once, on the first view that needs them.
    let mut sentences: Option<Tensor> = None;
    let mut text_view =
        |texts: &crate::dataset::Texts, notes: &mut Vec<String>| -> Result<Embedding, EmbedError> {
            if let Some(matrix) = &sentences {
                return Ok(Embedding {
                    view: View::Minilm,
                    matrix: matrix.clone(),
                    training: None,
                });
            }
            let (embedding, truncated, limit) =
                text::embed_texts(texts, &subset, config.model.as_deref(), &device, progress)?;
            notes.extend(text::cut_note(&truncated, limit));
            sentences = Some(embedding.matrix.clone());
            Ok(embedding)
        };
    if config.plan.iter().any(|(view, _)| *view == View::Probe) {
        probe::check_feasible(&subset).map_err(|e| match e {
            EmbedError::Text(why) => EmbedError::Text(format!("{}: {why}", dataset.origin.path)),
            other => other,
        })?;
    }
    let stop_if_cancelled = || {
        if progress.cancelled() {
            Err(EmbedError::Cancelled)
        } else {
            Ok(())
        }
    };
    for (view, detectors) in &config.plan {
        stop_if_cancelled()?;
        let t = Instant::now();
        let embedding = match (view, &dataset.payload, &config.embeddings) {
            (View::Precomputed, _, Some(Embeddings::Npy(path))) => {
                precomputed::from_npy(path, dataset.len(), &subset, &device)?
            }
            (View::Precomputed, _, Some(Embeddings::Matrix(m))) => {
                precomputed::from_matrix(m, dataset.len(), &subset, &device)?
            }
            (View::Precomputed, Payload::Table(t), None) => {
                precomputed::from_table(t, &subset, &device)?
            }
            (View::Precomputed, _, None) => return Err(EmbedError::Unsupported("precomputed")),
            (View::Raw | View::Minilm, Payload::Text(texts), _) => text_view(texts, &mut notes)?,
            (View::Minilm, payload, _) => {
                return Err(EmbedError::Text(format!(
                "the minilm view embeds a text column (--text-col); this dataset's payload is {}",
                payload.kind()
            )))
            }
            (View::MobilenetV2, Payload::Images(pictures), _) => images::embed_images(
                pictures,
                &subset,
                config.model.as_deref(),
                &device,
                progress,
            )?,
            (View::MobilenetV2, payload, _) => {
                return Err(EmbedError::Text(format!(
                    "the mobilenet_v2 view embeds images; this dataset's payload is {}",
                    payload.kind()
                )))
            }
            (View::Raw, payload, _) => raw::embed(payload, &subset, &device)?,
            (View::Probe, Payload::Text(texts), _) => {
                let features = text_view(texts, &mut notes)?.matrix;
                probe::embed(
                    &dataset.payload,
                    Some(&features),
                    &subset,
                    &config.probe,
                    &device,
                    progress,
                )?
            }
            (View::Probe, payload, _) => {
                probe::embed(payload, None, &subset, &config.probe, &device, progress)?
            }
        };
        // For text, the planned `raw` is the minilm view: report what was computed.
        let view = embedding.view;
        let seconds = t.elapsed().as_secs_f64();
        let points = Points::new(&embedding, &subset)?;
        let name = view.name();
        if let Some(bad) = points.values().iter().position(|v| !v.is_finite()) {
            return Err(EmbedError::NonFinite {
                view: name.to_string(),
                row: subset.rows[bad / points.dim.max(1)],
            });
        }
        let first = points.row(0);
        let detectors: &[DetectorKind] = if (1..points.len()).all(|i| points.row(i) == first) {
            notes.push(format!(
                "every row has the same {name} embedding: no detector can tell samples apart in that view, so none ran on it"
            ));
            &[]
        } else {
            detectors
        };
        for detector in detectors {
            stop_if_cancelled()?;
            let t = Instant::now();
            let detection = match detector {
                DetectorKind::Spectral => spectral::run(&points, &config.spectral),
                DetectorKind::Clustering => clustering::run(&points, &config.clustering),
                DetectorKind::Knn => {
                    let (detection, v) = knn::run(&embedding, &points, &config.knn)?;
                    votes.push((view, v));
                    detection
                }
            };
            runs.push(Run {
                detection,
                seconds: t.elapsed().as_secs_f64(),
            });
        }
        // The host view borrows the embedding; release it before the embedding moves.
        drop(points);
        views.push(ViewRun::in_memory(embedding, seconds));
    }
    stop_if_cancelled()?;
    // The shifted-copy test runs on the view label consistency is judged in, leaving out what
    // the neighbour rule already flags.
    let (excluded, judged) = verdict::neighbour_flags(&subset, &votes, &config.verdict);
    let mut copies = None;
    // On every view but text's since the test's cut came from the halves' own spread (an
    // outlier among all classes' halves, at least five classes). With the fixed cuts alone it
    // fired on clean classes of learned and pretrained vectors (MiniLM on SpamAssassin, 2
    // classes: 48.8 % of the clean twin flagged; MobileNetV2 on the 8x8 digits: 2.6 %). On a
    // model's activations (the probe, --embeddings) it is what finds a learned trigger. A
    // text trigger barely moves a sentence vector, so on MiniLM it has nothing to find and
    // only topics to mistake for copies: the shared-token test covers text instead.
    let shift_view = judged
        .filter(|_| config.shift.threshold > 0.0)
        .filter(|&v| {
            let text = v == View::Minilm;
            if text {
                notes.push(NO_SHIFT_ON_SENTENCES.into());
            }
            !text
        })
        .and_then(|v| views.iter().find(|r| r.view == v))
        .and_then(|r| r.embedding.as_ref());
    if let Some(view) = shift_view {
        let t = Instant::now();
        let points = Points::new(view, &subset)?;
        let (detection, found) = shift::run(&points, &excluded, &config.shift);
        runs.push(Run {
            detection,
            seconds: t.elapsed().as_secs_f64(),
        });
        copies = Some(found);
    }
    let texts = match &dataset.payload {
        Payload::Text(texts) => Some(texts),
        _ => None,
    };
    let groups = shared_tokens(texts, &subset, judged, &votes, &config.tokens).map(|(run, g)| {
        runs.push(run);
        g
    });
    let t = Instant::now();
    let mut verdict = verdict::decide(
        &subset,
        &votes,
        copies.as_ref(),
        groups.as_ref(),
        &config.verdict,
    );
    verdict.notes.splice(0..0, notes);
    Ok(Some(Analysis {
        device: crate::device::name(&device),
        subset,
        views,
        runs,
        verdict,
        verdict_config: config.verdict.clone(),
        judged_view: judged,
        shift_threshold: copies.as_ref().map(|c| c.threshold),
        verdict_seconds: t.elapsed().as_secs_f64(),
    }))
}
