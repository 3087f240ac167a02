//! Tables over `--memory-limit` are streamed: the same gate from the binary, a report that says
//! so, and a work folder that is gone afterwards, also after Ctrl-C.

use std::path::Path;

use crate::util::{poisongate, scan_json};

fn generate(path: &Path, rows: usize, features: usize) {
    let rows = rows.to_string();
    let features = features.to_string();
    poisongate()
        .args(["generate", "tabular"])
        .arg(path)
        .args(["--rows", &rows, "--features", &features, "--classes", "6"])
        .args(["--groups", "4", "--seed", "2"])
        .assert()
        .success();
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_table_over_the_memory_limit_is_streamed_to_the_in_memory_gate() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("t.parquet");
    generate(&input, 20_000, 8);
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let work_arg = work.to_str().unwrap();
    let streamed = scan_json(&input, &["--memory-limit", "1MiB", "--work-dir", work_arg]);
    let memory = scan_json(&input, &["--memory-limit", "1TiB", "--knn-index", "ivf"]);
    assert_eq!(streamed.code, 0, "{}", streamed.stderr);
    assert_eq!(streamed.json["gate"], memory.json["gate"]);
    assert_eq!(streamed.json["findings"], memory.json["findings"]);
    let notes = streamed.json["detection"]["verdict"]["notes"].to_string();
    assert!(
        notes.contains("streamed:") && notes.contains("limit of 1.0 MiB"),
        "{notes}"
    );
    assert!(notes.contains("the probe view was not computed"), "{notes}");
    let knn = streamed.json["detection"]["detectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["detector"] == "knn")
        .unwrap()
        .to_string();
    assert!(knn.contains("recall_sampled"), "{knn}");
    assert!(entries(&work).is_empty(), "{:?}", entries(&work));
}

#[test]
fn a_work_folder_that_cannot_be_written_is_a_named_error() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("t.parquet");
    generate(&input, 2_000, 4);
    let missing = dir.path().join("no-such-folder");
    let run = scan_json(
        &input,
        &[
            "--memory-limit",
            "1KiB",
            "--work-dir",
            missing.to_str().unwrap(),
        ],
    );
    crate::util::assert_error(&run, &["no-such-folder", "--work-dir"]);
}

/// Ctrl-C during a streamed scan: exit 130, and the work folder (gigabytes at scale) removed.
#[cfg(unix)]
#[test]
fn ctrl_c_stops_a_streamed_scan_and_removes_its_work_folder() {
    stop_a_streamed_scan(libc::SIGINT, 130);
}

/// SIGTERM (a pipeline's timeout) does the same, and exits 143 (128 + 15) as shells expect.
#[cfg(unix)]
#[test]
fn sigterm_stops_a_streamed_scan_with_143() {
    stop_a_streamed_scan(libc::SIGTERM, 143);
}

#[cfg(unix)]
fn stop_a_streamed_scan(signal: i32, code: i32) {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("t.parquet");
    generate(&input, 300_000, 16);
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_poisongate"))
        .arg("scan")
        .arg(&input)
        .args(["--quiet", "--memory-limit", "1MiB", "--work-dir"])
        .arg(&work)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the raw view is on disk, the scan is past reading and into detection.
    let started = Instant::now();
    let raw_view = || {
        entries(&work)
            .first()
            .is_some_and(|w| work.join(w).join("raw.f32").exists())
    };
    while !raw_view() {
        assert!(child.try_wait().unwrap().is_none(), "the scan ended first");
        assert!(started.elapsed() < Duration::from_secs(120), "no raw view");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: sends a signal to the child this test spawned and has not yet waited for.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    let stopped = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(60),
            "still running a minute after signal {signal}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(code), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(entries(&work).is_empty(), "{:?}", entries(&work));
}
