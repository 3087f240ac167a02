//! The `precomputed` view: vectors the user computed elsewhere, from an `.npy` file (float32
//! or float64, `n x d`, rows in dataset order), or a table payload read from a vector column.

use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::{CandleContext, EmbedError, Embedding, Subset, View};
use crate::dataset::Table;
use crate::pipeline::HostMatrix;

/// Reads `path` and keeps the subset's rows. The file must have one row per dataset row.
pub fn from_npy(
    path: &Path,
    dataset_rows: usize,
    subset: &Subset,
    device: &Device,
) -> Result<Embedding, EmbedError> {
    let file_err = |problem: String| EmbedError::File {
        path: path.to_owned(),
        problem,
    };
    // Open it ourselves first so that a missing or unreadable file is named as such, and check
    // that the header's shape fits the file before anything is allocated for it.
    let mut file = std::fs::File::open(path).map_err(|e| file_err(format!("cannot read: {e}")))?;
    check_npy_size(&mut file).map_err(file_err)?;
    let t =
        Tensor::read_npy(path).map_err(|e| file_err(format!("not a readable .npy array: {e}")))?;
    let dims = t.dims().to_vec();
    let [n, d] = dims[..] else {
        return Err(file_err(format!(
            "has shape {dims:?}; expected a 2-D array (rows x dimensions)"
        )));
    };
    if n != dataset_rows {
        return Err(file_err(format!(
            "has {n} rows but the dataset has {dataset_rows}; rows must be in dataset order"
        )));
    }
    if d == 0 {
        return Err(file_err("has 0 dimensions per row".into()));
    }
    if !matches!(t.dtype(), DType::F32 | DType::F64) {
        return Err(file_err(format!(
            "has dtype {:?}; expected float32 or float64",
            t.dtype()
        )));
    }
    let t = t.to_dtype(DType::F32).context("reading embeddings")?;
    let values = t
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .context("reading embeddings")?;
    if let Some(problem) = non_finite(&values, d) {
        return Err(file_err(problem));
    }
    let table = Table {
        columns: (0..d).map(|j| j.to_string()).collect(),
        values,
    };
    from_table(&table, subset, device)
}

/// Checks an `.npy` header against the file: the data must be exactly the size its shape and
/// dtype claim (a header claiming terabytes would otherwise be allocated). Other problems of
/// the header are left to the reader.
fn check_npy_size(file: &mut std::fs::File) -> Result<(), String> {
    use std::io::Read;
    let len = file
        .metadata()
        .map_err(|e| format!("cannot read: {e}"))?
        .len();
    let mut head = [0u8; 12];
    let got = file
        .read(&mut head)
        .map_err(|e| format!("cannot read: {e}"))?;
    if got < 10 || &head[..6] != b"\x93NUMPY" {
        return Err("not a readable .npy array: no .npy header".into());
    }
    let (header_len, start) = match head[6] {
        1 => (u16::from_le_bytes([head[8], head[9]]) as u64, 10u64),
        _ => (
            u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as u64,
            12u64,
        ),
    };
    if start + header_len > len || header_len > 1 << 20 {
        return Err(format!(
            "not a readable .npy array: its header claims {header_len} bytes in a file of {len}"
        ));
    }
    let mut header = vec![0u8; header_len as usize];
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(start))
        .and_then(|_| file.read_exact(&mut header))
        .map_err(|e| format!("cannot read: {e}"))?;
    let header = String::from_utf8_lossy(&header);
    let field = |key: &str| {
        let at = header.find(&format!("'{key}'"))?;
        Some(
            header[at + key.len() + 2..]
                .trim_start_matches([':', ' '])
                .to_string(),
        )
    };
    let item = field("descr").and_then(|d| {
        let d = d.trim_start_matches(['\'', '"']);
        let digits: String = d
            .chars()
            .skip(2)
            .take_while(|c| c.is_ascii_digit())
            .collect();
        digits.parse::<u64>().ok()
    });
    let shape = field("shape").and_then(|s| {
        let inner = s.strip_prefix('(')?.split(')').next()?.to_string();
        inner
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| t.parse::<u64>().ok())
            .collect::<Option<Vec<u64>>>()
    });
    let (Some(item), Some(shape)) = (item, shape) else {
        return Ok(());
    };
    let claimed = shape
        .iter()
        .try_fold(item, |acc, &d| acc.checked_mul(d))
        .unwrap_or(u64::MAX);
    let data = len - start - header_len;
    if claimed != data {
        return Err(format!(
            "not a readable .npy array: its header claims shape {shape:?} ({claimed} bytes of \
             data) but the file holds {data}"
        ));
    }
    Ok(())
}

/// The first non-finite value, as a problem naming its row.
fn non_finite(values: &[f32], d: usize) -> Option<String> {
    let bad = values.iter().position(|v| !v.is_finite())?;
    Some(format!(
        "row {} holds a non-finite value ({}); expected finite numbers",
        bad / d,
        values[bad]
    ))
}

/// A matrix handed over in memory: the same checks as [`from_npy`], naming `m.name`.
pub fn from_matrix(
    m: &HostMatrix,
    dataset_rows: usize,
    subset: &Subset,
    device: &Device,
) -> Result<Embedding, EmbedError> {
    let problem = |problem: String| EmbedError::Text(format!("{}: {problem}", m.name));
    if m.values.len() != m.rows * m.dim {
        return Err(problem(format!(
            "holds {} values, not rows x dimensions = {} x {}",
            m.values.len(),
            m.rows,
            m.dim
        )));
    }
    if m.rows != dataset_rows {
        return Err(problem(format!(
            "has {} rows but the dataset has {dataset_rows}; rows must be in dataset order",
            m.rows
        )));
    }
    if m.dim == 0 {
        return Err(problem("has 0 dimensions per row".into()));
    }
    if let Some(p) = non_finite(&m.values, m.dim) {
        return Err(problem(p));
    }
    let d = m.dim;
    subset_rows(|r| &m.values[r * d..(r + 1) * d], d, subset, device)
}

/// The subset's rows of a table, unchanged (no standardisation: the vectors are the user's).
pub fn from_table(
    table: &Table,
    subset: &Subset,
    device: &Device,
) -> Result<Embedding, EmbedError> {
    subset_rows(|r| table.row(r), table.dim(), subset, device)
}

/// The precomputed view of the subset's rows, `row(r)` giving dataset row `r`'s `d` values.
fn subset_rows<'a>(
    row: impl Fn(usize) -> &'a [f32],
    d: usize,
    subset: &Subset,
    device: &Device,
) -> Result<Embedding, EmbedError> {
    let mut values = Vec::with_capacity(subset.len() * d);
    for &r in &subset.rows {
        values.extend_from_slice(row(r as usize));
    }
    let matrix =
        Tensor::from_vec(values, (subset.len(), d), device).context("precomputed embedding")?;
    Ok(Embedding {
        view: View::Precomputed,
        matrix,
        training: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subset(n: usize) -> Subset {
        Subset {
            rows: (0..n as u32).collect(),
            labels: vec![0; n],
            n_classes: 1,
            excluded: Vec::new(),
        }
    }

    #[test]
    fn float64_npy_is_read_and_row_counts_must_match() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.npy");
        let t = Tensor::new(&[[1.0f64, 2.0], [3.0, 4.0], [5.0, 6.0]], &Device::Cpu).unwrap();
        t.write_npy(&path).unwrap();
        let e = from_npy(&path, 3, &subset(3), &Device::Cpu).unwrap();
        assert_eq!(e.to_host().unwrap(), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let err = from_npy(&path, 4, &subset(4), &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("e.npy: has 3 rows but the dataset has 4; rows must be in dataset order"),
            "{err}"
        );
    }

    #[test]
    fn wrong_shape_nan_and_garbage_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let flat = dir.path().join("flat.npy");
        Tensor::new(&[1.0f32, 2.0], &Device::Cpu)
            .unwrap()
            .write_npy(&flat)
            .unwrap();
        let err = from_npy(&flat, 2, &subset(2), &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(err.contains("has shape [2]; expected a 2-D array"), "{err}");
        let nan = dir.path().join("nan.npy");
        Tensor::new(&[[1.0f32], [f32::NAN]], &Device::Cpu)
            .unwrap()
            .write_npy(&nan)
            .unwrap();
        let err = from_npy(&nan, 2, &subset(2), &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(err.contains("row 1 holds a non-finite value"), "{err}");
        let junk = dir.path().join("junk.npy");
        std::fs::write(&junk, b"not numpy").unwrap();
        let err = from_npy(&junk, 2, &subset(2), &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a readable .npy array"), "{err}");
        let missing =
            from_npy(&dir.path().join("none.npy"), 2, &subset(2), &Device::Cpu).unwrap_err();
        assert!(missing.to_string().contains("cannot read"));
    }
}
