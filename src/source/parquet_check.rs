//! A pass over a Parquet file's footer before polars reads it (which also counts its rows), with the `parquet` crate: the
//! footer must decode, and every column chunk's byte range must lie inside the file's data
//! region. polars trusts these offsets: a corrupt footer made it overflow an offset (an
//! `unwrap` on `checked_add`) or `madvise` a range outside its memory map, and both panic
//! inside its async runtime, where a debug build cannot unwind. This pass names the file, the
//! row group and the column instead.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use parquet::file::metadata::ParquetMetaDataReader;

use super::SourceError;

/// The magic `PAR1` at each end of the file, and the 4-byte footer length before the last.
const MAGIC: u64 = 4;
const TAIL: u64 = 8;

pub fn check(path: &Path) -> Result<u64, SourceError> {
    let bad = |problem: String| SourceError::Parquet {
        path: path.to_owned(),
        problem,
    };
    let mut file = std::fs::File::open(path).map_err(|e| SourceError::io(path, e))?;
    let size = file.metadata().map_err(|e| SourceError::io(path, e))?.len();
    if size < MAGIC + TAIL {
        return Err(bad(format!(
            "the file is {size} bytes; a Parquet file has at least 12 (its magic and footer)"
        )));
    }
    let mut tail = [0u8; TAIL as usize];
    file.seek(SeekFrom::Start(size - TAIL))
        .and_then(|_| file.read_exact(&mut tail))
        .map_err(|e| SourceError::io(path, e))?;
    if &tail[4..] != b"PAR1" {
        return Err(bad(
            "it does not end in the Parquet magic `PAR1` (truncated, or not Parquet)".into(),
        ));
    }
    let footer = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    let Some(data_end) = size.checked_sub(TAIL + footer).filter(|&end| end >= MAGIC) else {
        return Err(bad(format!(
            "its footer claims {footer} bytes, more than the file's {size}"
        )));
    };
    // The crate's own decoder is fuzzed upstream and returns errors; the guard is kept in case.
    let metadata = super::guard::guarded(|| ParquetMetaDataReader::new().parse_and_finish(&file))
        .map_err(|panic| bad(format!("its footer does not decode: {panic}")))?
        .map_err(|e| bad(format!("its footer does not decode: {e}")))?;
    let schema = metadata.file_metadata().schema_descr();
    for (g, group) in metadata.row_groups().iter().enumerate() {
        if group.num_rows() < 0 {
            return Err(bad(format!(
                "row group {g} claims {} rows; expected a count of zero or more",
                group.num_rows()
            )));
        }
        for (c, chunk) in group.columns().iter().enumerate() {
            let column = schema
                .columns()
                .get(c)
                .map(|d| d.path().string())
                .unwrap_or_else(|| format!("#{c}"));
            let start = chunk
                .dictionary_page_offset()
                .unwrap_or(chunk.data_page_offset());
            let len = chunk.compressed_size();
            let end = start.checked_add(len);
            let inside = |offset: i64| offset >= MAGIC as i64 && offset as u64 <= data_end;
            let fits = start >= MAGIC as i64
                && len >= 0
                && end.is_some_and(inside)
                && inside(chunk.data_page_offset())
                && chunk.num_values() >= 0;
            if !fits {
                return Err(bad(format!(
                    "row group {g}, column `{column}`: its pages claim bytes {start}..{} \
                     ({} values), outside the data region 4..{data_end} of the file",
                    end.map_or_else(|| "overflow".into(), |e| e.to_string()),
                    chunk.num_values()
                )));
            }
        }
    }
    Ok(metadata
        .row_groups()
        .iter()
        .map(|g| g.num_rows() as u64)
        .sum())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn valid() -> Vec<u8> {
        use arrow::array::{Float32Array, Int64Array};
        use arrow::record_batch::RecordBatch;
        let batch = RecordBatch::try_from_iter([
            (
                "label",
                Arc::new(Int64Array::from(vec![0, 1, 0, 1])) as arrow::array::ArrayRef,
            ),
            (
                "f0",
                Arc::new(Float32Array::from(vec![0.5, 1.5, 2.5, 3.5])) as _,
            ),
        ])
        .unwrap();
        let mut out = Vec::new();
        let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        out
    }
    fn checked(bytes: &[u8]) -> Result<(), String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        std::fs::write(&path, bytes).unwrap();
        check(&path).map(|_| ()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_valid_file_passes_and_its_rows_are_counted() {
        assert_eq!(checked(&valid()), Ok(()));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        std::fs::write(&path, valid()).unwrap();
        assert_eq!(check(&path).unwrap(), 4);
    }

    #[test]
    fn truncation_and_a_huge_footer_are_named() {
        let bytes = valid();
        let cut = checked(&bytes[..bytes.len() - 3]).unwrap_err();
        assert!(cut.contains("t.parquet") && cut.contains("PAR1"), "{cut}");
        let mut huge = bytes.clone();
        let n = huge.len();
        huge[n - 8..n - 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let e = checked(&huge).unwrap_err();
        assert!(e.contains("footer claims 4294967295 bytes"), "{e}");
        assert!(checked(b"PAR1").unwrap_err().contains("at least 12"));
    }

    /// Rewrites the first column chunk's offset in the footer to one past the data region, as a
    /// flipped byte in the footer would: the check must name the row group and column.
    #[test]
    fn a_chunk_outside_the_file_is_named() {
        use parquet::file::metadata::{ParquetMetaDataReader, ParquetMetaDataWriter};
        let bytes = valid();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.parquet");
        std::fs::write(&path, &bytes).unwrap();
        let meta = ParquetMetaDataReader::new()
            .parse_and_finish(&std::fs::File::open(&path).unwrap())
            .unwrap();
        let mut groups = meta.row_groups().to_vec();
        let col = groups[0].columns()[1].clone();
        let moved = col
            .into_builder()
            .set_data_page_offset(1 << 40)
            .set_dictionary_page_offset(None)
            .build()
            .unwrap();
        let mut cols = groups[0].columns().to_vec();
        cols[1] = moved;
        groups[0] = groups[0]
            .clone()
            .into_builder()
            .set_column_metadata(cols)
            .build()
            .unwrap();
        let footer_len =
            u32::from_le_bytes(bytes[bytes.len() - 8..bytes.len() - 4].try_into().unwrap());
        let data_end = bytes.len() - 8 - footer_len as usize;
        let mut out = bytes[..data_end].to_vec();
        let rebuilt = meta.into_builder().set_row_groups(groups).build();
        ParquetMetaDataWriter::new(&mut out, &rebuilt)
            .finish()
            .unwrap();
        let e = checked(&out).unwrap_err();
        assert!(e.contains("row group 0, column `f0`"), "{e}");
    }
}
