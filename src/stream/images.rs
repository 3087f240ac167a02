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

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use candle_core::Device;
use rayon::prelude::*;

use super::detect::{self, bytes, OnView};
use super::remote::Tasks;
use super::spill::Spill;
use super::wire::{Reader, Writer};
use super::{default_limit, trace, StreamError, ROW_BLOCK};
use crate::cli::config::{Columns, ScanConfig};
use crate::dataset::{
    Dataset, DecodedImage, Format, Ids, ImageStatus, Images, Labels, Origin, Payload,
};
use crate::device::DeviceChoice;
use crate::embed::images as pretrained;
use crate::embed::mobilenet::{ImageModel, FEATURE_DIM};
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

/// What a worker needs to decode and embed a shard: the view (None: decode only, for a scan
/// without detection), the common shape, and the network's weights and device.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSpec {
    pub view: Option<View>,
    pub shape: (u32, u32, u32),
    /// `--model`: None is the fetched MobileNetV2, checked against its pinned SHA-256.
    pub model: Option<String>,
    pub device: DeviceChoice,
}

impl ImageSpec {
    /// Values a row of the view holds.
    pub fn dim(&self) -> usize {
        let (w, h, c) = self.shape;
        match self.view {
            Some(View::Raw) => (w * h * c) as usize,
            Some(View::MobilenetV2) => FEATURE_DIM,
            _ => 0,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        let view = match self.view {
            None => 0,
            Some(View::Raw) => 1,
            Some(_) => 2,
        };
        let devices = [DeviceChoice::Auto, DeviceChoice::Cpu, DeviceChoice::Cuda];
        w.usize(view)
            .usize(self.shape.0 as usize)
            .usize(self.shape.1 as usize)
            .usize(self.shape.2 as usize)
            .bool(self.model.is_some())
            .str(self.model.as_deref().unwrap_or(""))
            .usize(devices.iter().position(|d| *d == self.device).unwrap_or(0));
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<ImageSpec, StreamError> {
        let mut r = Reader::new(bytes, "the image view's settings");
        let view = match r.usize()? {
            0 => None,
            1 => Some(View::Raw),
            2 => Some(View::MobilenetV2),
            v => {
                return Err(StreamError::Unsupported(format!(
                    "the image view's settings name view number {v}"
                )))
            }
        };
        let side = |r: &mut Reader<'_>| -> Result<u32, StreamError> {
            u32::try_from(r.usize()?).map_err(|_| {
                StreamError::Unsupported("the image view's settings hold a size past u32".into())
            })
        };
        let shape = (side(&mut r)?, side(&mut r)?, side(&mut r)?);
        let has_model = r.bool()?;
        let model = r.str()?;
        let device = match r.usize()? {
            1 => DeviceChoice::Cpu,
            2 => DeviceChoice::Cuda,
            _ => DeviceChoice::Auto,
        };
        r.end()?;
        if shape.0 == 0 || shape.1 == 0 || !matches!(shape.2, 1 | 3) {
            return Err(StreamError::Unsupported(format!(
                "the image view's settings ask for {}x{}x{} images",
                shape.0, shape.1, shape.2
            )));
        }
        Ok(ImageSpec {
            view,
            shape,
            model: has_model.then_some(model),
            device,
        })
    }
}

/// A shard: the number of its first image in the listing, and its files.
fn shard_item(first: usize, files: &[PathBuf]) -> Vec<u8> {
    let mut w = Writer::new();
    w.usize(first).usize(files.len());
    for f in files {
        w.str(&f.to_string_lossy());
    }
    w.finish()
}

/// A shard's answer: its first image, each image's status and the view's rows (zeros for an
/// image that could not be read).
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    first: usize,
    status: Vec<ImageStatus>,
    values: Vec<f32>,
}

impl Answer {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.usize(self.first).usize(self.status.len());
        for s in &self.status {
            match s {
                ImageStatus::Decoded(d) => {
                    w.bool(true)
                        .usize(d.width as usize)
                        .usize(d.height as usize)
                        .str(&d.color)
                        .usize(d.channels as usize)
                        .bool(d.lossy)
                        .u64((d.content_hash >> 64) as u64)
                        .u64(d.content_hash as u64);
                }
                ImageStatus::Failed(why) => {
                    w.bool(false).str(why);
                }
            }
        }
        w.f32s(&self.values);
        w.finish()
    }

    /// The answer in `bytes`, whose rows must hold `d` values each.
    fn decode(bytes: &[u8], d: usize) -> Result<Answer, StreamError> {
        let mut r = Reader::new(bytes, "an image shard's answer");
        let first = r.usize()?;
        let count = r.usize()?;
        let number = |r: &mut Reader<'_>| -> Result<u32, StreamError> {
            Ok(u32::try_from(r.usize()?).unwrap_or(u32::MAX))
        };
        let mut status = Vec::with_capacity(count.min(bytes.len()));
        for _ in 0..count {
            status.push(if r.bool()? {
                ImageStatus::Decoded(DecodedImage {
                    width: number(&mut r)?,
                    height: number(&mut r)?,
                    color: r.str()?,
                    channels: number(&mut r)?,
                    lossy: r.bool()?,
                    content_hash: ((r.u64()? as u128) << 64) | r.u64()? as u128,
                })
            } else {
                ImageStatus::Failed(r.str()?)
            });
        }
        let values = r.f32s()?;
        r.end()?;
        if values.len() != count * d {
            return Err(StreamError::Unsupported(format!(
                "the image shard at {first} answered {} values for {count} images of {d}",
                values.len()
            )));
        }
        Ok(Answer {
            first,
            status,
            values,
        })
    }
}

/// The view's rows of an answer (a test's view of a worker's output).
#[cfg(test)]
pub(super) fn answer_values(bytes: &[u8], d: usize) -> Result<Vec<f32>, StreamError> {
    Answer::decode(bytes, d).map(|a| a.values)
}

/// Decodes and embeds shards (a worker of the Ray engine keeps one, so that the network is
/// loaded once).
pub struct ImageWorker {
    spec: ImageSpec,
    device: Device,
    network: Option<ImageModel>,
}

impl ImageWorker {
    pub fn new(spec: &[u8]) -> Result<ImageWorker, StreamError> {
        ImageWorker::with_spec(ImageSpec::decode(spec)?)
    }

    fn with_spec(spec: ImageSpec) -> Result<ImageWorker, StreamError> {
        let failed = |e: String| StreamError::Tasks(format!("the mobilenet_v2 view: {e}"));
        let (device, network) = match spec.view {
            Some(View::MobilenetV2) => {
                let (device, _) =
                    crate::device::select(spec.device).map_err(|e| failed(e.to_string()))?;
                let network =
                    pretrained::load_network(spec.model.as_deref().map(Path::new), &device)
                        .map_err(|e| failed(e.to_string()))?;
                (device, Some(network))
            }
            _ => (Device::Cpu, None),
        };
        Ok(ImageWorker {
            spec,
            device,
            network,
        })
    }

    /// Decodes the shard in `item` (in parallel) and computes its view: the answer's bytes.
    pub fn run(&self, item: &[u8]) -> Result<Vec<u8>, StreamError> {
        let mut r = Reader::new(item, "an image shard");
        let first = r.usize()?;
        let files: Vec<PathBuf> = (0..r.usize()?)
            .map(|_| r.str().map(PathBuf::from))
            .collect::<Result<_, _>>()?;
        r.end()?;
        let (w, h, c) = self.spec.shape;
        let per = (w * h * c) as usize;
        let mut pixels = vec![0u8; per * files.len()];
        let status: Vec<ImageStatus> = pixels
            .par_chunks_mut(per)
            .zip(files.par_iter())
            .map(|(out, path)| decode::decode_item(&Encoded::File(path), self.spec.shape, out))
            .collect();
        let images = Images {
            width: w,
            height: h,
            channels: c,
            pixels,
            status,
        };
        let d = self.spec.dim();
        let mut values = vec![0f32; files.len() * d];
        let rows: Vec<u32> = (0..files.len() as u32)
            .filter(|&i| matches!(images.status[i as usize], ImageStatus::Decoded(_)))
            .collect();
        match (&self.network, self.spec.view) {
            (Some(network), Some(View::MobilenetV2)) => {
                let shard = format!("images {}..{}", first, first + files.len());
                let failed = |e: EmbedError| StreamError::Tasks(format!("{shard}: {e}"));
                let progress = Progress::new(false);
                let features =
                    pretrained::features(network, &images, &rows, &self.device, &progress)
                        .map_err(failed)?;
                let host = features
                    .flatten_all()
                    .and_then(|t| t.to_vec1::<f32>())
                    .map_err(|e| failed(EmbedError::Text(e.to_string())))?;
                for (i, &r) in rows.iter().enumerate() {
                    let r = r as usize;
                    values[r * d..(r + 1) * d].copy_from_slice(&host[i * d..(i + 1) * d]);
                }
            }
            (_, Some(View::Raw)) => {
                for &r in &rows {
                    let r = r as usize;
                    for (v, &p) in values[r * d..(r + 1) * d].iter_mut().zip(images.image(r)) {
                        *v = p as f32 / 255.0;
                    }
                }
            }
            _ => {}
        }
        Ok(Answer {
            first,
            status: images.status,
            values,
        }
        .encode())
    }
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
        match (tasks, &local) {
            (Some(tasks), _) => tasks.embed_shards(IMAGES_STAGE, &spec_bytes, items, &sink)?,
            (None, Some(worker)) => {
                for item in items {
                    if progress.cancelled() {
                        return Err(EmbedError::Cancelled.into());
                    }
                    sink(&worker.run(&item)?)?;
                }
            }
            (None, None) => unreachable!("a local worker exists without tasks"),
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
        (Some(_), ..) => detection::Outcome::Skipped(
            "the dataset has no label column (name one with --label); every detector compares samples within and across classes".into(),
        ),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_and_answers_round_trip() {
        let spec = ImageSpec {
            view: Some(View::MobilenetV2),
            shape: (32, 24, 3),
            model: Some("/m/mobilenet_v2".into()),
            device: DeviceChoice::Cuda,
        };
        assert_eq!(ImageSpec::decode(&spec.encode()).unwrap(), spec);
        let raw = ImageSpec {
            view: Some(View::Raw),
            model: None,
            device: DeviceChoice::Auto,
            ..spec.clone()
        };
        assert_eq!(ImageSpec::decode(&raw.encode()).unwrap(), raw);
        assert_eq!(raw.dim(), 32 * 24 * 3);
        let answer = Answer {
            first: 7,
            status: vec![
                ImageStatus::Failed("cannot read: gone".into()),
                ImageStatus::Decoded(DecodedImage {
                    width: 5,
                    height: 4,
                    color: "Rgba8".into(),
                    channels: 3,
                    lossy: true,
                    content_hash: (3u128 << 100) | 17,
                }),
            ],
            values: vec![0.0, 0.0, 0.5, 1.0],
        };
        assert_eq!(Answer::decode(&answer.encode(), 2).unwrap(), answer);
        let err = Answer::decode(&answer.encode(), 3).unwrap_err().to_string();
        assert!(err.contains("4 values for 2 images of 3"), "{err}");
        let mut short = answer.encode();
        short.pop();
        assert!(Answer::decode(&short, 2).is_err());
    }

    #[test]
    fn a_spec_with_an_impossible_shape_is_refused() {
        let spec = ImageSpec {
            view: None,
            shape: (8, 8, 2),
            model: None,
            device: DeviceChoice::Cpu,
        };
        let err = ImageSpec::decode(&spec.encode()).unwrap_err().to_string();
        assert!(err.contains("8x8x2"), "{err}");
    }
}
