//! Checks over the loaded dataset, whatever its format: class sizes, allowed labels, ids,
//! exact duplicates (and duplicates whose labels disagree), image decoding and conversion,
//! text encoding.

use std::collections::HashMap;

use rayon::prelude::*;

use super::finding::{Finding, Rule};
use super::schema::Schema as Declared;
use crate::dataset::{Dataset, DecodedImage, Ids, ImageStatus, Images, Payload, TextValue};

/// Classes with fewer samples than this get a `small_class` warning: per-class statistics
/// (covariances, clustering) are meaningless below it.
pub const MIN_CLASS_SIZE: usize = 5;

/// A streamed table's duplicate check is [`spilled_duplicates`], with the hashes its scan took.
pub fn check(dataset: &Dataset, declared: Option<&Declared>) -> Vec<Finding> {
    let mut findings = Vec::new();
    findings.extend(classes(dataset, declared));
    findings.extend(duplicate_ids(dataset));
    findings.extend(duplicates(dataset));
    match &dataset.payload {
        Payload::Images(images) | Payload::SpilledImages(images) => {
            findings.extend(image_status(dataset, images))
        }
        Payload::Text(texts) => {
            let bad: Vec<u32> = rows_where(&texts.values, |v| {
                matches!(v, TextValue::InvalidUtf8 { .. })
            });
            if !bad.is_empty() {
                let valid = match &texts.values[bad[0] as usize] {
                    TextValue::InvalidUtf8 { valid_up_to } => *valid_up_to,
                    _ => 0,
                };
                findings.push(
                    Finding::error(
                        Rule::InvalidUtf8,
                        format!(
                            "{} texts are not valid UTF-8 (first: row {}, invalid after byte {valid})",
                            bad.len(),
                            dataset.ids.get(bad[0] as usize)
                        ),
                    )
                    .column(&texts.column)
                    .rows(bad),
                );
            }
        }
        Payload::Table(_) | Payload::Spilled(_) => {}
    }
    findings
}

fn rows_where<T>(values: &[T], pred: impl Fn(&T) -> bool) -> Vec<u32> {
    values
        .iter()
        .enumerate()
        .filter(|(_, v)| pred(v))
        .map(|(i, _)| i as u32)
        .collect()
}

fn classes(dataset: &Dataset, declared: Option<&Declared>) -> Vec<Finding> {
    let Some(labels) = &dataset.labels else {
        return Vec::new();
    };
    let mut findings = Vec::new();
    let counts = labels.counts();
    if labels.classes.len() == 1 {
        findings.push(
            Finding::error(
                Rule::SingleClass,
                format!(
                    "every labelled row has the label {:?}; a classifier needs two or more classes",
                    labels.classes[0]
                ),
            )
            .column(&labels.column),
        );
    }
    let small: Vec<String> = labels
        .classes
        .iter()
        .zip(&counts)
        .filter(|(_, &c)| c < MIN_CLASS_SIZE)
        .map(|(name, c)| format!("{name:?} ({c})"))
        .collect();
    if !small.is_empty() {
        let rows = rows_where(&labels.index, |c| {
            c.is_some_and(|c| counts[c as usize] < MIN_CLASS_SIZE)
        });
        findings.push(
            Finding::warning(
                Rule::SmallClass,
                format!(
                    "{} classes have fewer than {MIN_CLASS_SIZE} samples: {}",
                    small.len(),
                    small.join(", ")
                ),
            )
            .column(&labels.column)
            .rows(rows),
        );
    }
    if let Some(allowed) = declared.and_then(Declared::allowed_labels) {
        let bad: Vec<&str> = labels
            .classes
            .iter()
            .filter(|c| !allowed.contains(c))
            .map(String::as_str)
            .collect();
        if !bad.is_empty() {
            let rows = rows_where(&labels.index, |c| {
                c.is_some_and(|c| !allowed.contains(&labels.classes[c as usize]))
            });
            findings.push(
                Finding::error(
                    Rule::LabelNotAllowed,
                    format!(
                        "labels {bad:?} are not among the declared {allowed:?} ({} rows)",
                        rows.len()
                    ),
                )
                .column(&labels.column)
                .rows(rows),
            );
        }
    }
    findings
}

fn duplicate_ids(dataset: &Dataset) -> Option<Finding> {
    let Ids::Column { name, values } = &dataset.ids else {
        return None;
    };
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut rows = Vec::new();
    let mut first = None;
    for (i, id) in values.iter().enumerate() {
        let Some(id) = id else { continue };
        match seen.get(id.as_str()) {
            Some(&earlier) => {
                first.get_or_insert((id, earlier, i));
                rows.push(i as u32);
            }
            None => {
                seen.insert(id, i);
            }
        }
    }
    let (id, a, b) = first?;
    Some(
        Finding::error(
            Rule::DuplicateId,
            format!(
                "{} rows repeat an earlier id (first: {id:?} at rows {a} and {b}); ids must be unique",
                rows.len()
            ),
        )
        .column(name)
        .rows(rows),
    )
}

/// Groups of rows (two or more, ascending) whose payloads are exactly equal. `key` is a hash
/// (`None` skips the row); `same` confirms equality so a hash collision cannot merge rows.
fn duplicate_groups(
    n: usize,
    key: impl Fn(usize) -> Option<u128> + Sync,
    same: impl Fn(usize, usize) -> bool,
) -> Vec<Vec<u32>> {
    let keyed: Vec<(u128, u32)> = (0..n)
        .into_par_iter()
        .filter_map(|i| key(i).map(|k| (k, i as u32)))
        .collect();
    keyed_groups(keyed, same)
}

/// [`duplicate_groups`] of `(hash, row)` pairs.
fn keyed_groups(mut keyed: Vec<(u128, u32)>, same: impl Fn(usize, usize) -> bool) -> Vec<Vec<u32>> {
    keyed.par_sort_unstable();
    let mut groups = Vec::new();
    for run in keyed.chunk_by(|a, b| a.0 == b.0).filter(|r| r.len() > 1) {
        // Within one hash, split by exact equality (almost always a single class).
        let mut classes: Vec<Vec<u32>> = Vec::new();
        for &(_, i) in run {
            match classes.iter_mut().find(|c| same(c[0] as usize, i as usize)) {
                Some(c) => c.push(i),
                None => classes.push(vec![i]),
            }
        }
        groups.extend(classes.into_iter().filter(|c| c.len() > 1));
    }
    groups.sort_unstable();
    groups
}

/// Exact duplicates of a table on disk: grouped by `keyed`, each row's 128-bit hash (taken as
/// the in-memory check takes it) and its number, and confirmed by reading the rows back
/// (should a read fail, the hashes alone decide).
pub fn spilled_duplicates(
    dataset: &Dataset,
    keyed: Vec<(u128, u32)>,
    columns: &crate::stream::spill::Spill,
) -> Vec<Finding> {
    // `columns` holds one column a row: row `i` of the table is value `i` of each.
    let row = |i: usize| -> Option<Vec<f32>> {
        let mut row = vec![0f32; columns.rows];
        for (j, v) in row.iter_mut().enumerate() {
            columns.read_at(j, i, std::slice::from_mut(v)).ok()?;
        }
        Some(row)
    };
    let groups = keyed_groups(keyed, |a, b| match (row(a), row(b)) {
        (Some(x), Some(y)) => bytes_of(&x) == bytes_of(&y),
        _ => true,
    });
    duplicate_findings(dataset, &groups)
}

fn duplicates(dataset: &Dataset) -> Vec<Finding> {
    let n = dataset.len();
    let groups = match &dataset.payload {
        // No feature columns (labels read for `--embeddings` alone): nothing to compare.
        Payload::Table(t) if t.dim() == 0 => Vec::new(),
        Payload::Table(t) => duplicate_groups(
            n,
            |i| Some(xxhash_rust::xxh3::xxh3_128(bytes_of(t.row(i)))),
            |a, b| bytes_of(t.row(a)) == bytes_of(t.row(b)),
        ),
        // See `spilled_duplicates`.
        Payload::Spilled(_) => Vec::new(),
        Payload::Images(img) => duplicate_groups(
            n,
            |i| match &img.status[i] {
                ImageStatus::Decoded(d) => Some(d.content_hash),
                ImageStatus::Failed(_) => None,
            },
            // The 128-bit hash covers the original pixels; the resized pixels must agree too.
            |a, b| img.image(a) == img.image(b),
        ),
        // Streamed: no pixels are kept, so the hash of the original pixels, their width and
        // colour type decides alone.
        Payload::SpilledImages(img) => duplicate_groups(
            n,
            |i| match &img.status[i] {
                ImageStatus::Decoded(d) => Some(d.content_hash),
                ImageStatus::Failed(_) => None,
            },
            |_, _| true,
        ),
        Payload::Text(t) => duplicate_groups(
            n,
            |i| match &t.values[i] {
                TextValue::Text(s) => Some(xxhash_rust::xxh3::xxh3_128(s.as_bytes())),
                _ => None,
            },
            |a, b| t.values[a] == t.values[b],
        ),
    };
    duplicate_findings(dataset, &groups)
}

/// The findings of duplicate groups: copies with different labels, and repeated rows.
fn duplicate_findings(dataset: &Dataset, groups: &[Vec<u32>]) -> Vec<Finding> {
    let label = |i: u32| dataset.labels.as_ref().and_then(|l| l.index[i as usize]);
    let (mut conflicting, mut repeated) = (Vec::new(), Vec::new());
    let (mut first_conflict, mut first_repeat) = (None, None);
    for g in groups {
        let mut labels: Vec<_> = g.iter().filter_map(|&i| label(i)).collect();
        labels.sort_unstable();
        labels.dedup();
        if labels.len() > 1 {
            first_conflict.get_or_insert((g[0], g[1]));
            conflicting.extend_from_slice(g);
        } else {
            first_repeat.get_or_insert((g[0], g[1]));
            repeated.extend_from_slice(&g[1..]);
        }
    }
    let id = |i: u32| dataset.ids.get(i as usize).into_owned();
    let mut findings = Vec::new();
    if let Some((a, b)) = first_conflict {
        conflicting.sort_unstable();
        findings.push(
            Finding::error(
                Rule::ConflictingDuplicates,
                format!(
                    "{} rows are exact copies of another row with a different label (first: {:?} and {:?}), a sign of label noise or flipped labels",
                    conflicting.len(),
                    id(a),
                    id(b)
                ),
            )
            .rows(conflicting),
        );
    }
    if let Some((a, b)) = first_repeat {
        repeated.sort_unstable();
        findings.push(
            Finding::warning(
                Rule::DuplicateRows,
                format!(
                    "{} rows repeat an earlier row exactly, with the same label (first: {:?} repeats {:?})",
                    repeated.len(),
                    id(b),
                    id(a)
                ),
            )
            .rows(repeated),
        );
    }
    findings
}

pub(crate) fn bytes_of(row: &[f32]) -> &[u8] {
    bytemuck::cast_slice(row)
}

fn image_status(dataset: &Dataset, images: &Images) -> Vec<Finding> {
    let id = |i: u32| dataset.ids.get(i as usize).into_owned();
    let mut findings = Vec::new();
    let failed = rows_where(&images.status, |s| matches!(s, ImageStatus::Failed(_)));
    if let Some(&first) = failed.first() {
        let ImageStatus::Failed(reason) = &images.status[first as usize] else {
            unreachable!("filtered on Failed")
        };
        findings.push(
            Finding::error(
                Rule::UndecodableImage,
                format!(
                    "{} images could not be read (first: {}: {reason})",
                    failed.len(),
                    id(first)
                ),
            )
            .rows(failed),
        );
    }
    let decoded = |pred: &dyn Fn(&DecodedImage) -> bool| {
        rows_where(
            &images.status,
            |s| matches!(s, ImageStatus::Decoded(d) if pred(d)),
        )
    };
    let (w, h, c) = (images.width, images.height, images.channels);
    let resized = decoded(&|d| (d.width, d.height) != (w, h));
    if !resized.is_empty() {
        findings.push(
            Finding::warning(
                Rule::MixedSizes,
                format!(
                    "{} images are not {w}x{h} and were resized to it (bilinear)",
                    resized.len()
                ),
            )
            .rows(resized),
        );
    }
    let mixed = decoded(&|d| d.channels != c);
    if !mixed.is_empty() {
        let (these, most, into) = if c == 1 {
            ("colour", "grey", "grey (luma)")
        } else {
            ("grey", "colour", "RGB")
        };
        findings.push(
            Finding::warning(
                Rule::MixedChannels,
                format!(
                    "{} images are {these} while most are {most}; they were converted to {into}",
                    mixed.len()
                ),
            )
            .rows(mixed),
        );
    }
    let lossy = decoded(&|d| d.lossy);
    if let Some(&first) = lossy.first() {
        let ImageStatus::Decoded(d) = &images.status[first as usize] else {
            unreachable!("filtered on Decoded")
        };
        findings.push(
            Finding::warning(
                Rule::ConvertedImage,
                format!(
                    "{} images have an alpha channel or 16-bit depth that was dropped in the conversion to 8-bit (first: {} is {})",
                    lossy.len(),
                    id(first),
                    d.color
                ),
            )
            .rows(lossy),
        );
    }
    findings
}
