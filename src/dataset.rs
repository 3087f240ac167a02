//! The in-memory training set that every later step works on: row ids, labels and one payload
//! (a numeric table, decoded images or text). Nothing downstream knows which file format it
//! came from. Rows are never removed: a row that cannot be used (an undecodable image, a null
//! feature) stays in place and is reported by `validate`.

use std::borrow::Cow;

/// A loaded training set. Every per-row vector has `len()` entries.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub origin: Origin,
    pub ids: Ids,
    pub labels: Option<Labels>,
    pub payload: Payload,
}

/// Where the rows came from, for the report.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The path the user gave, as typed (lossy only for display).
    pub path: String,
    pub format: Format,
    /// Number of files read (Parquet shards, images).
    pub files: usize,
    /// Columns present in the input but not used, with their types, so nothing is dropped
    /// without the report saying so.
    pub ignored_columns: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Format {
    Csv,
    Parquet,
    ImageFolder,
    /// A table handed over in memory (the Python package).
    Arrow,
}

impl Format {
    /// The name used in reports (the same as the JSON value).
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// Row identifiers: the row number (0-based) unless an id column was named.
#[derive(Debug, Clone)]
pub enum Ids {
    RowNumber(usize),
    Column {
        name: String,
        values: Vec<Option<String>>,
    },
    /// Paths relative to an image folder's root, `class/file.png`.
    Paths(Vec<String>),
}

impl Ids {
    pub fn len(&self) -> usize {
        match self {
            Ids::RowNumber(n) => *n,
            Ids::Column { values, .. } => values.len(),
            Ids::Paths(p) => p.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The id of row `i` as shown in reports; a missing id shows as `#<row>`.
    pub fn get(&self, i: usize) -> Cow<'_, str> {
        match self {
            Ids::RowNumber(_) => Cow::Owned(i.to_string()),
            Ids::Column { values, .. } => match &values[i] {
                Some(v) => Cow::Borrowed(v.as_str()),
                None => Cow::Owned(format!("#{i}")),
            },
            Ids::Paths(p) => Cow::Borrowed(p[i].as_str()),
        }
    }

    /// The id column's name, if the ids came from one.
    pub fn column(&self) -> Option<&str> {
        match self {
            Ids::Column { name, .. } => Some(name),
            _ => None,
        }
    }
}

/// Class labels: the sorted distinct class names and each row's class index.
#[derive(Debug, Clone)]
pub struct Labels {
    /// The label column, or `<folder>` for image folders.
    pub column: String,
    pub classes: Vec<String>,
    /// `None` where the label is missing (null).
    pub index: Vec<Option<u32>>,
}

impl Labels {
    /// Builds labels from per-row names, ordering classes numerically when every name is an
    /// integer (so `2` sorts before `10`), else lexically.
    pub fn from_names(column: String, names: Vec<Option<String>>) -> Self {
        Self::from_iter(column, || names.iter().map(Option::as_deref))
    }

    /// [`Labels::from_names`] over borrowed names, read twice (no owned copy of every row's
    /// name: a streaming scan's labels hold 4 bytes a row).
    pub fn from_iter<'a, I>(column: String, names: impl Fn() -> I) -> Self
    where
        I: Iterator<Item = Option<&'a str>>,
    {
        let distinct: std::collections::HashSet<&str> = names().flatten().collect();
        let mut classes: Vec<String> = distinct.into_iter().map(str::to_owned).collect();
        classes.sort_unstable();
        if classes.iter().all(|c| c.parse::<i64>().is_ok()) {
            classes.sort_by_key(|c| c.parse::<i64>().unwrap_or_default());
        }
        let lookup: std::collections::HashMap<&str, u32> = classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i as u32))
            .collect();
        let index = names().map(|n| n.map(|n| lookup[n])).collect();
        Labels {
            column,
            classes,
            index,
        }
    }

    /// [`Labels::from_names`] of an integer column, without a text copy of every row: the
    /// same classes (integers in their text form, in numeric order) and indices.
    pub fn from_integers<I>(column: String, values: impl Fn() -> I) -> Self
    where
        I: Iterator<Item = Option<i64>>,
    {
        let distinct: std::collections::HashSet<i64> = values().flatten().collect();
        let mut distinct: Vec<i64> = distinct.into_iter().collect();
        distinct.sort_unstable();
        let lookup: std::collections::HashMap<i64, u32> = distinct
            .iter()
            .enumerate()
            .map(|(i, &v)| (v, i as u32))
            .collect();
        let index = values().map(|v| v.map(|v| lookup[&v])).collect();
        Labels {
            column,
            classes: distinct.iter().map(i64::to_string).collect(),
            index,
        }
    }

    /// Number of rows in each class, in `classes` order.
    pub fn counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for c in self.index.iter().flatten() {
            counts[*c as usize] += 1;
        }
        counts
    }

    pub fn name(&self, row: usize) -> Option<&str> {
        self.index[row].map(|c| self.classes[c as usize].as_str())
    }
}

/// What each row carries.
#[derive(Debug, Clone)]
pub enum Payload {
    Table(Table),
    /// A table too large for memory, kept on disk by a streaming scan (`crate::stream`).
    Spilled(SpilledTable),
    Images(Images),
    /// An image folder streamed by `crate::stream::images`: every image's status, and no
    /// pixels (`pixels` is empty); the view the scan computed is in its work folder.
    SpilledImages(Images),
    Text(Texts),
}

/// Numeric features kept on disk by a streaming scan (`crate::stream`): the column names and
/// whether each row's features are all finite. The values themselves are in the scan's work
/// folder while it runs.
#[derive(Debug, Clone)]
pub struct SpilledTable {
    pub columns: Vec<String>,
    /// Whether every feature of the row is a finite number.
    pub finite: Vec<bool>,
}

impl SpilledTable {
    pub fn dim(&self) -> usize {
        self.columns.len()
    }
}

impl Payload {
    pub fn kind(&self) -> &'static str {
        match self {
            Payload::Table(_) | Payload::Spilled(_) => "table",
            Payload::Images(_) | Payload::SpilledImages(_) => "images",
            Payload::Text(_) => "text",
        }
    }
}

/// Numeric features as one contiguous row-major `n x d` f32 buffer, the layout handed to the
/// tensor library. A null in the input is stored as NaN and reported by `validate`.
#[derive(Debug, Clone)]
pub struct Table {
    pub columns: Vec<String>,
    pub values: Vec<f32>,
}

impl Table {
    pub fn dim(&self) -> usize {
        self.columns.len()
    }

    pub fn row(&self, i: usize) -> &[f32] {
        let d = self.dim();
        &self.values[i * d..(i + 1) * d]
    }
}

/// Decoded images, all brought to one size and channel count, as `n x height x width x
/// channels` u8 pixels. A row whose image failed to decode holds zeros and `ImageStatus::Failed`.
#[derive(Debug, Clone)]
pub struct Images {
    pub width: u32,
    pub height: u32,
    pub channels: u32,
    pub pixels: Vec<u8>,
    pub status: Vec<ImageStatus>,
}

impl Images {
    pub fn pixels_per_image(&self) -> usize {
        (self.width * self.height * self.channels) as usize
    }

    pub fn image(&self, i: usize) -> &[u8] {
        let p = self.pixels_per_image();
        &self.pixels[i * p..(i + 1) * p]
    }
}

/// What happened to one image on its way into the dataset.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageStatus {
    Decoded(DecodedImage),
    /// The file or bytes could not be read or decoded; the reason names what was expected.
    Failed(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct DecodedImage {
    /// Size as stored in the file.
    pub width: u32,
    pub height: u32,
    /// Colour type as stored in the file, e.g. `L8`, `Rgba8`, `Rgb16`.
    pub color: String,
    /// 1 if the file is grey, 3 if it has colour (alpha not counted).
    pub channels: u32,
    /// Whether bringing it to 8-bit grey/RGB lost information: an alpha channel or 16-bit
    /// depth.
    pub lossy: bool,
    /// 128-bit hash of the decoded pixels at their original size and colour type, used for
    /// the exact-duplicate check.
    pub content_hash: u128,
}

/// A text column; `None` where the value is null, `Err` where the bytes were not UTF-8.
#[derive(Debug, Clone)]
pub struct Texts {
    pub column: String,
    pub values: Vec<TextValue>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TextValue {
    Text(String),
    Null,
    InvalidUtf8 { valid_up_to: usize },
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_labels_sort_numerically_and_missing_stay_missing() {
        let names = ["10", "2", "2", "1"]
            .iter()
            .map(|s| Some(s.to_string()))
            .chain([None])
            .collect();
        let labels = Labels::from_names("y".into(), names);
        assert_eq!(labels.classes, ["1", "2", "10"]);
        assert_eq!(labels.index, [Some(2), Some(1), Some(1), Some(0), None]);
        assert_eq!(labels.counts(), [1, 2, 1]);
    }

    #[test]
    fn text_labels_sort_lexically() {
        let names = ["dog", "cat", "10"]
            .iter()
            .map(|s| Some(s.to_string()))
            .collect();
        let labels = Labels::from_names("y".into(), names);
        assert_eq!(labels.classes, ["10", "cat", "dog"]);
    }
}
