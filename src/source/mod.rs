//! Sources: one per input format, each turning files into a [`Dataset`](crate::dataset::Dataset).
//! Nothing downstream knows the file format. `detect` decides which source reads an input
//! path; tabular files (and Parquet with image bytes) go through polars, image folders through
//! `image`.

pub mod arrow_stream;
pub mod csv_check;
pub mod decode;
pub mod frame;
pub mod guard;
pub mod image_dir;
pub mod parquet_check;
pub mod tabular;

use std::path::{Path, PathBuf};

use crate::validate::Finding;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{}: no such file or folder", .0.display())]
    NotFound(PathBuf),
    #[error("cannot read {}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: the folder is empty; expected .parquet shards or class folders ROOT/<class>/<image>", .0.display())]
    EmptyFolder(PathBuf),
    #[error("{}: no images found; expected PNG or JPEG files laid out as ROOT/<class>/<image>", .0.display())]
    NoImages(PathBuf),
    #[error("{}: unsupported input; expected a .parquet, .csv or .tsv file, a folder of .parquet shards, or an image folder", .0.display())]
    Unsupported(PathBuf),
    #[error("{}: cannot read as {format}", .path.display())]
    Polars {
        path: PathBuf,
        format: &'static str,
        #[source]
        source: polars::error::PolarsError,
    },
    #[error("{}: cannot read as Parquet: {problem}", .path.display())]
    Parquet { path: PathBuf, problem: String },
    #[error("{}: no column `{column}`; the columns are: {available}", .path.display())]
    NoColumn {
        path: PathBuf,
        column: String,
        available: String,
    },
    #[error("{}: column `{column}` has type {found}; expected {expected}", .path.display())]
    ColumnType {
        path: PathBuf,
        column: String,
        found: String,
        expected: &'static str,
    },
    #[error("{}: its columns differ from those of the first shard {}: {difference}", .path.display(), .first.display())]
    ShardMismatch {
        path: PathBuf,
        first: PathBuf,
        difference: String,
    },
    #[error("{}: line {line}: {problem}", .path.display())]
    CsvRow {
        path: PathBuf,
        line: u64,
        problem: String,
    },
    #[error("{}: has no rows", .0.display())]
    NoRows(PathBuf),
    #[error("{}: no numeric feature columns (columns: {available}); name them with --features, or the payload with --image-col or --text-col", .path.display())]
    NoFeatures { path: PathBuf, available: String },
    #[error("{}: --label, --id, --features, --image-col and --text-col name columns, and an image folder has none (its classes are its folder names)", .0.display())]
    ColumnsOnImageFolder(PathBuf),
    #[error("{}: {problem}", .path.display())]
    Images { path: PathBuf, problem: String },
}

impl SourceError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::NotFound {
            SourceError::NotFound(path.to_owned())
        } else {
            SourceError::Io {
                path: path.to_owned(),
                source,
            }
        }
    }
}

/// What an input path holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Tabular(tabular::TabularInput),
    ImageFolder(PathBuf),
}

/// Decides how to read `path` from its extension or, for a folder, its contents. Files that
/// a folder of shards holds besides `.parquet` are returned as findings, not dropped silently.
pub fn detect(path: &Path) -> Result<(Input, Vec<Finding>), SourceError> {
    let meta = std::fs::metadata(path).map_err(|e| SourceError::io(path, e))?;
    if meta.is_file() {
        let ext = extension(path);
        let format = match ext.as_deref() {
            Some("parquet" | "pq") => tabular::TabularFormat::Parquet,
            Some("csv") => tabular::TabularFormat::Csv { separator: b',' },
            Some("tsv") => tabular::TabularFormat::Csv { separator: b'\t' },
            _ => return Err(SourceError::Unsupported(path.to_owned())),
        };
        let input = tabular::TabularInput {
            path: path.to_owned(),
            format,
            files: vec![path.to_owned()],
        };
        return Ok((Input::Tabular(input), Vec::new()));
    }
    let mut entries = read_dir_sorted(path)?;
    if entries.is_empty() {
        return Err(SourceError::EmptyFolder(path.to_owned()));
    }
    let (shards, others): (Vec<_>, Vec<_>) = entries
        .drain(..)
        .partition(|p| p.is_file() && matches!(extension(p).as_deref(), Some("parquet" | "pq")));
    if shards.is_empty() {
        return Ok((Input::ImageFolder(path.to_owned()), Vec::new()));
    }
    let findings = image_dir::ignored_files(path, &others, "not a .parquet shard")
        .into_iter()
        .collect();
    let input = tabular::TabularInput {
        path: path.to_owned(),
        format: tabular::TabularFormat::Parquet,
        files: shards,
    };
    Ok((Input::Tabular(input), findings))
}

/// Lower-case file extension, if any.
pub(crate) fn extension(path: &Path) -> Option<String> {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
}

/// Entries of a folder, sorted by their raw name bytes so that row order is stable.
pub(crate) fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| SourceError::io(dir, e))? {
        paths.push(entry.map_err(|e| SourceError::io(dir, e))?.path());
    }
    paths.sort();
    Ok(paths)
}
