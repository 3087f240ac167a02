//! Known attacks planted in memory under a seed, for measuring detectors (the input files are
//! never written): a BadNets-style patch and a blended pattern, both relabelled to a target
//! class (all-to-one), and random label flips.
//!
//! Images: the patch is a white square in the bottom-right corner; the blend mixes in one fixed
//! seeded noise image, `(1 - alpha) x + alpha p`. Tables: the "patch" sets a few seeded
//! columns to their maximum; the blend mixes in one fixed seeded row drawn within the column
//! ranges. Text: BadNets is a trigger phrase (default "cf mn bb", rare tokens as in Kurita
//! et al. 2020) inserted between two words at a seeded place; a blend has no text analogue.

use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::dataset::{Dataset, Images, Payload, Table, TextValue, Texts};
use crate::embed::Subset;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum AttackKind {
    /// Nothing planted: the clean twin.
    Clean,
    /// A patch trigger (images: white square; tables: a few columns set to their maximum;
    /// text: a trigger phrase inserted), relabelled to the target class.
    Badnets,
    /// A fixed pattern blended in with weight alpha, relabelled to the target class.
    Blend,
    /// Labels changed to another class chosen at random.
    Flip,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AttackConfig {
    pub kind: AttackKind,
    /// Share of the labelled, usable rows to poison.
    pub rate: f64,
    /// Target class name [default: the first class].
    pub target: Option<String>,
    /// Patch side in pixels, or number of trigger columns for tables; `None`: a tenth of the
    /// shorter image side (at least 1), or 3 columns.
    pub patch: Option<usize>,
    pub alpha: f64,
    /// The phrase a text BadNets attack inserts.
    pub trigger: String,
    pub seed: u64,
}

/// The default text trigger.
pub const DEFAULT_TRIGGER: &str = "cf mn bb";

impl Default for AttackConfig {
    fn default() -> Self {
        AttackConfig {
            kind: AttackKind::Clean,
            rate: 0.1,
            target: None,
            patch: None,
            alpha: 0.2,
            trigger: DEFAULT_TRIGGER.to_string(),
            seed: 0,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AttackError {
    #[error("attacks need labels; the dataset has no label column")]
    NoLabels,
    #[error("--target {0:?} is not one of the classes ({1})")]
    UnknownTarget(String, String),
    #[error("--rate {rate} asks for {wanted} poisons but only {available} rows can be poisoned")]
    TooFew {
        rate: f64,
        wanted: usize,
        available: usize,
    },
    #[error("label flips need at least two classes")]
    OneClass,
    #[error("{0} is not supported for a text payload in this version")]
    Text(&'static str),
}

/// Plants the attack into `dataset` and returns, per dataset row, whether it was poisoned.
pub fn inject(dataset: &mut Dataset, config: &AttackConfig) -> Result<Vec<bool>, AttackError> {
    let mut truth = vec![false; dataset.len()];
    if config.kind == AttackKind::Clean {
        return Ok(truth);
    }
    let subset = Subset::usable(dataset).ok_or(AttackError::NoLabels)?;
    let labels = dataset.labels.as_mut().ok_or(AttackError::NoLabels)?;
    let target = match &config.target {
        Some(t) => labels
            .classes
            .iter()
            .position(|c| c == t)
            .ok_or_else(|| AttackError::UnknownTarget(t.clone(), labels.classes.join(", ")))?,
        None => 0,
    } as u32;
    if config.kind == AttackKind::Flip && labels.classes.len() < 2 {
        return Err(AttackError::OneClass);
    }
    let candidates: Vec<u32> = subset
        .rows
        .iter()
        .zip(&subset.labels)
        .filter(|(_, &c)| config.kind == AttackKind::Flip || c != target)
        .map(|(&r, _)| r)
        .collect();
    let wanted = (config.rate * subset.len() as f64).round() as usize;
    if wanted > candidates.len() {
        return Err(AttackError::TooFew {
            rate: config.rate,
            wanted,
            available: candidates.len(),
        });
    }
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut chosen: Vec<u32> = candidates
        .choose_multiple(&mut rng, wanted)
        .copied()
        .collect();
    chosen.sort_unstable();
    let n_classes = labels.classes.len() as u32;
    for &r in &chosen {
        truth[r as usize] = true;
        let label = &mut labels.index[r as usize];
        *label = Some(match config.kind {
            AttackKind::Flip => {
                let own = label.unwrap_or(0);
                let other = rng.random_range(0..n_classes - 1);
                if other >= own {
                    other + 1
                } else {
                    other
                }
            }
            _ => target,
        });
    }
    match (config.kind, &mut dataset.payload) {
        (AttackKind::Flip, _) => {}
        (AttackKind::Badnets, Payload::Text(t)) => {
            insert_phrase(t, &chosen, &config.trigger, &mut rng)
        }
        (_, Payload::Text(_)) => return Err(AttackError::Text("a blend trigger")),
        (AttackKind::Badnets, Payload::Images(img)) => {
            let side = config.patch.unwrap_or_else(|| {
                (img.width.min(img.height) as f64 / 10.0).round().max(1.0) as usize
            });
            patch_images(img, &chosen, side)
        }
        (AttackKind::Blend, Payload::Images(img)) => {
            blend_images(img, &chosen, config.alpha, &mut rng)
        }
        (AttackKind::Badnets, Payload::Table(t)) => patch_table(
            t,
            &subset.rows,
            &chosen,
            config.patch.unwrap_or(3),
            &mut rng,
        ),
        (AttackKind::Blend, Payload::Table(t)) => {
            blend_table(t, &subset.rows, &chosen, config.alpha, &mut rng)
        }
        (AttackKind::Clean, _) => unreachable!("returned above"),
    }
    Ok(truth)
}

fn patch_images(img: &mut Images, rows: &[u32], side: usize) {
    let (w, h, c) = (
        img.width as usize,
        img.height as usize,
        img.channels as usize,
    );
    let side = side.min(w).min(h);
    let per = img.pixels_per_image();
    for &r in rows {
        let image = &mut img.pixels[r as usize * per..(r as usize + 1) * per];
        for y in h - side..h {
            for x in w - side..w {
                image[(y * w + x) * c..(y * w + x + 1) * c].fill(255);
            }
        }
    }
}

fn blend_images(img: &mut Images, rows: &[u32], alpha: f64, rng: &mut StdRng) {
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

/// Per-column (min, max) over the usable rows.
fn ranges(t: &Table, usable: &[u32]) -> Vec<(f32, f32)> {
    let mut r = vec![(f32::INFINITY, f32::NEG_INFINITY); t.dim()];
    for &i in usable {
        for (m, &v) in r.iter_mut().zip(t.row(i as usize)) {
            *m = (m.0.min(v), m.1.max(v));
        }
    }
    r
}

/// Inserts `phrase` into each chosen text at a seeded word boundary (the start, the end, or
/// just after a run of whitespace), with one space between it and the next word.
fn insert_phrase(t: &mut Texts, rows: &[u32], phrase: &str, rng: &mut StdRng) {
    for &r in rows {
        let TextValue::Text(text) = &mut t.values[r as usize] else {
            continue; // not usable, so never chosen; nothing to insert into
        };
        let mut boundaries = vec![0];
        let mut previous_space = false;
        for (i, c) in text.char_indices() {
            if previous_space && !c.is_whitespace() {
                boundaries.push(i);
            }
            previous_space = c.is_whitespace();
        }
        boundaries.push(text.len());
        let at = boundaries[rng.random_range(0..boundaries.len())];
        let inserted = if at == text.len() {
            if text.is_empty() || text.ends_with(char::is_whitespace) {
                phrase.to_string()
            } else {
                format!(" {phrase}")
            }
        } else {
            format!("{phrase} ")
        };
        text.insert_str(at, &inserted);
    }
}

fn patch_table(t: &mut Table, usable: &[u32], rows: &[u32], columns: usize, rng: &mut StdRng) {
    let d = t.dim();
    let range = ranges(t, usable);
    let mut cols: Vec<usize> = (0..d).collect();
    cols.shuffle(rng);
    cols.truncate(columns.clamp(1, d));
    for &r in rows {
        for &j in &cols {
            t.values[r as usize * d + j] = range[j].1;
        }
    }
}

fn blend_table(t: &mut Table, usable: &[u32], rows: &[u32], alpha: f64, rng: &mut StdRng) {
    let d = t.dim();
    let pattern: Vec<f64> = ranges(t, usable)
        .iter()
        .map(|&(lo, hi)| {
            if hi > lo {
                rng.random_range(lo as f64..=hi as f64)
            } else {
                lo as f64
            }
        })
        .collect();
    for &r in rows {
        for (v, &p) in t.values[r as usize * d..(r as usize + 1) * d]
            .iter_mut()
            .zip(&pattern)
        {
            *v = ((1.0 - alpha) * *v as f64 + alpha * p) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{DecodedImage, Format, Ids, ImageStatus, Labels, Origin};

    fn images(n: usize) -> Dataset {
        let status = ImageStatus::Decoded(DecodedImage {
            width: 4,
            height: 4,
            color: "L8".into(),
            channels: 1,
            lossy: false,
            content_hash: 0,
        });
        Dataset {
            origin: Origin {
                path: "mem".into(),
                format: Format::ImageFolder,
                files: n,
                ignored_columns: Vec::new(),
            },
            ids: Ids::RowNumber(n),
            labels: Some(Labels::from_names(
                "y".into(),
                (0..n).map(|i| Some((i % 4).to_string())).collect(),
            )),
            payload: Payload::Images(Images {
                width: 4,
                height: 4,
                channels: 1,
                pixels: vec![10; n * 16],
                status: vec![status; n],
            }),
        }
    }

    #[test]
    fn badnets_patches_relabels_and_spares_the_target_class() {
        let mut ds = images(40);
        let config = AttackConfig {
            kind: AttackKind::Badnets,
            rate: 0.25,
            target: Some("2".into()),
            patch: Some(2),
            ..Default::default()
        };
        let truth = inject(&mut ds, &config).unwrap();
        let poisoned: Vec<usize> = (0..40).filter(|&i| truth[i]).collect();
        assert_eq!(poisoned.len(), 10);
        let labels = ds.labels.as_ref().unwrap();
        let Payload::Images(img) = &ds.payload else {
            unreachable!()
        };
        for &i in &poisoned {
            assert_ne!(i % 4, 2, "target-class rows are not poisoned");
            assert_eq!(labels.name(i), Some("2"));
            let px = img.image(i);
            assert_eq!(
                (px[10], px[11], px[14], px[15], px[0]),
                (255, 255, 255, 255, 10)
            );
        }
        // The same seed plants the same poisons.
        let mut again = images(40);
        assert_eq!(inject(&mut again, &config).unwrap(), truth);
    }

    #[test]
    fn a_text_trigger_is_inserted_between_words_and_relabelled() {
        let n = 30;
        let texts: Vec<TextValue> = (0..n)
            .map(|i| TextValue::Text(format!("message number {i} says hello")))
            .collect();
        let mut ds = images(n);
        ds.payload = Payload::Text(Texts {
            column: "text".into(),
            values: texts.clone(),
        });
        let config = AttackConfig {
            kind: AttackKind::Badnets,
            rate: 0.2,
            target: Some("1".into()),
            trigger: "zq xv".into(),
            ..Default::default()
        };
        let truth = inject(&mut ds, &config).unwrap();
        let Payload::Text(after) = &ds.payload else {
            unreachable!()
        };
        let labels = ds.labels.as_ref().unwrap();
        assert_eq!(truth.iter().filter(|&&t| t).count(), 6);
        for i in 0..n {
            let (TextValue::Text(before), TextValue::Text(now)) = (&texts[i], &after.values[i])
            else {
                unreachable!()
            };
            if truth[i] {
                assert_eq!(labels.name(i), Some("1"));
                assert_eq!(now.matches("zq xv").count(), 1, "{now}");
                // Removing the phrase gives the original words back.
                let words: Vec<&str> = now.split_whitespace().collect();
                let at = words.iter().position(|&w| w == "zq").unwrap();
                assert_eq!(words[at + 1], "xv");
                let rest: Vec<&str> = [&words[..at], &words[at + 2..]].concat();
                assert_eq!(rest.join(" "), *before);
            } else {
                assert_eq!(now, before);
            }
        }
        let blend = AttackConfig {
            kind: AttackKind::Blend,
            ..config
        };
        assert_eq!(
            inject(&mut ds, &blend),
            Err(AttackError::Text("a blend trigger"))
        );
    }

    #[test]
    fn flips_change_every_chosen_label_and_too_many_is_an_error() {
        let mut ds = images(40);
        let before: Vec<Option<u32>> = ds.labels.as_ref().unwrap().index.clone();
        let config = AttackConfig {
            kind: AttackKind::Flip,
            rate: 0.5,
            ..Default::default()
        };
        let truth = inject(&mut ds, &config).unwrap();
        let after = &ds.labels.as_ref().unwrap().index;
        for i in 0..40 {
            assert_eq!(truth[i], before[i] != after[i], "row {i}");
        }
        let mut ds = images(8);
        let err = inject(
            &mut ds,
            &AttackConfig {
                kind: AttackKind::Badnets,
                rate: 0.9,
                ..Default::default()
            },
        );
        assert_eq!(
            err,
            Err(AttackError::TooFew {
                rate: 0.9,
                wanted: 7,
                available: 6
            })
        );
    }

    #[test]
    fn blend_mixes_one_pattern_into_tables() {
        let mut t = Table {
            columns: vec!["a".into(), "b".into()],
            values: vec![0.0, 0.0, 10.0, 100.0, 0.0, 0.0],
        };
        let mut rng = StdRng::seed_from_u64(1);
        blend_table(&mut t, &[0, 1, 2], &[0, 2], 0.5, &mut rng);
        assert_eq!(t.values[0], t.values[4]);
        assert!(t.values[0] > 0.0 && t.values[0] <= 5.0);
        assert_eq!(&t.values[2..4], &[10.0, 100.0]);
    }
}
