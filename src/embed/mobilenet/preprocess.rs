//! torchvision's transform for these weights, from images of any size and colour type to the
//! network's input: resize 256, centre crop 224, scale to [0, 1], normalise, CHW.

use candle_core::{Device, Tensor};
use image::imageops::FilterType;
use image::DynamicImage;

use super::INPUT_SIZE;
use crate::embed::{CandleContext, EmbedError};

/// The shorter side after resizing, before the centre crop.
const RESIZE: u64 = 256;

/// The longest side accepted after resizing (a 64:1 image). It bounds the resized image at
/// 12 MB; a thin enough sliver would otherwise be resized to gigabytes for a crop of 224.
const MAX_RESIZED_SIDE: u64 = 16_384;

/// ImageNet's per-channel mean and standard deviation, as torchvision normalises.
const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// [`ImageModel::preprocess`](super::ImageModel::preprocess) without loading a model.
pub fn preprocess_images(images: &[DynamicImage], device: &Device) -> Result<Tensor, EmbedError> {
    let side = INPUT_SIZE as u32;
    let mut data = Vec::with_capacity(images.len() * 3 * INPUT_SIZE * INPUT_SIZE);
    for (i, image) in images.iter().enumerate() {
        let rgb = image.to_rgb8();
        let (w, h) = rgb.dimensions();
        let (rw, rh) = resized_size(w, h).ok_or_else(|| {
            EmbedError::Text(format!(
                "image {i} of the batch is {w}x{h} pixels: empty, or too elongated to resize its shorter side to {RESIZE} (the longer would pass {MAX_RESIZED_SIDE})"
            ))
        })?;
        let resized = image::imageops::resize(&rgb, rw, rh, FilterType::Triangle);
        let (left, top) = (crop_offset(rw), crop_offset(rh));
        for c in 0..3 {
            for y in top..top + side {
                for x in left..left + side {
                    let v = resized.get_pixel(x, y)[c] as f32 / 255.0;
                    data.push((v - MEAN[c]) / STD[c]);
                }
            }
        }
    }
    Tensor::from_vec(data, (images.len(), 3, INPUT_SIZE, INPUT_SIZE), device)
        .context("preprocessing images")
}

/// torchvision's `Resize(256)` on a `w x h` image: the shorter side to 256, the longer to
/// `int(256 * long / short)`. None for an empty or too elongated image.
fn resized_size(w: u32, h: u32) -> Option<(u32, u32)> {
    let (short, long) = (w.min(h) as u64, w.max(h) as u64);
    if short == 0 {
        return None;
    }
    let long = RESIZE * long / short;
    if long > MAX_RESIZED_SIDE {
        return None;
    }
    let (short, long) = (RESIZE as u32, long as u32);
    Some(if w <= h { (short, long) } else { (long, short) })
}

/// torchvision's centre-crop offset on a side of `len >= 224`: `int(round((len - 224) / 2))`,
/// where Python rounds halves to even.
fn crop_offset(len: u32) -> u32 {
    let excess = len - INPUT_SIZE as u32;
    let half = excess / 2;
    if excess % 2 == 1 && half % 2 == 1 {
        half + 1
    } else {
        half
    }
}

#[cfg(test)]
mod tests {
    use image::{GrayImage, Luma, Rgb, RgbImage, Rgba, RgbaImage};

    use super::*;
    use crate::embed::mobilenet::tests::max_abs_diff;

    #[test]
    fn resize_and_crop_follow_torchvision() {
        assert_eq!(resized_size(451, 300), Some((384, 256)));
        assert_eq!(resized_size(300, 451), Some((256, 384)));
        assert_eq!(resized_size(640, 427), Some((383, 256)));
        assert_eq!(resized_size(10, 10), Some((256, 256)));
        assert_eq!(resized_size(0, 10), None);
        assert_eq!(resized_size(1, 100), None);
        assert_eq!(crop_offset(256), 16);
        // (341 - 224) / 2 = 58.5 rounds to 58; 59.5 rounds to 60.
        assert_eq!(crop_offset(341), 58);
        assert_eq!(crop_offset(343), 60);
        // A 256 x 256 image is only cropped: each value is the pixel's, normalised.
        let img = RgbImage::from_fn(256, 256, |x, y| Rgb([x as u8, y as u8, (x ^ y) as u8]));
        let x = preprocess_images(&[DynamicImage::ImageRgb8(img.clone())], &Device::Cpu).unwrap();
        let x = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (c, y, col) in [(0, 0, 0), (1, 5, 200), (2, 223, 223), (0, 100, 7)] {
            let pixel = img.get_pixel(col as u32 + 16, y as u32 + 16)[c] as f32 / 255.0;
            let got = x[(c * INPUT_SIZE + y) * INPUT_SIZE + col];
            assert_eq!(
                got,
                (pixel - MEAN[c]) / STD[c],
                "channel {c} at ({y}, {col})"
            );
        }
    }

    #[test]
    fn grey_and_rgba_images_preprocess_like_rgb() {
        let grey = GrayImage::from_fn(300, 200, |x, y| Luma([((x * 7 + y * 3) % 256) as u8]));
        let x = preprocess_images(&[DynamicImage::ImageLuma8(grey)], &Device::Cpu).unwrap();
        assert_eq!(x.dims(), [1, 3, INPUT_SIZE, INPUT_SIZE]);
        // Undo the normalisation: the three channels hold the same grey.
        let channels: Vec<Vec<f32>> = (0..3)
            .map(|c| {
                let v = x.get(0).unwrap().get(c).unwrap().flatten_all().unwrap();
                ((v * STD[c] as f64).unwrap() + MEAN[c] as f64)
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
            })
            .collect();
        for c in 1..3 {
            let diff = channels[0]
                .iter()
                .zip(&channels[c])
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(diff < 1e-5, "channel {c}: {diff}");
        }
        let rgba = RgbaImage::from_fn(300, 200, |x, y| Rgba([x as u8, y as u8, 7, (x + y) as u8]));
        let rgb = RgbImage::from_fn(300, 200, |x, y| Rgb([x as u8, y as u8, 7]));
        let a = preprocess_images(&[DynamicImage::ImageRgba8(rgba)], &Device::Cpu).unwrap();
        let b = preprocess_images(&[DynamicImage::ImageRgb8(rgb)], &Device::Cpu).unwrap();
        assert_eq!(a.dims(), [1, 3, INPUT_SIZE, INPUT_SIZE]);
        assert_eq!(max_abs_diff(&a, &b), 0.0);
        // Small images are enlarged; a sliver is refused, naming its place in the batch.
        let small = DynamicImage::ImageRgb8(RgbImage::new(10, 30));
        let sliver = DynamicImage::ImageRgb8(RgbImage::new(1, 500));
        let x = preprocess_images(&[small.clone(), small.clone()], &Device::Cpu).unwrap();
        assert_eq!(x.dims(), [2, 3, INPUT_SIZE, INPUT_SIZE]);
        let err = preprocess_images(&[small, sliver], &Device::Cpu)
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("image 1 of the batch is 1x500"),
            "{err}"
        );
    }
}
