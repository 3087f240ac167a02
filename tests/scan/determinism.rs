//! The same input, options and seed give byte-identical `scores.parquet` and `report.json`
//! apart from `timings`, whatever the thread count: on every input kind.

use std::path::Path;

use crate::util::{fixture, poisongate};

/// Scans `input` with `threads` rayon threads into `out`; the report less its timings, and
/// the scores file's bytes.
fn run(input: &Path, args: &[&str], threads: usize, out: &Path) -> (serde_json::Value, Vec<u8>) {
    let done = poisongate()
        .env("RAYON_NUM_THREADS", threads.to_string())
        .arg("scan")
        .arg(input)
        .args(args)
        .args(["--quiet", "--out"])
        .arg(out)
        .output()
        .unwrap();
    assert!(
        matches!(done.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let mut report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let timings = report.as_object_mut().unwrap().remove("timings");
    assert!(timings.is_some(), "report.json has no timings");
    (report, std::fs::read(out.join("scores.parquet")).unwrap())
}

/// Every file under `path` (or the file itself) with its modification time and content hash.
fn fingerprint(path: &Path) -> Vec<(std::path::PathBuf, std::time::SystemTime, u128)> {
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            let hash = xxhash_rust::xxh3::xxh3_128(&std::fs::read(&p).unwrap());
            out.push((p, meta.modified().unwrap(), hash));
        }
    }
    out.sort();
    out
}

fn assert_identical_reruns(input: &Path, args: &[&str]) {
    let before = fingerprint(input);
    let dir = tempfile::tempdir().unwrap();
    let (first, first_scores) = run(input, args, 1, &dir.path().join("a"));
    for (threads, name) in [(1, "b"), (2, "c"), (3, "d")] {
        let (report, scores) = run(input, args, threads, &dir.path().join(name));
        assert_eq!(
            report,
            first,
            "{} {args:?}: report with {threads} threads",
            input.display()
        );
        assert!(
            scores == first_scores,
            "{} {args:?}: scores.parquet with {threads} threads differs",
            input.display()
        );
    }
    // Four scans read the input and wrote nothing into it.
    assert_eq!(
        fingerprint(input),
        before,
        "{} was modified",
        input.display()
    );
}

#[test]
fn a_csv_table_with_the_probe_reruns_identically() {
    assert_identical_reruns(&fixture("digits/digits.csv"), &[]);
}

#[test]
fn a_parquet_table_reruns_identically() {
    assert_identical_reruns(&fixture("digits/digits.parquet"), &["--seed", "3"]);
}

#[test]
fn an_image_folder_with_the_cnn_probe_reruns_identically() {
    assert_identical_reruns(&fixture("digits/images"), &["--embedder", "all"]);
}

#[test]
fn parquet_image_bytes_rerun_identically() {
    assert_identical_reruns(
        &fixture("digits/digits_png.parquet"),
        &["--embedder", "raw"],
    );
}

#[test]
fn precomputed_vectors_rerun_identically() {
    let dir = tempfile::tempdir().unwrap();
    let e = dir.path().join("e.npy");
    let t = candle_core::Tensor::arange(0f32, 1797.0 * 5.0, &candle_core::Device::Cpu)
        .unwrap()
        .reshape((1797, 5))
        .unwrap()
        .sin()
        .unwrap();
    t.write_npy(&e).unwrap();
    assert_identical_reruns(
        &fixture("digits/digits.csv"),
        &["--embeddings", e.to_str().unwrap()],
    );
}

#[test]
fn a_text_column_reruns_identically() {
    if !crate::util::have_minilm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("texts.csv");
    super::text::planted_texts(&path, 40, 10);
    assert_identical_reruns(&path, &["--text-col", "text"]);
}
