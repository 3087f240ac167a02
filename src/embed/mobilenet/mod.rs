//! An ImageNet image embedder: torchvision's MobileNetV2 (`mobilenet_v2`, width 1.0) with its
//! IMAGENET1K_V1 weights (`mobilenet_v2-b0353104.pth`, fetched with three test photos by
//! `datasets/models/fetch-mobilenet.sh`), written with candle-nn and run in eval mode. The
//! embedding is the 1280-d global average of the last feature map, the classifier's input;
//! the 1000 ImageNet logits are kept for the tests, which check that real photos get their
//! classes.
//!
//! Each batch norm (eps 1e-5, as torchvision) is folded into the convolution before it when
//! the weights are loaded (`Conv2d::absorb_bn`). On the CPU the folded layers then run with
//! two small kernels (`CpuLayer`): the 3x3 depthwise convolutions as one direct loop with
//! their bias and ReLU6, and the bias and ReLU6 of the others in place. Tests check the
//! kernels against candle's grouped convolution and the folded network against the plain one.
//!
//! Preprocessing is torchvision's transform for these weights (`ImageClassification`: resize
//! 256, crop 224): the shorter side resized to 256 and the longer to `floor(256 * long /
//! short)`; a 224 x 224 centre crop, its offsets rounded half to even as Python's `round`;
//! values scaled to [0, 1] and normalised with ImageNet's mean and standard deviation; CHW.
//! The resize is the `image` crate's `FilterType::Triangle`: bilinear, widened by the scale
//! when shrinking, as PIL's antialiased bilinear is, but it keeps f32 between its two passes
//! where PIL rounds to 8 bits, so a pixel may differ by one level. Grey images have their
//! channel repeated, RGBA images lose their alpha (not composited, as PIL's `convert("RGB")`)
//! and 16-bit images are scaled to 8 bits first.
//!
//! Model files are untrusted input: with a pinned SHA-256 nothing is parsed before the sum
//! matches, and the weights are read by [`super::pth`], which runs nothing and refuses globals
//! a state dict does not need.
//!
//! This file holds the constants, loading and the public API; `layers` the network's layers
//! (convolution and batch norm, inverted residual block), `kernels` the two CPU kernels and
//! `preprocess` the transform from images to the network's input.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{Linear, Module, VarBuilder};
use image::DynamicImage;
use sha2::{Digest, Sha256};

use super::{pth, CandleContext, EmbedError};
use layers::{Block, ConvBn, Spec};
pub use preprocess::preprocess_images;

mod kernels;
mod layers;
mod preprocess;

/// SHA-256 of torchvision's `mobilenet_v2-b0353104.pth` (torchvision names the file after
/// its first eight hex digits; also pinned in `datasets/models/fetch-mobilenet.sh`).
pub const MOBILENET_V2_SHA256: &str =
    "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889";

/// The weights' file name in the folder the fetch script writes.
pub const WEIGHTS_FILE: &str = "mobilenet_v2-b0353104.pth";

/// Width of the embeddings.
pub const FEATURE_DIM: usize = 1280;

/// Side of the square the network sees.
pub const INPUT_SIZE: usize = 224;

/// torchvision's inverted residual settings: (expansion t, output channels c, blocks n,
/// stride s of the first block).
const SETTINGS: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// Where `datasets/models/fetch-mobilenet.sh` puts the weights and test photos by default.
pub fn default_mobilenet_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".cache/poisongate-models/mobilenet_v2"))
}

fn file_error(path: &Path, problem: impl std::fmt::Display) -> EmbedError {
    EmbedError::File {
        path: path.to_path_buf(),
        problem: problem.to_string(),
    }
}

/// A loaded MobileNetV2.
pub struct ImageModel {
    stem: ConvBn,
    blocks: Vec<Block>,
    head: ConvBn,
    classifier: Linear,
    device: Device,
}

impl ImageModel {
    /// Loads the `.pth` state dict `path`. With `expected_sha256`, the file must hash to it
    /// before anything in it is parsed.
    pub fn load(
        path: &Path,
        expected_sha256: Option<&str>,
        device: &Device,
    ) -> Result<Self, EmbedError> {
        Self::load_with(path, expected_sha256, device, true)
    }

    /// [`ImageModel::load`], with the batch norms folded into the convolutions or kept apart.
    fn load_with(
        path: &Path,
        expected_sha256: Option<&str>,
        device: &Device,
        fold: bool,
    ) -> Result<Self, EmbedError> {
        let bytes = std::fs::read(path).map_err(|e| {
            file_error(
                path,
                format!("cannot read it ({e}); datasets/models/fetch-mobilenet.sh fetches torchvision's MobileNetV2 weights"),
            )
        })?;
        if let Some(expected) = expected_sha256 {
            let actual = format!("{:x}", Sha256::digest(&bytes));
            if actual != expected {
                return Err(file_error(
                    path,
                    format!("SHA-256 {actual}, expected {expected}: not the known weights (a different or damaged file)"),
                ));
            }
        }
        let tensors = pth::parse_state_dict(path, &bytes)?;
        drop(bytes);
        let vb = VarBuilder::from_tensors(tensors.into_iter().collect(), DType::F32, device);
        Self::build(&vb, fold, device)
            .map_err(|e| file_error(path, format!("not torchvision's MobileNetV2 weights: {e}")))
    }

    fn build(vb: &VarBuilder, fold: bool, device: &Device) -> candle_core::Result<Self> {
        let stem = Spec {
            c_in: 3,
            c_out: 32,
            kernel: 3,
            stride: 2,
            groups: 1,
            relu6: true,
        };
        let stem = ConvBn::load(vb, "features.0.0", "features.0.1", stem, fold)?;
        let mut blocks = Vec::new();
        let mut c_in = 32;
        for (t, c, n, s) in SETTINGS {
            for r in 0..n {
                let stride = if r == 0 { s } else { 1 };
                blocks.push(Block::load(vb, blocks.len() + 1, t, c_in, c, stride, fold)?);
                c_in = c;
            }
        }
        let head = Spec {
            c_in,
            c_out: FEATURE_DIM,
            kernel: 1,
            stride: 1,
            groups: 1,
            relu6: true,
        };
        let head = ConvBn::load(vb, "features.18.0", "features.18.1", head, fold)?;
        let classifier = candle_nn::linear(FEATURE_DIM, 1000, vb.pp("classifier.1"))?;
        Ok(ImageModel {
            stem,
            blocks,
            head,
            classifier,
            device: device.clone(),
        })
    }

    /// A batch of images of any size and colour type as the network's input: `(n, 3, 224,
    /// 224)` f32 on the model's device.
    pub fn preprocess(&self, images: &[DynamicImage]) -> Result<Tensor, EmbedError> {
        preprocess_images(images, &self.device)
    }

    /// `(n, 3, 224, 224)` -> `(n, 1280)`: the penultimate features, the embedding.
    pub fn features(&self, x: &Tensor) -> Result<Tensor, EmbedError> {
        let mut h = self.stem.forward(x).context("image embedding")?;
        for block in &self.blocks {
            h = block.forward(&h).context("image embedding")?;
        }
        self.head
            .forward(&h)
            .and_then(|h| h.mean((2, 3)))
            .context("image embedding")
    }

    /// `(n, 1280)` features -> `(n, 1000)` ImageNet logits (the dropout before them is off in
    /// eval mode).
    pub fn logits(&self, features: &Tensor) -> Result<Tensor, EmbedError> {
        self.classifier
            .forward(features)
            .context("image classification")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fetched folder, or None with the reason printed (the fetch script is part of the
    /// README's test command, so CI has it).
    fn fetched() -> Option<PathBuf> {
        let dir = std::env::var_os("POISONGATE_MOBILENET")
            .map(PathBuf::from)
            .or_else(default_mobilenet_dir)?;
        if !dir.join(".complete").exists() {
            eprintln!(
                "skipped: no weights at {} (bash datasets/models/fetch-mobilenet.sh)",
                dir.display()
            );
            return None;
        }
        Some(dir)
    }

    fn load(dir: &Path, fold: bool) -> ImageModel {
        let path = dir.join(WEIGHTS_FILE);
        ImageModel::load_with(&path, Some(MOBILENET_V2_SHA256), &Device::Cpu, fold)
            .expect("the pinned weights")
    }

    /// chelsea (a tabby cat), coffee (a cup of coffee), rocket (a launch).
    fn photos(dir: &Path) -> Vec<DynamicImage> {
        ["chelsea.png", "coffee.png", "rocket.jpg"]
            .iter()
            .map(|name| image::open(dir.join("test-images").join(name)).expect("a fetched photo"))
            .collect()
    }

    pub(super) fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .and_then(|d| d.abs())
            .and_then(|d| d.max_all())
            .and_then(|d| d.to_scalar::<f32>())
            .unwrap()
    }

    /// Each photo's top-1 ImageNet class and probability from an independent reference: a
    /// float64 NumPy re-implementation of torchvision's MobileNetV2 on the same weights (read
    /// with Python's pickle), fed by Pillow 13.0 with torchvision's transform (resize 256
    /// bilinear, centre crop 224, normalise). On Pillow's input this model's features match
    /// it within 5e-6. 285 is "Egyptian cat", 967 "espresso", 540 "drilling platform, offshore
    /// rig": the launch tower and the smoke, ahead of 812 "space shuttle" (0.18) and 657
    /// "missile" (0.07).
    const REFERENCE: [(&str, usize, f32); 3] = [
        ("chelsea", 285, 0.717),
        ("coffee", 967, 0.992),
        ("rocket", 540, 0.354),
    ];

    #[test]
    fn photos_get_their_imagenet_classes() {
        let Some(dir) = fetched() else { return };
        let model = load(&dir, true);
        let x = model.preprocess(&photos(&dir)).unwrap();
        let features = model.features(&x).unwrap();
        assert_eq!(features.dims(), [3, FEATURE_DIM]);
        let logits = model.logits(&features).unwrap();
        let probs = candle_nn::ops::softmax_last_dim(&logits)
            .and_then(|p| p.to_vec2::<f32>())
            .unwrap();
        let top5: Vec<Vec<(usize, f32)>> = probs
            .iter()
            .map(|row| {
                let mut ranked: Vec<(usize, f32)> = row.iter().copied().enumerate().collect();
                ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
                ranked.truncate(5);
                ranked
            })
            .collect();
        for ((name, class, p), top) in REFERENCE.iter().zip(&top5) {
            eprintln!("{name}: top-5 {top:?}");
            assert_eq!(top[0].0, *class, "{name}: {top:?}");
            // Our resize differs from Pillow's by at most one 8-bit level per pixel, which
            // moved these probabilities by 0.013 at most.
            assert!(
                (top[0].1 - p).abs() < 0.03,
                "{name}: {top:?}, reference {p}"
            );
        }
        // The cat is a cat (281 tabby .. 285 Egyptian cat), the coffee is coffee (504 coffee
        // mug, 967 espresso, 968 cup), and the rocket's next guesses are the space shuttle
        // and the missile.
        assert!((281..=285).contains(&top5[0][0].0) && top5[0][0].1 > 0.5);
        assert!([504, 967, 968].contains(&top5[1][0].0) && top5[1][0].1 > 0.9);
        let rocket: Vec<usize> = top5[2].iter().map(|(c, _)| *c).collect();
        assert!(rocket.contains(&812) && rocket.contains(&657), "{rocket:?}");
    }

    #[test]
    fn folded_batch_norms_match_the_plain_network() {
        let Some(dir) = fetched() else { return };
        let (folded, plain) = (load(&dir, true), load(&dir, false));
        let x = folded.preprocess(&photos(&dir)).unwrap();
        let (a, b) = (folded.features(&x).unwrap(), plain.features(&x).unwrap());
        let scale = b
            .abs()
            .and_then(|b| b.max_all())
            .and_then(|m| m.to_scalar::<f32>())
            .unwrap();
        let diff = max_abs_diff(&a, &b);
        eprintln!("folded vs plain: max |diff| {diff:e}, max |feature| {scale}");
        // f32 rounding through 52 layers, reordered by the fold: relative 1e-4 is far above
        // it and far below a wrong fold (which moves features by their own size).
        assert!(diff < 1e-4 * scale, "{diff}");
    }

    #[test]
    fn a_batch_embeds_like_its_images_one_by_one() {
        let Some(dir) = fetched() else { return };
        let model = load(&dir, true);
        let photos = photos(&dir);
        let both = model
            .features(&model.preprocess(&photos[..2]).unwrap())
            .unwrap();
        for (i, photo) in photos[..2].iter().enumerate() {
            let one = model
                .features(&model.preprocess(std::slice::from_ref(photo)).unwrap())
                .unwrap();
            let diff = max_abs_diff(&one, &both.narrow(0, i, 1).unwrap());
            assert!(diff < 1e-4, "image {i}: {diff}");
        }
    }

    #[test]
    fn a_truncated_weights_file_is_an_error_naming_it() {
        let Some(dir) = fetched() else { return };
        let bytes = std::fs::read(dir.join(WEIGHTS_FILE)).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("cut.pth");
        std::fs::write(&path, &bytes[..1 << 20]).unwrap();
        let err = ImageModel::load(&path, None, &Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("cut.pth") && err.contains("cut short"),
            "{err}"
        );
    }

    #[test]
    fn a_wrong_sum_is_refused_before_parsing() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("other.pth");
        std::fs::write(&path, b"not a state dict").unwrap();
        let err = ImageModel::load(&path, Some(MOBILENET_V2_SHA256), &Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("other.pth") && err.contains("SHA-256"),
            "{err}"
        );
        // Without the sum the same file gets as far as the parser.
        let err = ImageModel::load(&path, None, &Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not a readable PyTorch state dict"), "{err}");
        let err = ImageModel::load(&tmp.path().join("absent.pth"), None, &Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("absent.pth") && err.contains("fetch-mobilenet.sh"),
            "{err}"
        );
    }

    #[test]
    fn missing_or_misshapen_weights_are_errors_naming_the_tensor() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("partial.pth");
        let stem = vec![0.5f32; 32 * 27];
        std::fs::write(
            &path,
            pth::testing::contiguous(&[("features.0.0.weight", &[32, 3, 3, 3], stem)]),
        )
        .unwrap();
        let err = ImageModel::load(&path, None, &Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("partial.pth") && err.contains("features.0.1."),
            "{err}"
        );
        let wide = vec![0.5f32; 32 * 75];
        std::fs::write(
            &path,
            pth::testing::contiguous(&[("features.0.0.weight", &[32, 3, 5, 5], wide)]),
        )
        .unwrap();
        let err = ImageModel::load(&path, None, &Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("features.0.0.weight"), "{err}");
    }

    /// The network on the GPU (candle's convolutions) against the CPU (the fused kernels).
    #[cfg(feature = "cuda")]
    #[test]
    fn cuda_features_match_the_cpu() {
        let Some(gpu) = crate::device::test_gpu() else {
            return;
        };
        let Some(dir) = fetched() else { return };
        let cpu = load(&dir, true);
        let cuda = ImageModel::load(&dir.join(WEIGHTS_FILE), Some(MOBILENET_V2_SHA256), &gpu)
            .expect("the pinned weights");
        let photos = photos(&dir);
        let a = cpu.features(&cpu.preprocess(&photos).unwrap()).unwrap();
        let b = cuda
            .features(&cuda.preprocess(&photos).unwrap())
            .unwrap()
            .to_device(&Device::Cpu)
            .unwrap();
        for i in 0..photos.len() {
            let (x, y) = (a.get(i).unwrap(), b.get(i).unwrap());
            let dot = |p: &Tensor, q: &Tensor| {
                (p * q)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
            };
            let c = dot(&x, &y) / (dot(&x, &x) * dot(&y, &y)).sqrt();
            assert!(c >= 0.9999, "photo {i}: cosine {c} between CPU and GPU");
        }
    }
}
