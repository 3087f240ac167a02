//! The streaming scan of an image folder (`ROOT/<class>/<image>`), for folders whose pixels
//! and views would not fit in memory, and the Ray engine's image path.
//!
//! 1. **Listing and headers** (this process): the folder is listed as in memory, and every
//!    file's header read to choose the common size and colour, so that every image is brought
//!    to the size the in-memory scan would choose.
//! 2. **Shards** of at most [`SHARD`] images are decoded and embedded, each on its own: by this
//!    process, or by the Ray engine's workers, which keep the network loaded between shards
//!    ([`ImageWorker`]). A shard's answer is each image's status (its size, colour, content
//!    hash, or why it could not be read) and its rows of one view: the raw pixels scaled to
//!    [0, 1], or MobileNetV2's features. Rows go to a file in the work folder; no pixels are
//!    kept.
//! 3. **Validation** sees every status (undecodable images, mixed sizes and colours, exact
//!    duplicates by content hash), as in memory.
//! 4. **Detection** on the view on disk, with the streaming scan's per-class detectors, k-NN
//!    on the inverted file, the shifted-copy test and the verdict (`super::detect`).
//!
//! One view is computed: the first of the plan's that is `raw` or `mobilenet_v2`. The probe
//! would train on every image, and is left out; the report says so.

mod worker;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

#[cfg(test)]
pub(super) use self::worker::answer_values;
use self::worker::{shard_item, Answer};
pub use self::worker::{ImageSpec, ImageWorker};
use super::detect::{self, bytes, OnView};
use super::remote::Tasks;
use super::spill::Spill;
use super::{default_limit, trace, StreamError, ROW_BLOCK};
use crate::cli::config::{Columns, ScanConfig};
use crate::dataset::{Dataset, Format, Ids, ImageStatus, Images, Labels, Origin, Payload};
use crate::device::DeviceChoice;
use crate::embed::mobilenet::FEATURE_DIM;
use crate::embed::{EmbedError, Subset, View};
use crate::progress::Progress;
use crate::report::detection;
use crate::scan::Outcome;
use crate::source::decode::{self, Encoded};
use crate::source::{image_dir, Input, SourceError};
use crate::validate::schema::Schema;
use crate::validate::{self, Finding};
use crate::Error;

/// The stage name of a shard's decoding and embedding ([`ImageWorker::run`]).
pub const IMAGES_STAGE: &str = "images";

/// Images a shard holds at most: MobileNetV2 runs them in batches of 16, and a shard's answer
/// stays small (256 x 1280 f32 is 1.3 MiB).
pub const SHARD: usize = 256;

/// An image folder to stream: its listing and the size its images are brought to.
#[derive(Debug, Clone)]
pub struct ImagePlan {
    pub root: PathBuf,
    pub files: Vec<PathBuf>,
    pub ids: Vec<String>,
    pub classes: Vec<String>,
    /// `(width, height, channels)`.
    pub shape: (u32, u32, u32),
    pub estimate: u64,
    pub limit: u64,
}

/// Bytes an image folder's in-memory scan is estimated to hold at its peak: the decoded
/// pixels (1 byte a value), the raw view and the probe's copy of its input (4 each), the
/// MobileNetV2 features when that view is planned, and about 200 bytes an image for its id,
/// label, status, neighbours and scores.
pub fn in_memory_bytes(images: u64, pixels: u64, pretrained: bool) -> u64 {
    let features = if pretrained {
        FEATURE_DIM as u64 * 4
    } else {
        0
    };
    images.saturating_mul(
        pixels
            .saturating_mul(9)
            .saturating_add(features)
            .saturating_add(200),
    )
}

/// How an image folder is scanned, with the findings of its listing.
pub enum Planned {
    /// Its in-memory scan is estimated above the memory limit.
    Stream(ImagePlan, Vec<Finding>),
    /// Read into memory (decoded with the headers the plan read).
    InMemory(Dataset, Vec<Finding>),
}

/// How `config`'s input is scanned if it is an image folder (None otherwise, or where no
/// memory limit is known): streamed if its in-memory scan is estimated above the memory
/// limit, else read into memory. Reads every file's header once for both.
pub fn plan(config: &ScanConfig, progress: &Progress) -> Result<Option<Planned>, Error> {
    let Some(limit) = config.memory_limit.or_else(default_limit) else {
        return Ok(None);
    };
    let Some((plan, findings, headers)) = folder(config, limit, progress)? else {
        return Ok(None);
    };
    if plan.estimate > limit {
        return Ok(Some(Planned::Stream(plan, findings)));
    }
    let listing = image_dir::Listing {
        files: plan.files,
        ids: plan.ids,
        classes: plan.classes,
        findings: Vec::new(),
    };
    let (dataset, _) = image_dir::load_read(&plan.root, listing, headers, plan.shape, progress)?;
    Ok(Some(Planned::InMemory(dataset, findings)))
}

/// The plan of an image folder whose steps run as tasks (the Ray engine): it streams
/// whatever its size. None if the input is not an image folder.
pub fn plan_for_tasks(
    config: &ScanConfig,
    progress: &Progress,
) -> Result<Option<(ImagePlan, Vec<Finding>)>, Error> {
    let limit = config
        .memory_limit
        .or_else(default_limit)
        .unwrap_or(4 << 30);
    Ok(folder(config, limit, progress)?.map(|(plan, findings, _)| (plan, findings)))
}

/// Every file's header (or why it cannot be read), in the listing's order.
type Headers = Vec<Result<decode::Header, String>>;

fn folder(
    config: &ScanConfig,
    limit: u64,
    progress: &Progress,
) -> Result<Option<(ImagePlan, Vec<Finding>, Headers)>, Error> {
    let (input, mut findings) = crate::source::detect(&config.input.path)?;
    let Input::ImageFolder(root) = input else {
        return Ok(None);
    };
    if config.input.columns != Columns::default() {
        return Err(SourceError::ColumnsOnImageFolder(root).into());
    }
    let spinner = progress.spinner("listing images");
    let listing = image_dir::list(&root)?;
    spinner.finish_and_clear();
    let items: Vec<Encoded<'_>> = listing.files.iter().map(|p| Encoded::File(p)).collect();
    let headers = decode::read_headers(&items, progress);
    let shape = decode::common_shape(&headers, config.input.image_size).map_err(|problem| {
        SourceError::Images {
            path: root.clone(),
            problem,
        }
    })?;
    drop(items);
    let pretrained = config
        .detect
        .as_ref()
        .is_some_and(|d| d.plan.iter().any(|(v, _)| *v == View::MobilenetV2));
    let (w, h, c) = shape;
    let estimate = in_memory_bytes(
        listing.files.len() as u64,
        w as u64 * h as u64 * c as u64,
        pretrained,
    );
    findings.extend(listing.findings);
    let plan = ImagePlan {
        root,
        files: listing.files,
        ids: listing.ids,
        classes: listing.classes,
        shape,
        estimate,
        limit,
    };
    Ok(Some((plan, findings, headers)))
}

/// The view the streaming scan computes: the first of the plan's that is raw or
/// mobilenet_v2, with its detectors.
fn chosen(
    config: &crate::pipeline::DetectConfig,
) -> Option<(View, &[crate::pipeline::DetectorKind])> {
    config
        .plan
        .iter()
        .find(|(v, _)| matches!(v, View::Raw | View::MobilenetV2))
        .map(|(v, d)| (*v, d.as_slice()))
}

/// The streaming scan of `plan`'s image folder; `findings` are its listing's. With `tasks`,
/// the shards' decoding and embedding, the per-class detectors and the k-NN search run as
/// their tasks.
pub fn scan(
    config: &ScanConfig,
    declared: Option<&Schema>,
    plan: ImagePlan,
    mut findings: Vec<Finding>,
    tasks: Option<&dyn Tasks>,
    progress: &Progress,
) -> Result<Outcome, Error> {
    let parent = config.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let work = tempfile::Builder::new()
        .prefix("poisongate-")
        .tempdir_in(&parent)
        .map_err(|e| StreamError::io(&parent, e))?;
    findings.extend(crate::scan::image_folder_schema(declared));
    let n = plan.files.len();
    let (w, h, c) = plan.shape;
    let view = match &config.detect {
        None => None,
        Some(detect) => Some(chosen(detect).ok_or_else(|| {
            StreamError::Unsupported(format!(
                "{}: this image folder is streamed (its in-memory scan was estimated at {}, over the memory limit of {}), and a streaming scan of images computes the raw or mobilenet_v2 view; run it with --embedder auto, raw or mobilenet_v2, or raise --memory-limit",
                plan.root.display(), bytes(plan.estimate), bytes(plan.limit)
            ))
        })?),
    };
    let spec = ImageSpec {
        view: view.map(|(v, _)| v),
        shape: plan.shape,
        model: config
            .detect
            .as_ref()
            .and_then(|d| d.model.as_ref())
            .map(|m| m.display().to_string()),
        device: config
            .detect
            .as_ref()
            .map_or(DeviceChoice::Cpu, |d| d.device),
    };
    let d = spec.dim();
    // A batch handed to tasks exists several times at once in this process (see the table's
    // streaming scan).
    let share = if tasks.is_some() { 16 } else { 4 };
    let budget = (plan.limit / share) as usize;
    let row_bytes = (d * 4).max((w * h * c) as usize).max(1);
    // A shard's rows within a 32nd of the limit, with or without tasks (so that both give
    // the same shards); a multiple of MobileNetV2's batch where it can be, so that the
    // batches are the in-memory scan's when every image decodes.
    let shard = match (plan.limit as usize / 32 / row_bytes).clamp(1, SHARD) {
        s if s >= 16 => s / 16 * 16,
        s => s,
    };

    // 1. Every shard decoded and embedded; the statuses kept, the rows written to disk.
    let t = Instant::now();
    let all = (d > 0)
        .then(|| Spill::create(&work.path().join("images.f32"), n, d))
        .transpose()?;
    let status = Mutex::new(vec![None::<ImageStatus>; n]);
    let bar = progress.bar(n as u64, "decoding images");
    let sink = |answer: &[u8]| -> Result<(), StreamError> {
        let a = Answer::decode(answer, d)?;
        let count = a.status.len();
        if a.first + count > n {
            return Err(StreamError::Unsupported(format!(
                "the image shard at {} answered {count} images: past the folder's {n}",
                a.first
            )));
        }
        if let Some(all) = &all {
            all.write_rows(a.first, &a.values)?;
        }
        let mut slots = status.lock().unwrap_or_else(|e| e.into_inner());
        for (slot, s) in slots[a.first..a.first + count].iter_mut().zip(a.status) {
            if slot.is_some() {
                return Err(StreamError::Unsupported(format!(
                    "the image shards do not cover the folder once: image {} came twice",
                    a.first
                )));
            }
            *slot = Some(s);
        }
        bar.inc(count as u64);
        Ok(())
    };
    let spec_bytes = spec.encode();
    // The weights are loaded here first also when workers compute the view: a missing or
    // wrong file is then one error naming it, before any work is handed out.
    let local = match (tasks, spec.view) {
        (Some(_), Some(View::MobilenetV2)) => {
            drop(ImageWorker::with_spec(spec.clone())?);
            None
        }
        (Some(_), _) => None,
        (None, _) => Some(ImageWorker::with_spec(spec.clone())?),
    };
    // Waves of shards whose paths fit in a quarter of the budget: the items are all held.
    let mut wave: Vec<Vec<u8>> = Vec::new();
    let mut held = 0;
    let starts: Vec<usize> = (0..n).step_by(shard).collect();
    for (i, &start) in starts.iter().enumerate() {
        let item = shard_item(start, &plan.files[start..(start + shard).min(n)]);
        held += item.len();
        wave.push(item);
        if held < budget / 4 && i + 1 < starts.len() {
            continue;
        }
        let items = std::mem::take(&mut wave);
        held = 0;
        if let Some(tasks) = tasks {
            tasks.embed_shards(IMAGES_STAGE, &spec_bytes, items, &sink)?;
        } else if let Some(worker) = &local {
            for item in items {
                if progress.cancelled() {
                    return Err(EmbedError::Cancelled.into());
                }
                sink(&worker.run(&item)?)?;
            }
        }
    }
    bar.finish_and_clear();
    drop(local);
    let status: Vec<ImageStatus> = status
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            s.ok_or_else(|| {
                StreamError::Unsupported(format!(
                    "the image shards do not cover the folder: image {i} ({}) has no answer",
                    plan.ids[i]
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    let view_seconds = t.elapsed().as_secs_f64();
    trace("images");

    // 2. Validation on the statuses.
    let dataset = Dataset {
        origin: Origin {
            path: plan.root.display().to_string(),
            format: Format::ImageFolder,
            files: n,
            ignored_columns: Vec::new(),
        },
        ids: Ids::Paths(plan.ids),
        labels: Some(Labels::from_names(
            "<folder>".into(),
            plan.classes.into_iter().map(Some).collect(),
        )),
        payload: Payload::SpilledImages(Images {
            width: w,
            height: h,
            channels: c,
            pixels: Vec::new(),
            status,
        }),
    };
    findings.extend(validate::rows::check(&dataset, declared));
    validate::finish(&mut findings, &dataset, config.strict);
    trace("validation");

    // 3. Detection on the subset's rows of the view.
    let detection = match (&config.detect, Subset::usable(&dataset), view, all) {
        (None, ..) => detection::Outcome::NotRequested,
        (Some(detect), Some(subset), Some((which, detectors)), Some(all)) => {
            if subset.is_empty() {
                let why = subset.excluded.first().map_or("no rows", |e| e.1);
                return Err(EmbedError::NothingUsable(why.to_string()).into());
            }
            let reason = if plan.estimate > plan.limit {
                format!("over the memory limit of {}", bytes(plan.limit))
            } else {
                format!(
                    "under the memory limit of {}, streamed because its steps ran as tasks",
                    bytes(plan.limit)
                )
            };
            let mut notes = vec![format!(
                "streamed: the in-memory scan of {n} images at {w}x{h}x{c} was estimated at {}, {reason}; the images were decoded and embedded in shards of {shard} and the {} view kept on disk",
                bytes(plan.estimate), which.name()
            )];
            for (other, _) in detect.plan.iter().filter(|(v, _)| *v != which) {
                notes.push(format!(
                    "the {} view was not computed: a streaming scan of images computes one view, raw or mobilenet_v2",
                    other.name()
                ));
            }
            if let Some(tasks) = tasks {
                notes.push(format!(
                    "the images' decoding and {} view, the per-class detectors and the k-NN search ran as tasks on {}; the listing, validation, the partition and the verdict ran in this process",
                    which.name(),
                    tasks.describe()
                ));
            }
            let (keep, rows) = (&subset.rows, &subset.rows);
            let on_view = subset_view(all, keep, rows, which, work.path(), view_seconds)?;
            let analysis = detect::detect_view(
                subset,
                on_view,
                None,
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
        (Some(_), ..) => detection::Outcome::Skipped(crate::scan::NO_LABELS.into()),
    };
    Ok(crate::scan::outcome(config, dataset, findings, detection))
}

/// The rows `keep` (ascending) of `all`, in a file of their own unless they are every row;
/// fails on a row that is not finite, naming its dataset row (`dataset_rows`, one a kept
/// row).
pub(super) fn subset_view(
    all: Spill,
    keep: &[u32],
    dataset_rows: &[u32],
    which: View,
    work: &Path,
    seconds: f64,
) -> Result<OnView, Error> {
    let d = all.dim;
    let whole = keep.len() == all.rows;
    let view = if whole {
        None
    } else {
        Some(Spill::create(&work.join("view.f32"), keep.len(), d)?)
    };
    let mut first: Option<Vec<f32>> = None;
    let mut all_same = true;
    let mut non_finite = None;
    let mut cursor = 0usize;
    let mut kept = Vec::new();
    all.for_blocks(ROW_BLOCK, |start, block| {
        let end = start + block.len() / d;
        let from = cursor;
        kept.clear();
        while cursor < keep.len() && (keep[cursor] as usize) < end {
            let r = keep[cursor] as usize - start;
            let row = &block[r * d..(r + 1) * d];
            if non_finite.is_none() && row.iter().any(|v| !v.is_finite()) {
                non_finite = Some(dataset_rows[cursor]);
            }
            match &first {
                None => first = Some(row.to_vec()),
                Some(f) => all_same &= f.as_slice() == row,
            }
            if view.is_some() {
                kept.extend_from_slice(row);
            }
            cursor += 1;
        }
        match &view {
            Some(view) => view.write_rows(from, &kept),
            None => Ok(()),
        }
    })?;
    if let Some(row) = non_finite {
        return Err(EmbedError::NonFinite {
            view: which.name().to_string(),
            row,
        }
        .into());
    }
    let file = match view {
        Some(view) => {
            all.remove()?;
            view
        }
        None => all,
    };
    Ok(OnView {
        view: which,
        file,
        dim: d,
        seconds,
        all_same,
    })
}
