//! Mutation fuzzing of every reader (issue 17): CSV and Parquet through `scan::load`, image
//! bytes through the decoder, `.npy` through `--embeddings`, `.pth` through the state-dict
//! parser, and schema TOML. Each target starts from valid seed files, applies one to four
//! seeded byte mutations (bit flips, random bytes, insertions, deletions, duplicated ranges,
//! truncation, splices of two seeds) and calls the reader in process; a panic is a finding.
//!
//! `cargo test --release --lib fuzz -- --nocapture` runs each target for `FUZZ_SECONDS`
//! (default 1: the smoke run `cargo test` does) and prints executions and findings per target;
//! `FUZZ_TARGET=csv` runs one. Findings are written to `$FUZZ_OUT` (default the temp folder).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cli::config::{Columns, InputConfig};
use crate::progress::Progress;

type Target = (&'static str, &'static str, Vec<Vec<u8>>);

fn seeds() -> Vec<Target> {
    let csv = b"x0,x1,label\n0.5,1,a\n1.5,2,b\n2.5,,a\n\"3\",4e2,b\n".to_vec();
    let csv2 = b"a\tb\tlabel\n1\t2\tx\n3\t4\ty\n".to_vec();
    let parquet = {
        use arrow::array::{Float64Array, StringArray};
        let batch = arrow::record_batch::RecordBatch::try_from_iter([
            (
                "x0",
                std::sync::Arc::new(Float64Array::from_iter_values((0..30).map(f64::from)))
                    as arrow::array::ArrayRef,
            ),
            (
                "label",
                std::sync::Arc::new(StringArray::from_iter_values(
                    (0..30).map(|i| (i % 3).to_string()),
                )),
            ),
        ])
        .expect("a valid batch");
        let mut out = Vec::new();
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(10))
            .build();
        let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), Some(props))
            .expect("a writer");
        w.write(&batch).expect("written");
        w.close().expect("closed");
        out
    };
    let image = |format| {
        let img =
            image::RgbImage::from_fn(9, 7, |x, y| image::Rgb([x as u8 * 20, y as u8 * 30, 90]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, format).expect("encoded");
        out.into_inner()
    };
    let npy = {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("e.npy");
        candle_core::Tensor::new(
            &[[1f32, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]],
            &candle_core::Device::Cpu,
        )
        .and_then(|t| t.write_npy(&path))
        .expect("written");
        std::fs::read(path).expect("read back")
    };
    let schema = b"[columns.x0]\nmin = 0\nmax = 10\nrequired = true\n[columns.label]\nmax_null_fraction = 0.1\n".to_vec();
    vec![
        ("csv", "csv", vec![csv, csv2]),
        ("parquet", "parquet", vec![parquet]),
        (
            "image",
            "png",
            vec![
                image(image::ImageFormat::Png),
                image(image::ImageFormat::Jpeg),
            ],
        ),
        ("npy", "npy", vec![npy]),
        (
            "pth",
            "pth",
            vec![
                crate::embed::pth::testing::legacy_file(),
                crate::embed::pth::testing::zip_file(),
            ],
        ),
        ("schema", "toml", vec![schema]),
    ]
}

fn mutate(rng: &mut StdRng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut b = seeds[rng.random_range(0..seeds.len())].clone();
    for _ in 0..rng.random_range(1..=4) {
        let len = b.len();
        match rng.random_range(0..7) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                b[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.random_range(0..len);
                b[i] = [0, 0xff, 0x7f, 0x80, rng.random()][rng.random_range(0..5)];
            }
            2 => {
                let i = rng.random_range(0..=len);
                let n = rng.random_range(1..16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                b.splice(i..i, bytes);
            }
            3 if len > 1 => {
                let i = rng.random_range(0..len);
                let j = (i + rng.random_range(1..=16)).min(len);
                b.drain(i..j);
            }
            4 if len > 1 => {
                let i = rng.random_range(0..len);
                let j = (i + rng.random_range(1..=64)).min(len);
                let chunk = b[i..j].to_vec();
                let at = rng.random_range(0..=b.len());
                b.splice(at..at, chunk);
            }
            5 if len > 0 => b.truncate(rng.random_range(0..len)),
            _ => {
                let other = &seeds[rng.random_range(0..seeds.len())];
                if !other.is_empty() && len > 0 {
                    let cut = rng.random_range(0..len);
                    let from = rng.random_range(0..other.len());
                    b.truncate(cut);
                    b.extend_from_slice(&other[from..]);
                }
            }
        }
    }
    b
}

/// Runs the reader of `target` on the file at `path` (holding `bytes`).
fn read(target: &str, path: &Path, bytes: &[u8]) {
    let progress = Progress::hidden();
    match target {
        "csv" | "parquet" => {
            let config = InputConfig {
                path: path.to_owned(),
                columns: Columns::default(),
                image_size: None,
                schema: None,
                progress: false,
                payload_optional: false,
            };
            let _ = crate::scan::load(&config, None, &progress);
        }
        "image" => {
            let _ = crate::source::decode::decode_all(
                &[crate::source::decode::Encoded::Bytes(Some(bytes))],
                None,
                &progress,
            );
        }
        "npy" => {
            let subset = crate::embed::Subset {
                rows: (0..4).collect(),
                labels: vec![0, 1, 0, 1],
                n_classes: 2,
                excluded: Vec::new(),
            };
            let _ =
                crate::embed::precomputed::from_npy(path, 4, &subset, &candle_core::Device::Cpu);
        }
        "pth" => {
            let _ = crate::embed::pth::parse_state_dict(path, bytes);
        }
        "schema" => {
            let _ = crate::validate::schema::Schema::load(path);
        }
        _ => unreachable!("a target of seeds()"),
    }
}

#[test]
fn fuzz_every_reader() {
    let seconds: u64 = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let only = std::env::var("FUZZ_TARGET").ok();
    let out = std::env::var_os("FUZZ_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir().unwrap();
    let mut findings = Vec::new();
    for (target, ext, seeds) in seeds() {
        if only.as_deref().is_some_and(|o| o != target) {
            continue;
        }
        let mut rng = StdRng::seed_from_u64(17);
        // A fresh name for every input: polars may still hold a memory map of the previous
        // one, and truncating a mapped file to rewrite it raises SIGBUS (an artefact of
        // rewriting one path, which a scan never does). Unlinking a mapped file is safe.
        let mut path = dir.path().join(format!("input.{ext}"));
        let (start, mut execs, mut found) = (Instant::now(), 0u64, 0);
        while start.elapsed() < Duration::from_secs(seconds) {
            let bytes = mutate(&mut rng, &seeds);
            let _ = std::fs::remove_file(&path);
            path = dir.path().join(format!("input-{execs}.{ext}"));
            std::fs::write(&path, &bytes).unwrap();
            // Not under `source::guard` (the readers take it themselves, and it is not
            // reentrant): a panic that escapes the readers' own guards is a finding.
            let outcome = catch_unwind(AssertUnwindSafe(|| read(target, &path, &bytes)));
            execs += 1;
            if outcome.is_err() {
                found += 1;
                let saved = out.join(format!("fuzz-{target}-{execs}.{ext}"));
                std::fs::write(&saved, &bytes).unwrap();
                findings.push(format!(
                    "{target}: panic on {}: {outcome:?}",
                    saved.display()
                ));
            }
        }
        println!("fuzz {target}: {execs} executions in {seconds} s, {found} panics");
    }
    assert!(findings.is_empty(), "{findings:#?}");
}
