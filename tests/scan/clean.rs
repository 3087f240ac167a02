//! Clean real data (the digits fixtures) in every input layout passes the gate.

use crate::util::{fixture, poisongate, validate_json};

fn assert_digits_classes(json: &serde_json::Value, per_class: Option<u64>) {
    let classes = json["classes"].as_array().unwrap();
    let labels: Vec<&str> = classes
        .iter()
        .map(|c| c["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
    let total: u64 = classes.iter().map(|c| c["count"].as_u64().unwrap()).sum();
    match per_class {
        Some(n) => assert!(classes.iter().all(|c| c["count"] == n)),
        None => assert_eq!(total, 1797),
    }
}

#[test]
fn digits_csv_passes_with_its_constant_pixels_reported() {
    let run = validate_json(fixture("digits/digits.csv"), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let j = &run.json;
    assert_eq!(j["schema_version"], 4);
    assert_eq!(j["input"]["format"], "csv");
    assert_eq!(j["input"]["rows"], 1797);
    assert_eq!(j["input"]["feature_columns"].as_array().unwrap().len(), 64);
    assert_eq!(j["input"]["label_column"], "label");
    assert_digits_classes(j, None);
    // The corner pixel and two pixels in column 0 are blank in every digit.
    let constant: Vec<&str> = run
        .findings("constant_column")
        .iter()
        .map(|f| f["column"].as_str().unwrap())
        .collect();
    assert_eq!(constant, ["px00", "px40", "px47"]);
    assert_eq!(run.rules().len(), 3);
    assert_eq!(j["gate"]["passed"], true);
    assert_eq!(j["gate"]["exit_code"], 0);
}

#[test]
fn digits_parquet_reads_like_the_csv() {
    let run = validate_json(fixture("digits/digits.parquet"), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json["input"]["format"], "parquet");
    assert_digits_classes(&run.json, None);
    assert_eq!(run.findings("constant_column").len(), 3);
}

#[test]
fn parquet_with_png_bytes_decodes_every_image() {
    let run = validate_json(fixture("digits/digits_png.parquet"), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let j = &run.json;
    assert_eq!(j["input"]["payload"], "images");
    assert_eq!(j["input"]["image"]["width"], 8);
    assert_eq!(j["input"]["image"]["channels"], 1);
    assert_digits_classes(j, None);
    assert!(run.rules().is_empty(), "{}", run.stdout);
}

#[test]
fn image_folder_takes_classes_from_folder_names() {
    let run = validate_json(fixture("digits/images"), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json["input"]["format"], "image_folder");
    assert_eq!(run.json["input"]["rows"], 200);
    assert_digits_classes(&run.json, Some(20));
    let text = poisongate()
        .args(["scan", "--validate-only"])
        .arg(fixture("digits/images"))
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("input     image_folder, 200 rows, images 8x8x1"),
        "{text}"
    );
}

#[test]
fn a_folder_of_parquet_shards_is_one_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let shards = dir.path().join("shards");
    poisongate()
        .args([
            "generate", "tabular", "--rows", "300", "--shards", "3", "--seed", "7",
        ])
        .arg(&shards)
        .assert()
        .success();
    let run = validate_json(&shards, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json["input"]["files"], 3);
    assert_eq!(run.json["input"]["rows"], 300);
}

#[test]
fn strict_turns_warnings_into_a_failed_gate() {
    let run = validate_json(fixture("digits/digits.csv"), &["--strict"]);
    assert_eq!(run.code, 1);
    assert_eq!(run.json["gate"]["passed"], false);
    assert_eq!(run.json["gate"]["strict"], true);
    assert!(run
        .findings("constant_column")
        .iter()
        .all(|f| f["severity"] == "error"));
}

#[test]
fn text_summary_ends_with_the_verdict() {
    let out = poisongate()
        .args(["scan", "--validate-only"])
        .arg(fixture("digits/digits.csv"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("1797 rows, 64 feature columns"), "{text}");
    assert!(text.contains("constant_column"), "{text}");
    assert!(text.trim_end().ends_with("gate: PASS (exit 0)"), "{text}");
    // Progress bars are hidden when stderr is not a terminal.
    assert!(out.stderr.is_empty());
}

#[test]
fn help_documents_the_exit_codes() {
    let out = poisongate().args(["scan", "--help"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("Exit codes:"), "{help}");
    assert!(help.contains("1  the gate fails"), "{help}");
}

/// The inverted-file search (`--knn-index ivf`) on the digits: it states its partitions,
/// probe and sampled recall, reaches the recall it is asked for, and the gate's verdict is
/// the exact search's.
#[test]
fn digits_pass_with_the_inverted_file_search_at_its_stated_recall() {
    let exact = crate::util::scan_json(fixture("digits/digits.csv"), &["--embedder", "raw"]);
    let ivf = crate::util::scan_json(
        fixture("digits/digits.csv"),
        &[
            "--embedder",
            "raw",
            "--knn-index",
            "ivf",
            "--knn-probe",
            "1",
        ],
    );
    assert_eq!(ivf.code, exact.code, "{}", ivf.stderr);
    assert_eq!(ivf.json["gate"], exact.json["gate"]);
    let knn = ivf.json["detection"]["detectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["detector"] == "knn")
        .unwrap();
    let param = |name: &str| -> String {
        knn["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p[0] == name)
            .unwrap_or_else(|| panic!("no {name} in {knn}"))[1]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(param("index"), "ivf");
    assert_eq!(param("partitions"), "42"); // round(sqrt(1797))
    let recall: f64 = param("recall_sampled")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(recall >= 0.95, "{recall}");
    // Probe 1 does not reach 0.95 on the digits' pixels; the search widened.
    assert!(param("probe").parse::<usize>().unwrap() > 1, "{knn}");
}
