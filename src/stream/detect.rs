//! The streaming scan's detection (see the module note of `stream`): the raw view written to
//! disk, the per-class detectors run a batch of classes at a time with the in-memory code, k-NN
//! on the inverted file on disk, and the verdict.

use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use super::classes::{assemble, per_class, shifted_copies};
use super::remote::{self, Job, RawSpec, Tasks};
use super::spill::Spill;
use super::{for_row_blocks, ivf, trace, Plan, StreamError, ROW_BLOCK};
use crate::dataset::{Dataset, Texts};
use crate::detect::knn::NeighbourIndex;
use crate::detect::{clustering, knn, spectral, Detection};
use crate::embed::{raw, EmbedError, Subset, View};
use crate::pipeline::{
    shared_tokens, Analysis, DetectConfig, DetectorKind, Run, ViewRun, NO_SHIFT_ON_SENTENCES,
};
use crate::progress::Progress;
use crate::verdict;
use crate::Error;

/// A size for a message: "3.0 GiB", "512.0 MiB", "1.0 KiB", "12 B".
pub(super) fn bytes(b: u64) -> String {
    let units = [
        (1u64 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ];
    units
        .iter()
        .find(|(size, _)| b >= *size)
        .map_or(format!("{b} B"), |(size, unit)| {
            format!("{:.1} {unit}", b as f64 / *size as f64)
        })
}

#[allow(clippy::too_many_arguments)]
pub(super) fn analyse(
    dataset: &Dataset,
    columns: Spill,
    subset: Subset,
    config: &DetectConfig,
    plan: &Plan,
    work: &Path,
    budget: usize,
    tasks: Option<&dyn Tasks>,
    progress: &Progress,
) -> Result<Analysis, Error> {
    if subset.is_empty() {
        let why = subset.excluded.first().map_or("no rows", |e| e.1);
        return Err(EmbedError::NothingUsable(why.to_string()).into());
    }
    let mut notes = vec![format!(
        "streamed: the in-memory scan of {} rows x {} features was estimated at {}, over the memory limit of {} (--memory-limit); the columns were read one at a time and the raw view kept on disk",
        plan.rows, plan.features, bytes(plan.estimate), bytes(plan.limit)
    )];
    let Some((_, detectors)) = config.plan.iter().find(|(v, _)| *v == View::Raw) else {
        return Err(StreamError::Unsupported(format!(
            "{}: this table is streamed (its in-memory scan was estimated at {}, over the memory limit of {}), and a streaming scan computes the raw view only; run it with --embedder auto or raw, or raise --memory-limit",
            dataset.origin.path, bytes(plan.estimate), bytes(plan.limit)
        ))
        .into());
    };
    for (view, _) in config.plan.iter().filter(|(v, _)| *v != View::Raw) {
        notes.push(format!(
            "the {} view was not computed: a streaming scan computes the raw view only",
            view.name()
        ));
    }
    if let Some(tasks) = tasks {
        notes.push(format!(
            "the raw view, the per-class detectors and the k-NN search ran as tasks on {}; validation, the partition and the verdict ran in this process",
            tasks.describe()
        ));
    }
    if config.device == crate::device::DeviceChoice::Cuda {
        notes.push("--device cuda was not used: a streaming scan runs on the CPU".into());
    }

    // The raw view, on disk.
    let t = Instant::now();
    // One column a row of `columns`, each of every dataset row.
    let (d, n) = (columns.rows, columns.dim);
    let mut centre = vec![0f32; d];
    let mut scale = vec![0f32; d];
    let mut column = vec![0f32; n];
    let mut picked = Vec::with_capacity(subset.len());
    for j in 0..d {
        columns.read_rows(j, &mut column)?;
        picked.clear();
        picked.extend(subset.rows.iter().map(|&r| column[r as usize]));
        (centre[j], scale[j]) = raw::column_scale(&mut picked);
    }
    drop((column, picked));
    let view = Spill::create(&work.join("raw.f32"), subset.len(), d)?;
    let (all_same, non_finite) = match tasks {
        Some(tasks) => {
            // The columns file is not needed: the tasks read the input.
            let spec = RawSpec {
                files: plan
                    .input
                    .files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect(),
                columns: match &dataset.payload {
                    crate::dataset::Payload::Spilled(table) => table.columns.clone(),
                    _ => Vec::new(),
                },
                centre,
                scale,
            };
            embed_by(tasks, &spec, &view, &subset, n)?
        }
        None => {
            let mut cursor = 0usize;
            let mut scaled = Vec::new();
            let mut first: Option<Vec<f32>> = None;
            let mut all_same = true;
            let mut non_finite = None;
            for_row_blocks(&columns, d, n, |start, block| {
                scaled.clear();
                let end = start + block.len() / d;
                let from = cursor;
                while cursor < subset.len() && (subset.rows[cursor] as usize) < end {
                    let r = subset.rows[cursor] as usize - start;
                    let at = scaled.len();
                    scaled.extend(
                        block[r * d..(r + 1) * d]
                            .iter()
                            .zip(&centre)
                            .zip(&scale)
                            .map(|((&x, c), s)| (x - c) * s),
                    );
                    let out = &scaled[at..];
                    if non_finite.is_none() && out.iter().any(|v| !v.is_finite()) {
                        non_finite = Some(subset.rows[cursor]);
                    }
                    match &first {
                        None => first = Some(out.to_vec()),
                        Some(f) => all_same &= f.as_slice() == out,
                    }
                    cursor += 1;
                }
                view.write_rows(from, &scaled)
            })?;
            (all_same, non_finite)
        }
    };
    // The columns are not read again: their file goes now, not at the end.
    columns.remove()?;
    if let Some(row) = non_finite {
        return Err(EmbedError::NonFinite {
            view: View::Raw.name().to_string(),
            row,
        }
        .into());
    }
    let view_seconds = t.elapsed().as_secs_f64();
    trace("raw view");
    let on_view = OnView {
        view: View::Raw,
        file: view,
        dim: d,
        seconds: view_seconds,
        all_same,
    };
    detect_view(
        subset, on_view, None, detectors, config, notes, work, budget, tasks, progress,
    )
}

/// A view of the subset's rows, on disk, as the per-class detectors and k-NN read it.
pub(super) struct OnView {
    pub view: View,
    pub file: Spill,
    pub dim: usize,
    /// Seconds it took to compute.
    pub seconds: f64,
    /// Whether every row is the same (no detector can then tell rows apart).
    pub all_same: bool,
}

/// `detectors` on a view on disk, then the shifted-copy test (the shared-token test for
/// `texts`) and the verdict; `notes` lead the verdict's.
#[allow(clippy::too_many_arguments)]
pub(super) fn detect_view(
    subset: Subset,
    on_view: OnView,
    texts: Option<&Texts>,
    detectors: &[DetectorKind],
    config: &DetectConfig,
    mut notes: Vec<String>,
    work: &Path,
    budget: usize,
    tasks: Option<&dyn Tasks>,
    progress: &Progress,
) -> Result<Analysis, Error> {
    let OnView {
        view: which,
        file: view,
        dim: d,
        seconds: view_seconds,
        all_same,
    } = on_view;
    let detectors: &[DetectorKind] = if all_same {
        notes.push(format!("every row has the same {} embedding: no detector can tell samples apart in that view, so none ran on it", which.name()));
        &[]
    } else {
        detectors
    };

    let all: Vec<usize> = (0..subset.n_classes).collect();
    // A per-class detector over every class of the view on disk.
    let by_class = |detector: &'static str,
                    parameters: Vec<(String, String)>,
                    job: Job|
     -> Result<Detection, StreamError> {
        let none = |_: usize, _: &[u32]| Vec::new();
        let answers = per_class(
            progress,
            &view,
            &subset,
            budget,
            &all,
            &[],
            &job,
            none,
            tasks,
        )?;
        let outcomes = answers
            .into_iter()
            .map(|(c, rows, answer)| Ok((c, rows, remote::read_scored(&answer)?)))
            .collect::<Result<Vec<_>, StreamError>>()?;
        Ok(assemble(detector, which, parameters, &subset, outcomes))
    };
    let mut runs = Vec::new();
    let mut votes = Vec::new();
    for detector in detectors {
        if progress.cancelled() {
            return Err(EmbedError::Cancelled.into());
        }
        let t = Instant::now();
        let detection = match detector {
            DetectorKind::Knn => {
                if config.knn.index != NeighbourIndex::Ivf {
                    notes.push(format!(
                        "k-NN used the inverted-file search (--knn-index {} applies in memory): a streaming scan searches the file on disk, and states the recall it measured",
                        format!("{:?}", config.knn.index).to_lowercase()
                    ));
                }
                let k = config.knn.k.min(subset.len().saturating_sub(1));
                let spinner = progress.spinner("k-NN (inverted file on disk)");
                let (nn, report) = ivf::neighbours(
                    &view,
                    k,
                    config.knn.probe,
                    config.knn.min_recall,
                    work,
                    tasks,
                    budget,
                    progress,
                )?;
                spinner.finish_and_clear();
                let (detection, v) = knn::judge(nn, &subset, k, NeighbourIndex::Ivf, report, which);
                votes.push((which, v));
                detection
            }
            DetectorKind::Clustering => by_class(
                "clustering",
                clustering::parameters(&config.clustering),
                Job::Clustering(config.clustering.clone()),
            )?,
            DetectorKind::Spectral => by_class(
                "spectral",
                spectral::parameters(&config.spectral),
                Job::Spectral(config.spectral.clone()),
            )?,
        };
        trace(detection.detector);
        runs.push(Run {
            detection,
            seconds: t.elapsed().as_secs_f64(),
        });
    }

    // The shifted-copy test on the judged view (this view), class by class; not on sentence
    // vectors, as in memory (`crate::pipeline`).
    let (excluded, judged) = verdict::neighbour_flags(&subset, &votes, &config.verdict);
    let mut copies = None;
    let text = which == View::Minilm;
    if judged == Some(which) && config.shift.threshold > 0.0 && text {
        notes.push(NO_SHIFT_ON_SENTENCES.into());
    }
    if judged == Some(which) && config.shift.threshold > 0.0 && !text {
        let t = Instant::now();
        let (detection, found) = shifted_copies(
            progress,
            which,
            &view,
            &subset,
            &excluded,
            budget,
            &config.shift,
            tasks,
        )?;
        runs.push(Run {
            detection,
            seconds: t.elapsed().as_secs_f64(),
        });
        copies = Some(found);
    }
    trace("shift");
    // The shared-token test: text only, on the judged view's neighbour votes, as in memory.
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
    trace("verdict");
    Ok(Analysis {
        device: "cpu",
        subset,
        views: vec![ViewRun {
            view: which,
            dim: d,
            training: None,
            embedding: None,
            seconds: view_seconds,
        }],
        runs,
        verdict,
        verdict_config: config.verdict.clone(),
        judged_view: judged,
        shift_threshold: copies.as_ref().map(|c| c.threshold),
        verdict_seconds: t.elapsed().as_secs_f64(),
    })
}

/// The raw view computed by `tasks` (each shard of the input's `n` rows), written to `view`
/// (the subset's rows): whether every row is the same, and the first dataset row whose view
/// is not finite. Fails unless the shards cover every row once.
fn embed_by(
    tasks: &dyn Tasks,
    spec: &RawSpec,
    view: &Spill,
    subset: &Subset,
    n: usize,
) -> Result<(bool, Option<u32>), StreamError> {
    let d = spec.columns.len();
    let shards = Mutex::new(Vec::new());
    let non_finite = Mutex::new(None::<u32>);
    let sink = |first: usize, values: &[f32]| -> Result<(), StreamError> {
        if d == 0 || values.len() % d != 0 {
            return Err(StreamError::Unsupported(format!(
                "the raw view of the shard at row {first} has {} values, not rows of {d}",
                values.len()
            )));
        }
        let rows = values.len() / d;
        if first + rows > n {
            return Err(StreamError::Unsupported(format!(
                "the raw view of the shard at row {first} has {rows} rows: past the input's {n}"
            )));
        }
        let from = subset.rows.partition_point(|&r| (r as usize) < first);
        let to = subset
            .rows
            .partition_point(|&r| (r as usize) < first + rows);
        let mut kept = Vec::with_capacity((to - from) * d);
        let mut bad = None;
        for &r in &subset.rows[from..to] {
            let i = r as usize - first;
            let row = &values[i * d..(i + 1) * d];
            if bad.is_none() && row.iter().any(|v| !v.is_finite()) {
                bad = Some(r);
            }
            kept.extend_from_slice(row);
        }
        view.write_rows(from, &kept)?;
        if let Some(r) = bad {
            let mut worst = non_finite.lock().unwrap_or_else(|e| e.into_inner());
            *worst = Some(worst.map_or(r, |w| w.min(r)));
        }
        shards
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((first, rows));
        Ok(())
    };
    tasks.embed(spec, &sink)?;
    let mut shards = shards.into_inner().unwrap_or_else(|e| e.into_inner());
    shards.sort_unstable();
    let mut next = 0;
    for &(first, rows) in &shards {
        if first != next {
            return Err(StreamError::Unsupported(format!(
                "the raw view's shards do not cover the input once: one starts at row {first}, the next row due was {next}"
            )));
        }
        next += rows;
    }
    if next != n {
        return Err(StreamError::Unsupported(format!(
            "the raw view's shards cover {next} of the input's {n} rows"
        )));
    }
    // Whether every row is the first one, in one pass.
    let mut first = vec![0f32; d];
    view.read_rows(0, &mut first)?;
    let mut all_same = true;
    view.for_blocks(ROW_BLOCK, |_, block| {
        all_same &= block.chunks(d).all(|row| row == first.as_slice());
        Ok(())
    })?;
    Ok((
        all_same,
        non_finite.into_inner().unwrap_or_else(|e| e.into_inner()),
    ))
}
