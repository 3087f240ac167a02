//! Matrices that do not stay in memory: row-major `rows x dim` f32 in a file of the scan's work
//! folder, written and read by byte offset (`pwrite`/`pread`). Reads go through the page cache,
//! which the kernel may drop at any time, so only the block a step holds counts as the scan's
//! memory. The file is removed with the folder when the scan ends.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::StreamError;

/// Most bytes a block of a pass over a file holds: 16 MiB, 65,536 rows of 64 values.
pub const BLOCK_BYTES: usize = 16 << 20;

/// Rows of `dim` f32 values that fit in `bytes`, at least one.
pub fn rows_within(bytes: usize, dim: usize) -> usize {
    (bytes / (dim.max(1) * 4)).max(1)
}

pub struct Spill {
    file: File,
    path: PathBuf,
    pub rows: usize,
    pub dim: usize,
}

impl Spill {
    /// A zero-filled `rows x dim` file at `path`.
    pub fn create(path: &Path, rows: usize, dim: usize) -> Result<Spill, StreamError> {
        let io = |e| StreamError::io(path, e);
        let bytes = rows
            .checked_mul(dim)
            .and_then(|v| v.checked_mul(4))
            .ok_or_else(|| {
                io(std::io::Error::other(format!(
                    "{rows} x {dim} values do not fit in a file"
                )))
            })?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(io)?;
        file.set_len(bytes as u64).map_err(io)?;
        Ok(Spill {
            file,
            path: path.to_path_buf(),
            rows,
            dim,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Deletes the file (its space is free once this handle is gone too).
    pub fn remove(self) -> Result<(), StreamError> {
        std::fs::remove_file(&self.path).map_err(|e| StreamError::io(&self.path, e))
    }

    fn offset(&self, row: usize) -> u64 {
        (row * self.dim * 4) as u64
    }

    /// Writes whole rows from `row` on.
    pub fn write_rows(&self, row: usize, values: &[f32]) -> Result<(), StreamError> {
        debug_assert!(values.len() % self.dim.max(1) == 0);
        debug_assert!(row * self.dim + values.len() <= self.rows * self.dim);
        self.file
            .write_all_at(bytemuck::cast_slice(values), self.offset(row))
            .map_err(|e| StreamError::io(&self.path, e))
    }

    /// Fills `out` with the rows from `row` on (`out.len()` a multiple of `dim`).
    pub fn read_rows(&self, row: usize, out: &mut [f32]) -> Result<(), StreamError> {
        debug_assert!(row * self.dim + out.len() <= self.rows * self.dim);
        self.file
            .read_exact_at(bytemuck::cast_slice_mut(out), self.offset(row))
            .map_err(|e| StreamError::io(&self.path, e))
    }

    /// Fills `out` with values `at..` of row `row` (a part of one row).
    pub fn read_at(&self, row: usize, at: usize, out: &mut [f32]) -> Result<(), StreamError> {
        debug_assert!(at + out.len() <= self.dim);
        self.file
            .read_exact_at(
                bytemuck::cast_slice_mut(out),
                self.offset(row) + (at * 4) as u64,
            )
            .map_err(|e| StreamError::io(&self.path, e))
    }

    /// Calls `f(first_row, rows)` on consecutive blocks of at most `block` rows, and at most
    /// [`BLOCK_BYTES`] (wide rows, such as an image's pixels, make smaller blocks).
    pub fn for_blocks(
        &self,
        block: usize,
        mut f: impl FnMut(usize, &[f32]) -> Result<(), StreamError>,
    ) -> Result<(), StreamError> {
        let block = block.min(rows_within(BLOCK_BYTES, self.dim));
        let mut buf = vec![0f32; block.min(self.rows) * self.dim];
        for start in (0..self.rows).step_by(block) {
            let len = block.min(self.rows - start);
            let buf = &mut buf[..len * self.dim];
            self.read_rows(start, buf)?;
            f(start, buf)?;
        }
        Ok(())
    }

    /// The rows at `positions` (ascending), gathered in one pass over the file.
    pub fn gather(&self, positions: &[u32], block: usize) -> Result<Vec<f32>, StreamError> {
        let d = self.dim;
        let mut out = Vec::with_capacity(positions.len() * d);
        let mut next = positions.iter().peekable();
        self.for_blocks(block, |start, values| {
            let end = start + values.len() / d.max(1);
            while let Some(&&p) = next.peek() {
                let p = p as usize;
                if p >= end {
                    break;
                }
                out.extend_from_slice(&values[(p - start) * d..(p - start + 1) * d]);
                next.next();
            }
            Ok(())
        })?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_written_are_read_back_by_block_and_by_gather() {
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::create(&dir.path().join("m.f32"), 10, 3).unwrap();
        let values: Vec<f32> = (0..30).map(|v| v as f32).collect();
        spill.write_rows(0, &values[..12]).unwrap();
        spill.write_rows(4, &values[12..]).unwrap();
        let mut seen = Vec::new();
        spill
            .for_blocks(4, |start, block| {
                seen.push((start, block.len()));
                assert_eq!(block, &values[start * 3..start * 3 + block.len()]);
                Ok(())
            })
            .unwrap();
        assert_eq!(seen, [(0, 12), (4, 12), (8, 6)]);
        let picked = spill.gather(&[1, 4, 9], 3).unwrap();
        assert_eq!(picked, [3., 4., 5., 12., 13., 14., 27., 28., 29.]);
        assert!(
            Spill::create(spill.path(), 1, 1).is_err(),
            "never overwrites"
        );
    }
}
