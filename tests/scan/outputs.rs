//! `--out DIR`: report.json matches stdout, scores.parquet has one row per sample with the
//! documented schema and metadata, and input files are never written.

use std::collections::BTreeMap;
use std::path::Path;

use arrow::array::{Array, AsArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::util::{fixture, image_folder, validate_json};

/// Every file under `root` with its bytes, to prove nothing was written.
fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.insert(path.display().to_string(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

#[test]
fn out_dir_holds_the_report_and_per_sample_scores() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    let mut lines = crate::util::digits_lines();
    crate::util::set_field(&mut lines, 3, 10, "NaN");
    crate::util::write_lines(&input, &lines);
    let out = dir.path().join("report");
    let run = validate_json(&input, &["--out", out.to_str().unwrap()]);
    assert_eq!(run.code, 1);
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(written, run.json);

    let file = std::fs::File::open(out.join("scores.parquet")).unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let meta: BTreeMap<String, String> = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .unwrap()
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone().unwrap_or_default()))
        .collect();
    assert_eq!(meta["poisongate.version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(meta["poisongate.schema_version"], "4");
    let schema = builder.schema().clone();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        [
            "row",
            "id",
            "label",
            "validation_error",
            "validation_warning",
            "validation_rules"
        ]
    );
    let batches: Vec<_> = builder.build().unwrap().map(Result::unwrap).collect();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 1797);
    let b = &batches[0];
    let errors = b.column(3).as_boolean();
    assert!(errors.value(3) && !errors.value(2));
    let rules = b.column(5).as_list::<i32>();
    let row3 = rules.value(3);
    assert_eq!(row3.as_string::<i32>().value(0), "nan_value");
    assert_eq!(rules.value(2).len(), 0);
    assert_eq!(
        b.column(2).as_string::<i32>().value(0),
        lines[1].rsplit(',').next().unwrap()
    );
}

#[test]
fn inputs_are_never_written() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("images");
    image_folder(&root, &["a", "b"], 5);
    let before = snapshot(&root);
    let inside = root.join("report");
    let run = validate_json(&root, &["--out", inside.to_str().unwrap()]);
    crate::util::assert_error(&run, &["would write into the input"]);
    let outside = dir.path().join("report");
    assert_eq!(
        validate_json(&root, &["--out", outside.to_str().unwrap()]).code,
        0
    );
    assert!(!inside.exists(), "the refused --out folder was not created");
    assert_eq!(snapshot(&root), before);

    let digits = fixture("digits");
    let before = snapshot(&digits);
    let out = dir.path().join("digits-report");
    for name in [
        "digits.csv",
        "digits.parquet",
        "digits_png.parquet",
        "images",
    ] {
        validate_json(digits.join(name), &["--out", out.to_str().unwrap()]);
    }
    assert_eq!(snapshot(&digits), before);
}

/// `--out` after a `kill -9` at any point of a run (reading, embedding, detecting, writing):
/// report.json is the previous run's or the new run's, whole, and scores.parquet is a whole
/// Parquet file; nothing else but the writer's temporary `*.tmp~` is left.
#[cfg(unix)]
#[test]
fn a_run_killed_at_any_point_leaves_whole_outputs() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let input = crate::util::fixture("digits/digits.csv");
    let bin = env!("CARGO_BIN_EXE_poisongate");
    let scan = |seed: &str| {
        let mut command = Command::new(bin);
        command
            .arg("scan")
            .arg(&input)
            .args(["--quiet", "--seed", seed, "--out"])
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    };
    // The previous, complete report; and how long a whole run takes.
    let started = Instant::now();
    assert!(scan("1").status().unwrap().code().unwrap() <= 1);
    let whole = started.elapsed();
    let previous = std::fs::read(out.join("report.json")).unwrap();
    let reports = |bytes: &[u8]| -> serde_json::Value { serde_json::from_slice(bytes).unwrap() };
    let (mut killed, mut finished) = (0, 0);
    for step in 0..16u32 {
        let mut child = scan("2").spawn().unwrap();
        std::thread::sleep(whole.mul_f64(f64::from(step) / 14.0) + Duration::from_millis(5));
        match child.try_wait().unwrap() {
            Some(_) => finished += 1,
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                killed += 1;
            }
        }
        let report = reports(&std::fs::read(out.join("report.json")).unwrap());
        assert!(
            report["gate"]["passed"].is_boolean(),
            "step {step}: {report}"
        );
        let seed_of = |r: &serde_json::Value| r["detection"]["views"].to_string();
        assert!(
            report == reports(&previous) || seed_of(&report) != seed_of(&reports(&previous)),
            "step {step}"
        );
        let scores = std::fs::File::open(out.join("scores.parquet")).unwrap();
        let rows = parquet::file::reader::SerializedFileReader::new(scores)
            .map(|r| {
                parquet::file::reader::FileReader::metadata(&r)
                    .file_metadata()
                    .num_rows()
            })
            .unwrap_or_else(|e| panic!("step {step}: scores.parquet is not whole: {e}"));
        assert_eq!(rows, 1797, "step {step}");
        for entry in std::fs::read_dir(&out).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(
                ["report.json", "scores.parquet"].contains(&name.as_str())
                    || name.ends_with(".tmp~"),
                "step {step}: {name}"
            );
        }
    }
    assert!(
        killed >= 10,
        "only {killed} runs were killed ({finished} finished first)"
    );
}

/// A full disk: `--out` and `--html` on a 64 KiB tmpfs, where scores.parquet (1797 rows) and
/// the HTML report do not fit. The run must fail with exit 2 and an error naming the file and
/// the cause, and leave nothing behind (no temporary file, no partial output). Needs root to
/// mount; the same path is then checked with a file-size limit, which any user can set.
#[test]
fn a_full_disk_is_a_named_error_and_leaves_nothing() {
    use std::process::Command;

    let dir = tempfile::tempdir().unwrap();
    let input = crate::util::fixture("digits/digits.csv");
    let bin = env!("CARGO_BIN_EXE_poisongate");
    let tiny = dir.path().join("tiny");
    std::fs::create_dir(&tiny).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&tiny)
        .status()
        .is_ok_and(|s| s.success());
    let check = |out: &Path, html: &Path, limit: Option<u64>, cause: &str| {
        let mut command = Command::new(bin);
        command
            .arg("scan")
            .arg(&input)
            .args(["--quiet", "--out"])
            .arg(out)
            .arg("--html")
            .arg(html);
        if let Some(bytes) = limit {
            // A file-size limit makes a write past it fail with EFBIG, as a full disk fails
            // with ENOSPC; SIGXFSZ is ignored so the write returns the error.
            use std::os::unix::process::CommandExt;
            unsafe {
                command.pre_exec(move || {
                    libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                    let rl = libc::rlimit {
                        rlim_cur: bytes,
                        rlim_max: bytes,
                    };
                    if libc::setrlimit(libc::RLIMIT_FSIZE, &rl) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let done = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&done.stderr);
        assert_eq!(done.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("cannot write"), "{stderr}");
        assert!(stderr.contains(cause), "{stderr}");
        assert!(
            stderr.contains(&*out.display().to_string())
                || stderr.contains(&*html.display().to_string()),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        let left: Vec<_> = std::fs::read_dir(out.parent().unwrap())
            .unwrap()
            .flat_map(|e| {
                let path = e.unwrap().path();
                if path.is_dir() {
                    std::fs::read_dir(&path)
                        .unwrap()
                        .map(|e| e.unwrap().path())
                        .collect()
                } else {
                    vec![path]
                }
            })
            .filter(|p| p.is_file())
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    };
    if mounted {
        let result = std::panic::catch_unwind(|| {
            check(
                &tiny.join("out"),
                &tiny.join("report.html"),
                None,
                "No space left on device",
            )
        });
        let _ = Command::new("umount").arg(&tiny).status();
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    } else {
        eprintln!("not root: the tmpfs case is skipped; the file-size limit case runs");
    }
    let limited = dir.path().join("limited");
    std::fs::create_dir(&limited).unwrap();
    check(
        &limited.join("out"),
        &limited.join("report.html"),
        Some(16 * 1024),
        "File too large",
    );
}
