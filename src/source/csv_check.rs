//! A structural pass over a CSV file before polars reads it, with the `csv` crate: every row
//! must have as many fields as the header and be valid UTF-8. polars fills short rows with
//! nulls and reports long rows or bad bytes without a line number; this pass names the line.

use std::path::Path;

use super::SourceError;

/// Longest line read: a row is held whole (here and by polars), so a 1 GB line would be a
/// gigabyte in memory twice. Training rows are far shorter; a longer line is an error.
pub const MAX_LINE_BYTES: u64 = 64 << 20;

/// Checks `path` and returns its number of rows (records after the header).
pub fn check(path: &Path, separator: u8) -> Result<u64, SourceError> {
    walk(path, separator, |_| Ok::<_, SourceError>(()))
}

/// Checks `path` as [`check`] does, calling `each` with the byte offset at which every record
/// starts, in order (how a streaming scan cuts the file into chunks of whole records).
pub fn walk<E: From<SourceError>>(
    path: &Path,
    separator: u8,
    each: impl FnMut(u64) -> Result<(), E>,
) -> Result<u64, E> {
    walk_with(path, separator, MAX_LINE_BYTES, each)
}

#[cfg(test)]
fn check_with(path: &Path, separator: u8, max_line: u64) -> Result<u64, SourceError> {
    walk_with(path, separator, max_line, |_| Ok::<_, SourceError>(()))
}

/// The number of fields in `path`'s header, read under the same line limit.
pub fn header_fields(path: &Path, separator: u8) -> Result<usize, SourceError> {
    let mut reader = reader(path, separator, MAX_LINE_BYTES)?;
    let header = reader.headers().map_err(|e| describe(path, e))?;
    Ok(header.len())
}

type Reader = csv::Reader<LineLimit<std::io::BufReader<std::fs::File>>>;

fn reader(path: &Path, separator: u8, max_line: u64) -> Result<Reader, SourceError> {
    let file = std::fs::File::open(path).map_err(|e| SourceError::io(path, e))?;
    Ok(csv::ReaderBuilder::new()
        .delimiter(separator)
        .has_headers(true)
        .flexible(false)
        .from_reader(LineLimit {
            inner: std::io::BufReader::with_capacity(1 << 20, file),
            max: max_line,
            run: 0,
            line: 1,
        }))
}

fn walk_with<E: From<SourceError>>(
    path: &Path,
    separator: u8,
    max_line: u64,
    mut each: impl FnMut(u64) -> Result<(), E>,
) -> Result<u64, E> {
    let mut reader = reader(path, separator, max_line)?;
    // Two columns of one name: polars would rename the second, and a role or schema rule
    // naming it would silently take the first.
    let header = reader.headers().map_err(|e| describe(path, e))?;
    {
        let mut seen = std::collections::HashMap::new();
        for (i, name) in header.iter().enumerate() {
            if let Some(first) = seen.insert(name, i) {
                return Err(SourceError::CsvRow {
                    path: path.to_owned(),
                    line: 1,
                    problem: format!(
                        "the header names column `{name}` twice (columns {} and {}); expected \
                         unique column names",
                        first + 1,
                        i + 1
                    ),
                }
                .into());
            }
        }
    }
    let mut record = csv::StringRecord::new();
    let mut rows = 0;
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {
                rows += 1;
                each(record.position().map_or(0, |p| p.byte()))?;
            }
            Ok(false) => return Ok(rows),
            Err(e) => return Err(describe(path, e).into()),
        }
    }
}

fn describe(path: &Path, e: csv::Error) -> SourceError {
    let row = |line: u64, problem: String| SourceError::CsvRow {
        path: path.to_owned(),
        line,
        problem,
    };
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
        } => row(
            pos.as_ref().map_or(0, |p| p.line()),
            format!(
                "{len} fields where the header has {expected_len} (a ragged row, or a quote that is not closed)"
            ),
        ),
        csv::ErrorKind::Utf8 { pos, err } => row(
            pos.as_ref().map_or(0, |p| p.line()),
            format!(
                "field {} is not valid UTF-8 (invalid after byte {}); expected UTF-8 text",
                err.field() + 1,
                err.valid_up_to()
            ),
        ),
        csv::ErrorKind::Io(_) => match e.into_kind() {
            csv::ErrorKind::Io(io) => match io.get_ref().and_then(|i| i.downcast_ref::<LongLine>()) {
                Some(long) => row(
                    long.line,
                    format!(
                        "the line is longer than {} bytes; expected rows of at most that",
                        long.max
                    ),
                ),
                None => SourceError::io(path, io),
            },
            _ => unreachable!("matched Io above"),
        },
        _ => row(0, e.to_string()),
    }
}

/// A reader that fails once a line runs past `max` bytes, before the CSV reader buffers it.
struct LineLimit<R> {
    inner: R,
    max: u64,
    /// Bytes since the last newline.
    run: u64,
    line: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("line {line} is longer than {max} bytes")]
struct LongLine {
    line: u64,
    max: u64,
}

impl<R: std::io::Read> std::io::Read for LineLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', &buf[..n]) {
            self.run += (end - start) as u64;
            if self.run > self.max {
                break;
            }
            self.run = 0;
            self.line += 1;
            start = end + 1;
        }
        if self.run <= self.max {
            self.run += (n - start) as u64;
        }
        if self.run > self.max {
            return Err(std::io::Error::other(LongLine {
                line: self.line,
                max: self.max,
            }));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_text(text: &[u8]) -> Result<u64, SourceError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, text).unwrap();
        check(&path, b',')
    }

    #[test]
    fn walk_counts_the_records_and_gives_where_each_starts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        // A quoted field holds a newline: a record, not a line, is the unit.
        let text = b"a,b\n1,2\n\"x\ny\",3\n4,5";
        std::fs::write(&path, text).unwrap();
        let mut starts = Vec::new();
        let rows = walk(&path, b',', |at| {
            starts.push(at);
            Ok::<_, SourceError>(())
        })
        .unwrap();
        assert_eq!(rows, 3);
        assert_eq!(starts, [4, 8, 16]);
        assert_eq!(&text[16..], b"4,5");
        let err = walk(&path, b',', |at| {
            if at == 8 {
                return Err(SourceError::NoRows(path.clone()));
            }
            Ok(())
        })
        .unwrap_err();
        assert!(matches!(err, SourceError::NoRows(_)), "{err}");
    }

    #[test]
    fn a_line_past_the_limit_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let long = format!("a,b\n1,2\n3,{}\n5,6\n", "9".repeat(5000));
        std::fs::write(&path, &long).unwrap();
        let err = check_with(&path, b',', 4096).unwrap_err().to_string();
        assert!(
            err.contains("t.csv: line 3: the line is longer than"),
            "{err}"
        );
        check_with(&path, b',', 6000).unwrap();
        // At the limit exactly (the line without its newline): accepted.
        check_with(&path, b',', 5002).unwrap();
        check_with(&path, b',', 5001).unwrap_err();
    }

    #[test]
    fn well_formed_csv_passes() {
        assert_eq!(check_text(b"a,b\n1,2\n\"x,y\",3\n").unwrap(), 2);
    }

    #[test]
    fn a_duplicate_header_name_is_an_error_naming_both_columns() {
        let err = check_text(b"a,b,a\n1,2,3\n").unwrap_err().to_string();
        assert!(
            err.contains("line 1: the header names column `a` twice (columns 1 and 3)"),
            "{err}"
        );
    }

    #[test]
    fn short_and_long_rows_name_their_line() {
        let err = check_text(b"a,b,c\n1,2,3\n4,5\n").unwrap_err().to_string();
        assert!(
            err.contains("line 3: 2 fields where the header has 3"),
            "{err}"
        );
        let err = check_text(b"a,b\n1,2,3\n").unwrap_err().to_string();
        assert!(err.contains("line 2: 3 fields"), "{err}");
    }

    #[test]
    fn unclosed_quote_and_bad_bytes_name_their_line() {
        let err = check_text(b"a,b,c\n1,\"2,3\n4,5,6\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
        let err = check_text(b"a,b\n1,2\n3,\xff\n").unwrap_err().to_string();
        assert!(err.contains("line 3: field 2 is not valid UTF-8"), "{err}");
    }
}
