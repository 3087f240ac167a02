//! A CSV (or TSV) table over the memory limit is first copied to Parquet in the work folder,
//! a chunk of whole records at a time, so that the streaming scan can read it one column at
//! a time as it reads a Parquet table.
//!
//! polars parses every chunk, with the column types the in-memory read infers (from the
//! first rows, or from the whole file when a later value does not fit them), so every value
//! is the one the in-memory scan reads. The structural check of [`csv_check`] runs in the
//! same pass and gives where each record starts; a chunk is cut only there, so a quoted field
//! that holds a newline stays whole.

use std::io::Cursor;
use std::os::unix::fs::FileExt;
use std::path::Path;

use polars::prelude::*;

use super::StreamError;
use crate::embed::EmbedError;
use crate::progress::Progress;
use crate::source::tabular::{self, TabularFormat, TabularInput, CSV_INFER_ROWS};
use crate::source::{csv_check, SourceError};
use crate::Error;

/// Bytes of CSV text parsed at a time: the text, its parsed frame (about as large for
/// numbers) and the Parquet pages being written are resident together. Tests cut their small
/// tables into many chunks.
pub(super) const CHUNK_BYTES: u64 = if cfg!(test) { 16 << 10 } else { 32 << 20 };

/// The Parquet copy of the CSV `input` (fields split by `separator`) in `work`: one file per
/// CSV file, in order, under `input`'s own path (which errors and the report name). Returns
/// it and its rows.
pub fn to_parquet(
    input: &TabularInput,
    separator: u8,
    work: &Path,
    progress: &Progress,
) -> Result<(TabularInput, u64), Error> {
    let first = schema(input, Some(CSV_INFER_ROWS))?;
    match convert(input, separator, &first, work, progress) {
        // As in memory: types inferred from the first rows that a later value does not fit
        // are inferred again from the whole file.
        Err(Failure::Parse(_)) => {
            let whole = schema(input, None)?;
            convert(input, separator, &whole, work, progress).map_err(|f| f.into_error(input))
        }
        other => other.map_err(|f| f.into_error(input)),
    }
}

/// The column types polars infers for `input` from `infer_rows` rows (all with None).
fn schema(input: &TabularInput, infer_rows: Option<usize>) -> Result<SchemaRef, SourceError> {
    let mut lf = tabular::scan(input, infer_rows)?;
    super::guarded(input, || lf.collect_schema())
}

/// Why a conversion stopped: a value its types do not fit, or anything else.
enum Failure {
    Parse(PolarsError),
    Other(Error),
}

impl Failure {
    fn into_error(self, input: &TabularInput) -> Error {
        match self {
            Failure::Parse(source) => SourceError::Polars {
                path: input.path.clone(),
                format: input.format.name(),
                source,
            }
            .into(),
            Failure::Other(e) => e,
        }
    }
}

impl From<SourceError> for Failure {
    fn from(e: SourceError) -> Self {
        Failure::Other(e.into())
    }
}

impl From<StreamError> for Failure {
    fn from(e: StreamError) -> Self {
        Failure::Other(e.into())
    }
}

fn convert(
    input: &TabularInput,
    separator: u8,
    schema: &SchemaRef,
    work: &Path,
    progress: &Progress,
) -> Result<(TabularInput, u64), Failure> {
    let total: u64 = input
        .files
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    let bar = progress.bar(total, "CSV to Parquet");
    let mut files = Vec::with_capacity(input.files.len());
    let mut rows = 0u64;
    for (i, path) in input.files.iter().enumerate() {
        let out = work.join(format!("table-{i}.parquet"));
        rows += one_file(path, separator, schema, &out, progress, &|n| bar.inc(n))?;
        files.push(out);
    }
    bar.finish_and_clear();
    let copy = TabularInput {
        path: input.path.clone(),
        format: TabularFormat::Parquet,
        files,
    };
    Ok((copy, rows))
}

/// Copies the CSV file `path` to the Parquet file `out`; returns its rows.
fn one_file(
    path: &Path,
    separator: u8,
    schema: &SchemaRef,
    out: &Path,
    progress: &Progress,
    done: &dyn Fn(u64),
) -> Result<u64, Failure> {
    let file = std::fs::File::open(path).map_err(|e| SourceError::io(path, e))?;
    let len = file.metadata().map_err(|e| SourceError::io(path, e))?.len();
    let sink = std::fs::File::create(out).map_err(|e| StreamError::io(out, e))?;
    // The copy is read once, on this machine, a column at a time: no compression and no
    // statistics (writing 1M x 64 values took 6.8 s with polars' defaults, 5.2 without).
    let mut writer = ParquetWriter::new(sink)
        .with_compression(ParquetCompression::Uncompressed)
        .with_statistics(StatisticsOptions::empty())
        .batched(schema)
        .map_err(|e| write_error(out, e))?;
    // Appends the bytes [from, to) of the file to `buf`.
    let read = |from: u64, to: u64, buf: &mut Vec<u8>| {
        let at = buf.len();
        buf.resize(at + (to - from) as usize, 0);
        file.read_exact_at(&mut buf[at..], from)
            .map_err(|e| SourceError::io(path, e))
    };
    let mut rows = 0u64;
    // Parses the records in [from, to) behind the header, [0, body), and writes them.
    let mut chunk = |body: u64, from: u64, to: u64| -> Result<(), Failure> {
        if progress.cancelled() {
            return Err(Failure::Other(EmbedError::Cancelled.into()));
        }
        let mut bytes = Vec::with_capacity((body + to - from) as usize);
        read(0, body, &mut bytes)?;
        read(from, to, &mut bytes)?;
        let df = crate::source::guard::guarded(|| {
            CsvReadOptions::default()
                .with_has_header(true)
                // One row group a chunk: a row group for each piece polars parsed on its own
                // made writing 11 times slower (5.2 s against 0.5 s at 1M x 64).
                .with_rechunk(true)
                .with_schema(Some(schema.clone()))
                .map_parse_options(|o| o.with_separator(separator))
                .into_reader_with_file_handle(Cursor::new(bytes))
                .finish()
        })
        .unwrap_or_else(|panic| {
            Err(PolarsError::ComputeError(
                format!("the decoder failed on inconsistent data: {panic}").into(),
            ))
        })
        .map_err(Failure::Parse)?;
        rows += df.height() as u64;
        writer.write_batch(&df).map_err(|e| write_error(out, e))?;
        done(to - from);
        Ok(())
    };
    // Where the first record starts (the header ends), and where the chunk being gathered
    // starts.
    let mut cut: Option<(u64, u64)> = None;
    csv_check::walk(path, separator, |at| {
        match cut {
            None => cut = Some((at, at)),
            Some((body, from)) if at - from >= CHUNK_BYTES => {
                chunk(body, from, at)?;
                cut = Some((body, at));
            }
            Some(_) => {}
        }
        Ok::<_, Failure>(())
    })?;
    if let Some((body, from)) = cut {
        chunk(body, from, len)?;
    }
    writer.finish().map_err(|e| write_error(out, e))?;
    Ok(rows)
}

fn write_error(out: &Path, e: PolarsError) -> Failure {
    Failure::Other(StreamError::io(out, std::io::Error::other(e.to_string())).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input_of(path: &Path) -> TabularInput {
        TabularInput {
            path: path.to_path_buf(),
            format: TabularFormat::Csv { separator: b',' },
            files: vec![path.to_path_buf()],
        }
    }

    fn collect(input: &TabularInput, infer: Option<usize>) -> DataFrame {
        tabular::scan(input, infer).unwrap().collect().unwrap()
    }

    /// Past the rows types are inferred from, a text in a float column and a float in an
    /// integer column: the copy has the whole file's types and values, as in memory.
    #[test]
    fn the_copy_holds_the_values_and_types_the_in_memory_read_has() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let rows = CSV_INFER_ROWS + 50;
        let mut text = String::from("x,n,s,label\n");
        for i in 0..rows {
            let x = if i == rows - 10 {
                "n/a".to_string()
            } else {
                format!("{}", i as f64 / 7.0)
            };
            let n = if i == rows - 5 {
                "2.5".into()
            } else {
                i.to_string()
            };
            // A quoted field with the separator and a newline, across chunk cuts.
            text.push_str(&format!("{x},{n},\"a,\nb{i}\",{}\n", i % 3));
        }
        std::fs::write(&path, &text).unwrap();
        let work = tempfile::tempdir().unwrap();
        let input = input_of(&path);
        let (copy, n) = to_parquet(&input, b',', work.path(), &Progress::hidden()).unwrap();
        assert_eq!(n, rows as u64);
        assert_eq!(copy.path, path);
        assert_eq!(copy.files, [work.path().join("table-0.parquet")]);
        let read = collect(&copy, None);
        let memory = collect(&input, None);
        assert!(read.equals_missing(&memory));
        assert_eq!(read.column("x").unwrap().dtype(), &DataType::String);
        assert_eq!(read.column("n").unwrap().dtype(), &DataType::Float64);
        assert!(text.len() as u64 > 20 * CHUNK_BYTES);
    }

    #[test]
    fn a_file_of_only_a_header_copies_to_no_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, "x,label\n").unwrap();
        let (copy, n) =
            to_parquet(&input_of(&path), b',', dir.path(), &Progress::hidden()).unwrap();
        // The scan then stops on "no rows", naming the CSV.
        assert_eq!(n, 0);
        let read = collect(&copy, None);
        assert_eq!(read.height(), 0);
        assert_eq!(read.get_column_names(), ["x", "label"]);
    }
}
