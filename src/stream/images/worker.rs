//! A worker of the image step: what it is told ([`ImageSpec`]), a shard's message and answer,
//! and [`ImageWorker`], which decodes a shard and computes its view.

use std::path::{Path, PathBuf};

use candle_core::Device;
use rayon::prelude::*;

use super::super::embedding::{read_model, write_model};
use super::super::wire::{Reader, Writer};
use super::super::StreamError;
use crate::dataset::{DecodedImage, ImageStatus, Images};
use crate::device::DeviceChoice;
use crate::embed::images as pretrained;
use crate::embed::mobilenet::{ImageModel, FEATURE_DIM};
use crate::embed::{EmbedError, View};
use crate::progress::Progress;
use crate::source::decode::{self, Encoded};

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
        w.usize(view)
            .usize(self.shape.0 as usize)
            .usize(self.shape.1 as usize)
            .usize(self.shape.2 as usize);
        write_model(&mut w, self.model.as_deref(), self.device);
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
        let (model, device) = read_model(&mut r)?;
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
            model,
            device,
        })
    }
}

/// A shard: the number of its first image in the listing, and its files.
pub(super) fn shard_item(first: usize, files: &[PathBuf]) -> Vec<u8> {
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
pub(super) struct Answer {
    pub(super) first: usize,
    pub(super) status: Vec<ImageStatus>,
    pub(super) values: Vec<f32>,
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
    pub(super) fn decode(bytes: &[u8], d: usize) -> Result<Answer, StreamError> {
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
pub(in crate::stream) fn answer_values(bytes: &[u8], d: usize) -> Result<Vec<f32>, StreamError> {
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

    pub(super) fn with_spec(spec: ImageSpec) -> Result<ImageWorker, StreamError> {
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
