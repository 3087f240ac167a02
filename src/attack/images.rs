//! Image triggers: the BadNets patch, the blended noise image and the SIG sinusoid. Pixels are
//! `height x width x channels` u8, and every trigger touches every channel alike.

use rand::rngs::StdRng;
use rand::Rng;

use super::PatchPosition;
use crate::dataset::Images;

/// Paints a white square `side` pixels a side (clipped to the image) at `position` into each
/// image of `rows`. `Random` draws one top-left corner from `rng` for every poison, so the
/// trigger is still one fixed pattern, as BadNets needs.
pub(super) fn patch(
    img: &mut Images,
    rows: &[u32],
    side: usize,
    position: PatchPosition,
    rng: &mut StdRng,
) {
    let (w, h, c) = (
        img.width as usize,
        img.height as usize,
        img.channels as usize,
    );
    let side = side.min(w).min(h);
    let (left, top) = match position {
        PatchPosition::BottomRight => (w - side, h - side),
        PatchPosition::BottomLeft => (0, h - side),
        PatchPosition::TopLeft => (0, 0),
        PatchPosition::TopRight => (w - side, 0),
        PatchPosition::Random => (
            rng.random_range(0..=w - side),
            rng.random_range(0..=h - side),
        ),
    };
    let per = img.pixels_per_image();
    for &r in rows {
        let image = &mut img.pixels[r as usize * per..(r as usize + 1) * per];
        for y in top..top + side {
            for x in left..left + side {
                image[(y * w + x) * c..(y * w + x + 1) * c].fill(255);
            }
        }
    }
}

/// Mixes one seeded noise image `p` into each image of `rows`: `(1 - alpha) x + alpha p`.
pub(super) fn blend(img: &mut Images, rows: &[u32], alpha: f64, rng: &mut StdRng) {
    let per = img.pixels_per_image();
    let pattern: Vec<f64> = (0..per).map(|_| rng.random_range(0.0..=255.0)).collect();
    for &r in rows {
        for (p, &q) in img.pixels[r as usize * per..(r as usize + 1) * per]
            .iter_mut()
            .zip(&pattern)
        {
            *p = ((1.0 - alpha) * *p as f64 + alpha * q)
                .round()
                .clamp(0.0, 255.0) as u8;
        }
    }
}

/// The SIG signal of Barni et al. 2019 for an image `width` pixels wide: column `j` gets
/// `delta sin(2 pi j f / width)`, the same down every row and in every channel.
pub(super) fn sig_signal(width: usize, delta: f64, frequency: f64) -> Vec<f64> {
    (0..width)
        .map(|j| delta * (2.0 * std::f64::consts::PI * j as f64 * frequency / width as f64).sin())
        .collect()
}

/// Adds the SIG signal to each image of `rows`, rounded and clipped to [0, 255].
pub(super) fn sig(img: &mut Images, rows: &[u32], delta: f64, frequency: f64) {
    let (w, c) = (img.width as usize, img.channels as usize);
    let signal = sig_signal(w, delta, frequency);
    let per = img.pixels_per_image();
    for &r in rows {
        let image = &mut img.pixels[r as usize * per..(r as usize + 1) * per];
        for (i, p) in image.iter_mut().enumerate() {
            let v = signal[(i / c) % w];
            *p = (*p as f64 + v).round().clamp(0.0, 255.0) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{DecodedImage, ImageStatus};
    use rand::SeedableRng;

    /// `n` images `w x h` with `c` channels, every pixel `value`.
    fn flat(n: usize, w: u32, h: u32, c: u32, value: u8) -> Images {
        let status = ImageStatus::Decoded(DecodedImage {
            width: w,
            height: h,
            color: "L8".into(),
            channels: c,
            lossy: false,
            content_hash: 0,
        });
        Images {
            width: w,
            height: h,
            channels: c,
            pixels: vec![value; n * (w * h * c) as usize],
            status: vec![status; n],
        }
    }

    /// The (x, y) of every pixel of image `i` whose first channel is 255.
    fn white(img: &Images, i: usize) -> Vec<(usize, usize)> {
        let (w, c) = (img.width as usize, img.channels as usize);
        img.image(i)
            .chunks(c)
            .enumerate()
            .filter(|(_, px)| px[0] == 255)
            .map(|(k, _)| (k % w, k / w))
            .collect()
    }

    #[test]
    fn the_patch_sits_in_the_corner_asked_for() {
        let rng = &mut StdRng::seed_from_u64(0);
        let cases = [
            (PatchPosition::BottomRight, [(3, 4), (4, 4), (3, 5), (4, 5)]),
            (PatchPosition::BottomLeft, [(0, 4), (1, 4), (0, 5), (1, 5)]),
            (PatchPosition::TopLeft, [(0, 0), (1, 0), (0, 1), (1, 1)]),
            (PatchPosition::TopRight, [(3, 0), (4, 0), (3, 1), (4, 1)]),
        ];
        for (position, expected) in cases {
            // 5 wide, 6 high: a mix-up between width and height shows.
            let mut img = flat(2, 5, 6, 1, 10);
            patch(&mut img, &[1], 2, position, rng);
            assert_eq!(white(&img, 1), expected, "{position:?}");
            assert!(white(&img, 0).is_empty(), "row 0 was not chosen");
            assert_eq!(img.image(1).iter().filter(|&&p| p == 10).count(), 26);
        }
    }

    #[test]
    fn the_patch_is_white_in_every_channel_and_clipped_to_the_image() {
        let mut img = flat(1, 2, 3, 3, 7);
        patch(
            &mut img,
            &[0],
            5,
            PatchPosition::TopLeft,
            &mut StdRng::seed_from_u64(0),
        );
        assert!(img.pixels[..12].iter().all(|&p| p == 255), "2x2 in RGB");
        assert_eq!(&img.pixels[12..], [7; 6], "the third row is untouched");
    }

    #[test]
    fn a_random_patch_is_one_seeded_place_for_every_poison() {
        let place = |seed: u64| {
            let mut img = flat(3, 16, 16, 1, 0);
            patch(
                &mut img,
                &[0, 2],
                3,
                PatchPosition::Random,
                &mut StdRng::seed_from_u64(seed),
            );
            let first = white(&img, 0);
            assert_eq!(first.len(), 9);
            assert_eq!(white(&img, 2), first, "the same place in every poison");
            assert!(white(&img, 1).is_empty());
            // A 3x3 square: its corners are 2 apart.
            let (x0, y0) = first[0];
            assert_eq!(first[8], (x0 + 2, y0 + 2));
            first[0]
        };
        assert_eq!(place(5), place(5));
        let places: Vec<(usize, usize)> = (0..4).map(place).collect();
        assert!(places.iter().any(|&p| p != places[0]), "{places:?}");
    }

    #[test]
    fn sig_adds_the_sinusoid_by_column_rounds_and_clips() {
        // m = 4, f = 1: sin(2 pi j / 4) = 0, 1, 0, -1 for columns 0..4.
        let signal = sig_signal(4, 20.0, 1.0);
        let expected = [0.0, 20.0, 0.0, -20.0];
        for (s, e) in signal.iter().zip(expected) {
            assert!((s - e).abs() < 1e-9, "{signal:?}");
        }
        let mut img = flat(2, 4, 2, 2, 100);
        // Row 1 of image 1: columns near the ends of the range, to see the clipping.
        let per = img.pixels_per_image();
        img.pixels[per + 8..per + 16].copy_from_slice(&[250, 250, 250, 5, 9, 9, 10, 10]);
        sig(&mut img, &[1], 20.0, 1.0);
        assert_eq!(img.image(0), [100; 16], "row 0 was not chosen");
        assert_eq!(
            img.image(1),
            [
                100, 100, 120, 120, 100, 100, 80, 80, // row 0
                250, 250, 255, 25, 9, 9, 0, 0, // row 1: clipped at both ends
            ]
        );
        // A frequency that is not a whole number of periods still rounds each value.
        let mut img = flat(1, 3, 1, 1, 50);
        sig(&mut img, &[0], 20.0, 0.5);
        // 20 sin(pi j / 3) = 0, 17.32, 17.32.
        assert_eq!(img.image(0), [50, 67, 67]);
    }

    #[test]
    fn blend_mixes_one_seeded_pattern() {
        let mut img = flat(3, 2, 2, 1, 100);
        blend(&mut img, &[0, 2], 0.5, &mut StdRng::seed_from_u64(3));
        assert_eq!(img.image(0), img.image(2), "one pattern for every poison");
        assert_eq!(img.image(1), [100; 4]);
        assert!(img.image(0).iter().all(|&p| (50..=178).contains(&p)));
        assert_ne!(img.image(0), [100; 4]);
    }
}
