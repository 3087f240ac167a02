//! Image decoding with the `image` crate, in parallel (rayon): a cheap header pass chooses the
//! common size and channel count, then every image is decoded, converted to 8-bit grey or RGB
//! and resized to that size. Failures become per-row statuses, never dropped rows.

use std::io::Cursor;
use std::path::Path;

use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageReader, Limits};
use rayon::prelude::*;

use crate::cli::config::MAX_SIDE;
use crate::dataset::{DecodedImage, ImageStatus, Images};
use crate::progress::Progress;

/// Most bytes a decoder may allocate for one image (the `image` crate's limit); with
/// [`MAX_SIDE`] it keeps a hostile header from exhausting memory.
const MAX_ALLOC: u64 = 512 * 1024 * 1024;

/// Where one image's encoded bytes are.
#[derive(Debug, Clone, Copy)]
pub enum Encoded<'a> {
    File(&'a Path),
    /// Bytes from a column; `None` for a null cell.
    Bytes(Option<&'a [u8]>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    width: u32,
    height: u32,
    channels: u32,
}

/// The header of every item (in parallel, one progress step each): its size and whether it
/// has colour, or why it cannot be read.
pub(crate) fn read_headers(
    items: &[Encoded<'_>],
    progress: &Progress,
) -> Vec<Result<Header, String>> {
    let bar = progress.bar(items.len() as u64, "headers");
    let headers: Vec<Result<Header, String>> = items
        .par_iter()
        .map(|item| {
            let h = header(item);
            bar.inc(1);
            h
        })
        .collect();
    bar.finish_and_clear();
    headers
}

/// The `(width, height, channels)` every image is brought to: `size` if given, otherwise the
/// most common size, and grey only where most images are grey. Fails, with a message, when
/// no header could be read (there is then no size to bring images to).
pub(crate) fn common_shape(
    headers: &[Result<Header, String>],
    size: Option<(u32, u32)>,
) -> Result<(u32, u32, u32), String> {
    let ok: Vec<Header> = headers
        .iter()
        .filter_map(|h| h.as_ref().ok().copied())
        .collect();
    if ok.is_empty() {
        let first = headers
            .iter()
            .find_map(|h| h.as_ref().err().cloned())
            .unwrap_or_default();
        return Err(format!(
            "every image failed to decode; the first error was: {first}"
        ));
    }
    let (width, height) = size.unwrap_or_else(|| most_common_size(&ok));
    let grey = ok.iter().filter(|h| h.channels == 1).count();
    // Ties go to colour: converting grey to RGB loses nothing.
    let channels = if grey * 2 > ok.len() { 1 } else { 3 };
    Ok((width, height, channels))
}

/// One item decoded into `out` (`width x height x channels` bytes) at `shape`, as
/// [`decode_all`] decodes it: its header first, then its pixels.
pub(crate) fn decode_item(
    item: &Encoded<'_>,
    shape: (u32, u32, u32),
    out: &mut [u8],
) -> ImageStatus {
    match header(item) {
        Ok(_) => decode_into(item, shape, out),
        Err(e) => ImageStatus::Failed(e),
    }
}

/// Decodes every item into one `n x h x w x c` buffer. `size` forces the output size,
/// otherwise the most common size wins. Fails, with a message, when no image at all could be
/// read (there is then no size to bring images to) or the buffer cannot be allocated.
pub fn decode_all(
    items: &[Encoded<'_>],
    size: Option<(u32, u32)>,
    progress: &Progress,
) -> Result<Images, String> {
    let headers = read_headers(items, progress);
    let shape = common_shape(&headers, size)?;
    decode_read(items, headers, shape, progress)
}

/// [`decode_all`] of items whose `headers` were read and `shape` chosen.
pub(crate) fn decode_read(
    items: &[Encoded<'_>],
    headers: Vec<Result<Header, String>>,
    (width, height, channels): (u32, u32, u32),
    progress: &Progress,
) -> Result<Images, String> {
    let per_image = (width * height * channels) as usize;
    let total = per_image.saturating_mul(items.len());
    let gib = |bytes: u64| bytes as f64 / (1u64 << 30) as f64;
    // The allocator may grant far more than the machine holds (lazily mapped pages), and the
    // first pixels written would then be killed for memory: compare with what is available.
    if let Some(available) = available_memory().filter(|&a| total as u64 > a) {
        return Err(format!(
            "{} images at {width}x{height}x{channels} need {:.1} GiB, more than the {:.1} GiB of memory available; choose a smaller --image-size",
            items.len(),
            gib(total as u64),
            gib(available)
        ));
    }
    let mut pixels = Vec::new();
    if pixels.try_reserve_exact(total).is_err() {
        return Err(format!(
            "{} images at {width}x{height}x{channels} need {:.1} GiB, which cannot be allocated; choose a smaller --image-size",
            items.len(),
            gib(total as u64)
        ));
    }
    pixels.resize(total, 0u8);
    let bar = progress.bar(items.len() as u64, "decoding");
    let status: Vec<ImageStatus> = pixels
        .par_chunks_mut(per_image)
        .zip(items.par_iter().zip(headers))
        .map(|(out, (item, header))| {
            let status = match header {
                Ok(_) => decode_into(item, (width, height, channels), out),
                Err(e) => ImageStatus::Failed(e),
            };
            bar.inc(1);
            status
        })
        .collect();
    bar.finish_and_clear();
    Ok(Images {
        width,
        height,
        channels,
        pixels,
        status,
    })
}

/// The most frequent (width, height); ties go to the smaller area, then the smaller width,
/// so the choice does not depend on file order.
fn most_common_size(headers: &[Header]) -> (u32, u32) {
    let mut counts = std::collections::HashMap::<(u32, u32), usize>::new();
    for h in headers {
        *counts.entry((h.width, h.height)).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by(|(a, ca), (b, cb)| {
            ca.cmp(cb)
                .then((b.0 as u64 * b.1 as u64).cmp(&(a.0 as u64 * a.1 as u64)))
                .then(b.cmp(a))
        })
        .map(|(size, _)| size)
        .unwrap_or((1, 1))
}

fn reader<'a>(item: &Encoded<'a>) -> Result<ImageReader<Box<dyn BufReadSeek + 'a>>, String> {
    let inner: Box<dyn BufReadSeek> = match item {
        Encoded::File(path) => {
            let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
            if file.metadata().is_ok_and(|m| m.is_dir()) {
                return Err("cannot read: it is a folder, expected an image file".into());
            }
            Box::new(std::io::BufReader::new(file))
        }
        Encoded::Bytes(Some(bytes)) => Box::new(Cursor::new(*bytes)),
        Encoded::Bytes(None) => return Err("the image cell is null; expected image bytes".into()),
    };
    ImageReader::new(inner)
        .with_guessed_format()
        .map_err(|e| format!("cannot read: {e}"))
}

trait BufReadSeek: std::io::BufRead + std::io::Seek {}
impl<T: std::io::BufRead + std::io::Seek> BufReadSeek for T {}

fn decode_error(e: image::ImageError) -> String {
    format!("cannot decode: {e}; expected a PNG or JPEG image")
}

fn header(item: &Encoded<'_>) -> Result<Header, String> {
    let r = reader(item)?;
    if r.format().is_none() {
        return Err("not a PNG or JPEG image (unrecognised content)".into());
    }
    let decoder = r.into_decoder().map_err(decode_error)?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
        return Err(format!(
            "its header claims {width} x {height} pixels; expected 1 to {MAX_SIDE} per side"
        ));
    }
    let color = decoder.color_type();
    let channels = if color.has_color() { 3 } else { 1 };
    Ok(Header {
        width,
        height,
        channels,
    })
}

fn decode_into(item: &Encoded<'_>, (w, h, c): (u32, u32, u32), out: &mut [u8]) -> ImageStatus {
    match decode_one(item) {
        Ok(img) => {
            let color = img.color();
            let decoded = DecodedImage {
                width: img.width(),
                height: img.height(),
                color: format!("{color:?}"),
                channels: if color.has_color() { 3 } else { 1 },
                lossy: color.has_alpha() || color.bytes_per_pixel() > color.channel_count(),
                content_hash: content_hash(&img),
            };
            let resized = if (img.width(), img.height()) == (w, h) {
                img
            } else {
                img.resize_exact(w, h, FilterType::Triangle)
            };
            if c == 1 {
                out.copy_from_slice(resized.to_luma8().as_raw());
            } else {
                out.copy_from_slice(resized.to_rgb8().as_raw());
            }
            ImageStatus::Decoded(decoded)
        }
        Err(e) => ImageStatus::Failed(e),
    }
}

/// Hash of pixels, width and colour type (the height follows from the byte count).
fn content_hash(img: &DynamicImage) -> u128 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(img.as_bytes());
    h.update(&img.width().to_le_bytes());
    h.update(format!("{:?}", img.color()).as_bytes());
    h.digest128()
}

fn decode_one(item: &Encoded<'_>) -> Result<DynamicImage, String> {
    let mut r = reader(item)?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    r.limits(limits);
    r.decode().map_err(decode_error)
}

/// Memory the system can give without swapping (`MemAvailable` of /proc/meminfo, in bytes),
/// where the system says.
fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(img: DynamicImage) -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        img.write_to(&mut buf, image::ImageFormat::Png).unwrap();
        buf.into_inner()
    }

    #[test]
    fn most_common_size_wins_and_odd_sizes_are_resized() {
        let a = png(DynamicImage::new_luma8(4, 3));
        let b = png(DynamicImage::new_luma8(4, 3));
        let c = png(DynamicImage::new_luma8(8, 8));
        let items = [a, b, c];
        let enc: Vec<_> = items.iter().map(|b| Encoded::Bytes(Some(b))).collect();
        let images = decode_all(&enc, None, &Progress::hidden()).unwrap();
        assert_eq!((images.width, images.height, images.channels), (4, 3, 1));
        assert_eq!(images.pixels.len(), 3 * 12);
        let ImageStatus::Decoded(d) = &images.status[2] else {
            panic!("{:?}", images.status[2])
        };
        assert_eq!((d.width, d.height), (8, 8));
    }

    #[test]
    fn grey_is_converted_to_rgb_when_colour_is_common_and_alpha_is_lossy() {
        let mut rgba = image::RgbaImage::new(2, 2);
        rgba.put_pixel(0, 0, image::Rgba([10, 20, 30, 40]));
        let items = [
            png(DynamicImage::ImageRgba8(rgba)),
            png(DynamicImage::new_rgb8(2, 2)),
            png(DynamicImage::new_luma8(2, 2)),
        ];
        let enc: Vec<_> = items.iter().map(|b| Encoded::Bytes(Some(b))).collect();
        let images = decode_all(&enc, None, &Progress::hidden()).unwrap();
        assert_eq!(images.channels, 3);
        assert_eq!(&images.image(0)[..3], &[10, 20, 30]);
        let lossy: Vec<bool> = images
            .status
            .iter()
            .map(|s| matches!(s, ImageStatus::Decoded(d) if d.lossy))
            .collect();
        assert_eq!(lossy, [true, false, false]);
    }

    #[test]
    fn broken_null_and_oversized_images_fail_with_reasons() {
        let good = png(DynamicImage::new_luma8(2, 2));
        let mut huge = png(DynamicImage::new_luma8(2, 2));
        // IHDR width/height live at bytes 16..24; the CRC is not checked before the size.
        huge[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        huge[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let crc = crc32fast::hash(&huge[12..29]);
        huge[29..33].copy_from_slice(&crc.to_be_bytes());
        let enc = [
            Encoded::Bytes(Some(&good)),
            Encoded::Bytes(Some(b"not an image")),
            Encoded::Bytes(None),
            Encoded::Bytes(Some(&huge)),
            Encoded::Bytes(Some(&good[..good.len() / 2])),
        ];
        let images = decode_all(&enc, None, &Progress::hidden()).unwrap();
        let reasons: Vec<String> = images
            .status
            .iter()
            .map(|s| match s {
                ImageStatus::Failed(e) => e.clone(),
                ImageStatus::Decoded(_) => "ok".into(),
            })
            .collect();
        assert_eq!(reasons[0], "ok");
        assert!(reasons[1].contains("not a PNG or JPEG"), "{}", reasons[1]);
        assert!(reasons[2].contains("null"), "{}", reasons[2]);
        assert!(reasons[3].contains("100000 x 100000"), "{}", reasons[3]);
        assert!(reasons[4].starts_with("cannot decode"), "{}", reasons[4]);
    }

    #[test]
    fn nothing_decodable_is_an_error() {
        let enc = [Encoded::Bytes(Some(b"junk")), Encoded::Bytes(Some(b""))];
        let err = decode_all(&enc, None, &Progress::hidden()).unwrap_err();
        assert!(err.contains("not a PNG or JPEG"), "{err}");
    }
}
