//! The `mobilenet_v2` view of an image payload: every usable image through torchvision's
//! ImageNet MobileNetV2 ([`super::mobilenet`]), 1280-d penultimate features. It was not
//! trained on the dataset's labels, so like the raw view it keeps a relabelled sample among
//! its true class; unlike pixels, it places images by what they show.
//!
//! The images are the dataset's decoded pixels, at the common size the source brought them
//! to (grey images have their channel repeated for the RGB network). They are resized and
//! cropped as torchvision does for these weights, in batches of [`BATCH`], one progress step
//! per batch.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use image::{DynamicImage, GrayImage, RgbImage};

use super::mobilenet::{default_mobilenet_dir, ImageModel, MOBILENET_V2_SHA256, WEIGHTS_FILE};
use super::{CandleContext, EmbedError, Embedding, Subset, View};
use crate::dataset::Images;
use crate::progress::Progress;

/// Images per forward pass: 16 was faster than 64 on two cores (benches/RESULTS.md).
const BATCH: usize = 16;

/// The weights to load: `model` (a `.pth` file, or a folder holding [`WEIGHTS_FILE`]), or the
/// fetched file checked against its pinned SHA-256.
fn weights(model: Option<&Path>) -> Result<(PathBuf, Option<&'static str>), EmbedError> {
    match model {
        Some(path) if path.is_dir() => Ok((path.join(WEIGHTS_FILE), None)),
        Some(path) => Ok((path.to_path_buf(), None)),
        None => default_mobilenet_dir()
            .map(|dir| (dir.join(WEIGHTS_FILE), Some(MOBILENET_V2_SHA256)))
            .ok_or_else(|| {
                EmbedError::Text("HOME is not set: give the weights with --model".into())
            }),
    }
}

/// The dataset image at `row` as an `image` crate image.
fn picture(images: &Images, row: usize) -> Result<DynamicImage, EmbedError> {
    let (w, h) = (images.width, images.height);
    let pixels = images.image(row).to_vec();
    let picture = match images.channels {
        1 => GrayImage::from_raw(w, h, pixels).map(DynamicImage::ImageLuma8),
        3 => RgbImage::from_raw(w, h, pixels).map(DynamicImage::ImageRgb8),
        _ => None,
    };
    picture.ok_or_else(|| {
        EmbedError::Text(format!(
            "dataset row {row}: a {w}x{h} image with {} channels cannot be given to MobileNetV2 (1 or 3 expected)",
            images.channels
        ))
    })
}

/// The network of `model` (see [`weights`]) on `device`.
pub fn load_network(model: Option<&Path>, device: &Device) -> Result<ImageModel, EmbedError> {
    let (path, pinned) = weights(model)?;
    ImageModel::load(&path, pinned, device)
}

pub fn embed_images(
    images: &Images,
    subset: &Subset,
    model: Option<&Path>,
    device: &Device,
    progress: &Progress,
) -> Result<Embedding, EmbedError> {
    let network = load_network(model, device)?;
    let matrix = features(&network, images, &subset.rows, device, progress)?;
    Ok(Embedding {
        view: View::MobilenetV2,
        matrix,
        training: None,
    })
}

/// The `rows x FEATURE_DIM` features of `images`' `rows`, in batches of [`BATCH`].
pub fn features(
    network: &ImageModel,
    images: &Images,
    rows: &[u32],
    device: &Device,
    progress: &Progress,
) -> Result<Tensor, EmbedError> {
    let bar = progress.bar(rows.len() as u64, "images");
    let mut parts = Vec::with_capacity(rows.len().div_ceil(BATCH));
    for rows in rows.chunks(BATCH) {
        if progress.cancelled() {
            return Err(EmbedError::Cancelled);
        }
        let batch = rows
            .iter()
            .map(|&r| picture(images, r as usize))
            .collect::<Result<Vec<_>, _>>()?;
        let input = network.preprocess(&batch)?;
        parts.push(network.features(&input)?);
        bar.inc(rows.len() as u64);
    }
    bar.finish_and_clear();
    if parts.is_empty() {
        Tensor::zeros((0, super::mobilenet::FEATURE_DIM), DType::F32, device)
    } else {
        Tensor::cat(&parts, 0)
    }
    .context("image embedding")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::ImageStatus;

    fn images(channels: u32, count: usize) -> Images {
        let (width, height) = (12, 10);
        let per = (width * height * channels) as usize;
        Images {
            width,
            height,
            channels,
            pixels: (0..per * count).map(|i| (i * 37 % 251) as u8).collect(),
            status: vec![ImageStatus::Failed("unused".into()); count],
        }
    }

    #[test]
    fn dataset_pixels_become_images_of_their_size_and_colour() {
        let grey = picture(&images(1, 2), 1).unwrap();
        assert_eq!((grey.width(), grey.height()), (12, 10));
        assert_eq!(grey.color(), image::ColorType::L8);
        assert_eq!(grey.as_bytes(), images(1, 2).image(1));
        let rgb = picture(&images(3, 1), 0).unwrap();
        assert_eq!(rgb.color(), image::ColorType::Rgb8);
        let err = picture(&images(2, 1), 0).err().unwrap();
        assert!(err.to_string().contains("2 channels"), "{err}");
    }

    #[test]
    fn missing_weights_are_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let subset = Subset {
            rows: vec![0],
            labels: vec![0],
            n_classes: 1,
            excluded: Vec::new(),
        };
        let progress = Progress::new(false);
        let err = embed_images(
            &images(3, 1),
            &subset,
            Some(dir.path()),
            &Device::Cpu,
            &progress,
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains(WEIGHTS_FILE), "{err}");
    }
}
