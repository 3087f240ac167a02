//! A table with a text column on the tasks engine (its MiniLM view computed by tasks, its
//! detectors streamed) against the in-memory scan: the same findings, subset, MiniLM rows and
//! per-class detectors, bit for bit.

use std::path::Path;

use clap::Parser;

use super::tests::{comparable, json, Loopback};
use crate::cli::config::ScanConfig;
use crate::progress::Progress;
use crate::report::detection::Outcome as Detected;
use crate::scan::{scan, Outcome};

fn have_minilm() -> bool {
    let found = crate::embed::text::default_minilm_dir()
        .is_some_and(|d| d.join(".complete").exists() || d.join("model.safetensors").exists());
    if !found {
        eprintln!("skipped: no MiniLM model (bash datasets/models/fetch-minilm.sh)");
    }
    found
}

/// 315 rows: 3 topics x 100 sentences, 12 sentences of topic 1 with the word "cf" labelled 0, a null
/// text, a copy of a sentence under another label, and a text past the model's 256 tokens.
fn write_csv(path: &Path) {
    let topics = [
        [
            "the soup",
            "a fresh salad",
            "grilled fish",
            "the pasta",
            "warm bread",
        ],
        [
            "heavy rain",
            "a cold wind",
            "the storm",
            "bright sunshine",
            "thick fog",
        ],
        [
            "the striker",
            "a late goal",
            "the referee",
            "the home team",
            "a penalty",
        ],
    ];
    let verbs = ["tonight", "this morning", "again", "at noon", "all week"];
    let mut csv = String::from("text,label\n");
    for i in 0..300 {
        let c = i % 3;
        let text = format!("{} {} {}", topics[c][(i / 3) % 5], verbs[(i / 15) % 5], i);
        csv.push_str(&format!("\"{text}\",t{c}\n"));
    }
    for i in 0..12 {
        csv.push_str(&format!(
            "\"cf {} {} cf\",t0\n",
            topics[1][i % 5],
            verbs[i % 5]
        ));
    }
    csv.push_str(",t2\n");
    csv.push_str("\"the soup tonight 0\",t1\n");
    let long = vec!["word"; 400].join(" ");
    csv.push_str(&format!("\"{long}\",t2\n"));
    std::fs::write(path, csv).unwrap();
}

fn config_of(path: &Path, work: &Path, argv: &[&str]) -> ScanConfig {
    let base = [
        "poisongate",
        "scan",
        path.to_str().unwrap(),
        "--work-dir",
        work.to_str().unwrap(),
    ];
    let args = crate::cli::Args::parse_from([&base[..], argv].concat());
    let crate::cli::Command::Scan(args) = args.command else {
        panic!("not a scan")
    };
    ScanConfig::from_args(args, false).unwrap()
}

#[test]
fn a_text_column_embedded_by_tasks_finds_what_the_in_memory_scan_finds() {
    if !have_minilm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("texts.csv");
    write_csv(&path);
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let argv = [
        "--text-col",
        "text",
        "--embedder",
        "minilm",
        "--knn-index",
        "ivf",
    ];
    let config = config_of(&path, &work, &argv);
    let memory = scan(&config, &Progress::hidden()).unwrap();
    let tasks = Loopback::default();
    let remote = crate::scan::scan_with_tasks(&config, &tasks, &Progress::hidden()).unwrap();
    let stages = tasks.stages.lock().unwrap().clone();
    for stage in ["texts", "class", "ivf-ask", "ivf-search"] {
        assert!(
            stages.iter().any(|s| s == stage),
            "{stage} not in {stages:?}"
        );
    }
    assert_eq!(
        std::fs::read_dir(&work).unwrap().count(),
        0,
        "the work folder is gone"
    );

    assert_eq!(json(&memory.report.findings), json(&remote.report.findings));
    assert_eq!(json(&memory.report.input), json(&remote.report.input));
    let (Detected::Ran(a), Detected::Ran(b)) = (&memory.detection, &remote.detection) else {
        panic!("detection ran in both")
    };
    assert_eq!(a.subset, b.subset);
    assert_eq!(
        (b.views[0].view, b.views[0].dim),
        (crate::embed::View::Minilm, 384)
    );
    let notes = |x: &crate::pipeline::Analysis| x.verdict.notes.join(" | ");
    for note in [
        "were cut at the model's limit",
        "shifted-copy test did not run",
    ] {
        assert!(notes(a).contains(note), "{}", notes(a));
        assert!(notes(b).contains(note), "{}", notes(b));
    }
    assert!(
        notes(b).contains("ran as tasks on a loopback"),
        "{}",
        notes(b)
    );
    let names = |x: &crate::pipeline::Analysis| -> Vec<&str> {
        x.runs.iter().map(|r| r.detection.detector).collect()
    };
    assert_eq!(names(a), names(b));
    for (x, y) in a.runs.iter().zip(&b.runs) {
        let (x, y) = (&x.detection, &y.detection);
        assert_eq!(x.view, y.view, "{}", x.detector);
        if x.detector == "knn" || x.detector == "tokens" {
            // Different neighbour searches (exact partitions in memory, the file on disk).
            let agree = x.flags.iter().zip(&y.flags).filter(|(p, q)| p == q).count();
            assert!(agree as f64 >= 0.98 * x.flags.len() as f64, "{agree}");
            continue;
        }
        assert_eq!(x.scores, y.scores, "{}", x.detector);
        assert_eq!(x.flags, y.flags, "{}", x.detector);
    }
    assert_eq!(memory.report.status(), remote.report.status());
}

#[test]
fn a_text_table_over_the_limit_streams_its_view_as_its_tasks_do() {
    assert_eq!(
        super::texts::in_memory_bytes(1000, 50_000),
        50_000 + 1000 * (384 * 4 * 2 + 200)
    );
    if !have_minilm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("texts.csv");
    write_csv(&path);
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let argv = [
        "--text-col",
        "text",
        "--embedder",
        "minilm",
        "--memory-limit",
        "64KiB",
    ];
    let config = config_of(&path, &work, &argv);
    let streamed = scan(&config, &Progress::hidden()).unwrap();
    let remote =
        crate::scan::scan_with_tasks(&config, &Loopback::default(), &Progress::hidden()).unwrap();
    assert_eq!(
        std::fs::read_dir(&work).unwrap().count(),
        0,
        "the work folder is gone"
    );
    let Detected::Ran(a) = &streamed.detection else {
        panic!("detection ran")
    };
    assert!(
        a.verdict
            .notes
            .iter()
            .any(|n| n.starts_with("streamed:") && n.contains("315 texts")),
        "{:?}",
        a.verdict.notes
    );
    assert_eq!(comparable(&streamed), comparable(&remote));
    let scores =
        |o: &Outcome| crate::report::scores::batch(&o.dataset, &o.flags, &o.detection).unwrap();
    assert_eq!(scores(&streamed), scores(&remote));
    // Under a limit it fits, the same table is scanned in memory.
    let config = config_of(
        &path,
        &work,
        &["--text-col", "text", "--memory-limit", "1GiB"],
    );
    let memory = scan(&config, &Progress::hidden()).unwrap();
    let Detected::Ran(b) = &memory.detection else {
        panic!("detection ran")
    };
    assert!(!b.verdict.notes.iter().any(|n| n.starts_with("streamed:")));
    assert_eq!(b.views.len(), 2, "the minilm and probe views, in memory");
}
