//! A structural pass over a CSV file before polars reads it, with the `csv` crate: every row
//! must have as many fields as the header and be valid UTF-8. polars fills short rows with
//! nulls and reports long rows or bad bytes without a line number; this pass names the line.

use std::path::Path;

use super::SourceError;

pub fn check(path: &Path, separator: u8) -> Result<(), SourceError> {
    let file = std::fs::File::open(path).map_err(|e| SourceError::io(path, e))?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(separator)
        .has_headers(true)
        .flexible(false)
        .from_reader(std::io::BufReader::with_capacity(1 << 20, file));
    // Two columns of one name: polars would rename the second, and a role or schema rule
    // naming it would silently take the first.
    if let Ok(header) = reader.headers() {
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
                });
            }
        }
    }
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(e) => return Err(describe(path, e)),
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
            csv::ErrorKind::Io(io) => SourceError::io(path, io),
            _ => unreachable!("matched Io above"),
        },
        _ => row(0, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_text(text: &[u8]) -> Result<(), SourceError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, text).unwrap();
        check(&path, b',')
    }

    #[test]
    fn well_formed_csv_passes() {
        check_text(b"a,b\n1,2\n\"x,y\",3\n").unwrap();
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
