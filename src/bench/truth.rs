//! `bench --truth FILE`: the known poisons of a dataset poisoned elsewhere, as a CSV with a
//! header and the columns `id` and `is_poison` (other columns are ignored). `id` is the id a
//! report shows for the row: the 0-based row number, the `--id` column's value, or an image's
//! path under the folder (`class/file.png`). `is_poison` is `1`/`0` or `true`/`false`. Every
//! dataset row must be listed exactly once, and every listed id must be in the dataset: a
//! partial or foreign truth file would make every figure wrong without saying so.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::dataset::Ids;

#[derive(Debug, thiserror::Error)]
pub enum TruthError {
    #[error("--truth {path}: {error}")]
    Read { path: PathBuf, error: csv::Error },
    #[error(
        "--truth {path}: no column {column:?} in the header (expected columns id and is_poison)"
    )]
    MissingColumn { path: PathBuf, column: &'static str },
    #[error("--truth {path}, line {line}: is_poison is {value:?}; expected 1, 0, true or false")]
    BadValue {
        path: PathBuf,
        line: u64,
        value: String,
    },
    #[error("--truth {path}, line {line}: id {id:?} is not a row of the dataset")]
    UnknownId {
        path: PathBuf,
        line: u64,
        id: String,
    },
    #[error(
        "--truth {path}, line {line}: id {id:?} is listed a second time (first on line {first})"
    )]
    Repeated {
        path: PathBuf,
        line: u64,
        id: String,
        first: u64,
    },
    #[error("--truth {path} lists {listed} of the dataset's {rows} rows; missing, for example: {examples}")]
    Missing {
        path: PathBuf,
        listed: usize,
        rows: usize,
        examples: String,
    },
    #[error("the dataset's id {id:?} is on rows {first} and {second}; --truth needs unique ids (name another --id column)")]
    DatasetRepeats {
        id: String,
        first: usize,
        second: usize,
    },
}

/// Reads `path` and returns, per dataset row, whether it is a poison.
pub fn read(path: &Path, ids: &Ids) -> Result<Vec<bool>, TruthError> {
    let file = path.to_owned();
    let err = |error| TruthError::Read {
        path: file.clone(),
        error,
    };
    let mut rows_by_id: HashMap<String, usize> = HashMap::with_capacity(ids.len());
    for row in 0..ids.len() {
        let id = ids.get(row).into_owned();
        if let Some(first) = rows_by_id.insert(id.clone(), row) {
            return Err(TruthError::DatasetRepeats {
                id,
                first,
                second: row,
            });
        }
    }
    let mut reader = csv::Reader::from_path(path).map_err(err)?;
    let header = reader.headers().map_err(err)?.clone();
    let column = |name: &'static str| {
        header
            .iter()
            .position(|h| h.trim() == name)
            .ok_or(TruthError::MissingColumn {
                path: path.to_owned(),
                column: name,
            })
    };
    let (id_at, poison_at) = (column("id")?, column("is_poison")?);
    let mut truth = vec![false; ids.len()];
    let mut listed_on: Vec<Option<u64>> = vec![None; ids.len()];
    for record in reader.records() {
        let record = record.map_err(err)?;
        let line = record.position().map_or(0, |p| p.line());
        let id = record.get(id_at).unwrap_or_default();
        let value = record.get(poison_at).unwrap_or_default().trim();
        let poison = match value.to_ascii_lowercase().as_str() {
            "1" | "true" => true,
            "0" | "false" => false,
            _ => {
                return Err(TruthError::BadValue {
                    path: path.to_owned(),
                    line,
                    value: value.to_string(),
                })
            }
        };
        let Some(&row) = rows_by_id.get(id) else {
            return Err(TruthError::UnknownId {
                path: path.to_owned(),
                line,
                id: id.to_string(),
            });
        };
        if let Some(first) = listed_on[row] {
            return Err(TruthError::Repeated {
                path: path.to_owned(),
                line,
                id: id.to_string(),
                first,
            });
        }
        listed_on[row] = Some(line);
        truth[row] = poison;
    }
    let listed = listed_on.iter().filter(|l| l.is_some()).count();
    if listed < ids.len() {
        let examples: Vec<String> = (0..ids.len())
            .filter(|&r| listed_on[r].is_none())
            .take(5)
            .map(|r| format!("{:?}", ids.get(r)))
            .collect();
        return Err(TruthError::Missing {
            path: path.to_owned(),
            listed,
            rows: ids.len(),
            examples: examples.join(", "),
        });
    }
    Ok(truth)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("truth.csv");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn ids_match_in_any_order_and_values_parse() {
        let (_d, path) = write("is_poison,id,note\n1,2,x\nfalse,0,y\nTRUE,1,z\n");
        let truth = read(&path, &Ids::RowNumber(3)).unwrap();
        assert_eq!(truth, [false, true, true]);
        let ids = Ids::Paths(vec!["a/1.png".into(), "b/2.png".into()]);
        let (_d, path) = write("id,is_poison\nb/2.png,1\na/1.png,0\n");
        assert_eq!(read(&path, &ids).unwrap(), [false, true]);
    }

    #[test]
    fn every_mismatch_is_an_error_naming_the_line() {
        let ids = Ids::RowNumber(2);
        let cases = [
            ("id,poison\n0,1\n1,0\n", "no column \"is_poison\""),
            ("id,is_poison\n0,yes\n1,0\n", "line 2: is_poison is \"yes\""),
            ("id,is_poison\n0,1\n7,0\n", "line 3: id \"7\" is not a row"),
            (
                "id,is_poison\n0,1\n0,0\n",
                "line 3: id \"0\" is listed a second time (first on line 2)",
            ),
            (
                "id,is_poison\n1,1\n",
                "lists 1 of the dataset's 2 rows; missing, for example: \"0\"",
            ),
            ("id,is_poison\n0,1,extra\n", "found record with 3 fields"),
        ];
        for (text, expected) in cases {
            let (_d, path) = write(text);
            let message = read(&path, &ids).unwrap_err().to_string();
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
            assert!(message.contains("truth.csv"), "{message}");
        }
        let missing = read(Path::new("/nonexistent/truth.csv"), &ids).unwrap_err();
        assert!(missing.to_string().contains("/nonexistent/truth.csv"));
    }

    #[test]
    fn repeated_dataset_ids_are_an_error() {
        let ids = Ids::Column {
            name: "id".into(),
            values: vec![Some("a".into()), Some("b".into()), Some("a".into())],
        };
        let (_d, path) = write("id,is_poison\na,1\nb,0\n");
        let message = read(&path, &ids).unwrap_err().to_string();
        assert!(message.contains("\"a\" is on rows 0 and 2"), "{message}");
    }
}
