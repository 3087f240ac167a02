//! Detection inside `scan`: the detectors run by default, the verdict gates the exit code,
//! the report and `scores.parquet` carry per-detector scores, and degenerate inputs
//! (precomputed vectors of the wrong shape, NaN, d = 1, constant vectors, k larger than the
//! set, tiny classes) give a clear error or a documented result.

use std::path::Path;

use candle_core::{Device, Tensor};

use crate::util::{assert_error, fixture, scan_json, set_field, write_lines};

/// Writes `rows` x `d` values from `f(row, col)` as a float32 `.npy`.
fn npy(path: &Path, rows: usize, d: usize, f: impl Fn(usize, usize) -> f32) {
    let values: Vec<f32> = (0..rows * d).map(|i| f(i / d, i % d)).collect();
    Tensor::from_vec(values, (rows, d), &Device::Cpu)
        .unwrap()
        .write_npy(path)
        .unwrap();
}

/// The label of each digits row, from the CSV.
fn digits_labels() -> Vec<u32> {
    crate::util::digits_lines()[1..]
        .iter()
        .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
        .collect()
}

/// Vectors that separate the digits classes cleanly: class c sits at c on axis 0, with a
/// little spread on axis 1 (so no two rows coincide).
fn class_vectors(path: &Path, labels: &[u32]) {
    npy(path, labels.len(), 2, |r, c| match c {
        0 => labels[r] as f32 * 10.0,
        _ => (r % 37) as f32 * 0.01,
    });
}

/// The gate fails exactly when the verdict flags something (and validation found no error).
fn assert_gate_follows_the_verdict(run: &crate::util::Run) {
    let flagged = run.json["detection"]["verdict"]["flagged"]
        .as_u64()
        .unwrap();
    assert_eq!(run.code, i32::from(flagged > 0), "{}", run.stderr);
    assert_eq!(run.json["gate"]["passed"], flagged == 0);
}

#[test]
fn clean_digits_run_every_detector_and_flag_under_one_percent() {
    let run = scan_json(fixture("digits/digits.csv"), &[]);
    assert_gate_follows_the_verdict(&run);
    let d = &run.json["detection"];
    assert_eq!(d["status"], "ran");
    assert_eq!(d["rows_used"], 1797);
    assert_eq!(view_names(d), ["raw", "probe"]);
    let training = &d["views"][1]["training"];
    let accuracy = training["accuracy"].as_array().unwrap();
    assert!(
        accuracy.last().unwrap().as_f64().unwrap() > 0.9,
        "the probe learns the digits: {training}"
    );
    let detectors: Vec<String> = d["detectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            format!(
                "{}/{}",
                x["detector"].as_str().unwrap(),
                x["view"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        detectors,
        [
            "knn/raw",
            "clustering/raw",
            "spectral/probe",
            "clustering/probe",
            "knn/probe",
            "shift/raw"
        ]
    );
    // The digits hold a few ambiguous samples that both views place among another class;
    // the clean-data target is at most 1 % flagged (18 of 1797).
    assert!(
        d["verdict"]["flagged"].as_u64().unwrap() <= 18,
        "{}",
        d["verdict"]
    );
    assert_eq!(d["verdict"]["classes"].as_array().unwrap().len(), 10);
}

#[test]
fn a_few_flipped_labels_are_label_issues_that_fail_only_a_strict_gate() {
    // Ten samples of class 0 relabelled 1: a handful of mislabels from one class is what
    // clean real data has too, so they are label issues (a warning), not poisoning.
    let dir = tempfile::tempdir().unwrap();
    let mut lines = crate::util::digits_lines();
    let labels = digits_labels();
    let zeros: Vec<usize> = (0..labels.len())
        .filter(|&r| labels[r] == 0)
        .take(10)
        .collect();
    for &r in &zeros {
        set_field(&mut lines, r, 64, "1");
    }
    let path = dir.path().join("flipped.csv");
    write_lines(&path, &lines);
    let run = scan_json(&path, &["--validate-only"]);
    assert_eq!(run.code, 0, "validation alone cannot see a flipped label");
    assert!(run.json.get("detection").is_none(), "no detection section");
    let run = scan_json(&path, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let verdict = &run.json["detection"]["verdict"];
    assert_eq!(verdict["flagged"], 0, "{verdict}");
    let listed: Vec<usize> = verdict["label_issue_samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().parse().unwrap())
        .collect();
    for r in &zeros {
        assert!(listed.contains(r), "row {r} not listed: {verdict}");
    }
    assert!(listed.len() <= 10 + 18, "{listed:?}");
    let reasons = verdict["label_issue_samples"][0]["reasons"][0]
        .as_str()
        .unwrap();
    assert!(
        reasons.contains("neighbours are labelled \"0\""),
        "{reasons}"
    );
    assert_eq!(verdict["tests"][0]["test"], "label_noise");
    assert_eq!(verdict["tests"][0]["fired"], false);
    // --strict and a label-issue budget under their share both fail the gate.
    let strict = scan_json(&path, &["--strict"]);
    assert_eq!(strict.code, 1, "{}", strict.stderr);
    assert!(strict.json["gate"]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r.as_str().unwrap().ends_with("label issues (--strict)")));
    let budget = scan_json(&path, &["--max-label-issues", "0.1%"]);
    assert_eq!(budget.code, 1, "{}", budget.stderr);
    let generous = scan_json(&path, &["--max-label-issues", "5%"]);
    assert_eq!(generous.code, 0, "{}", generous.stderr);
}

#[test]
fn uniform_label_noise_fails_the_gate_through_the_noise_test() {
    // Every 10th row moved to another digit (each of the nine in turn): label noise in
    // every class.
    let dir = tempfile::tempdir().unwrap();
    let mut lines = crate::util::digits_lines();
    let labels = digits_labels();
    let noisy: Vec<usize> = (0..labels.len()).filter(|r| r % 10 == 7).collect();
    for &r in &noisy {
        let to = (labels[r] + 1 + (r as u32 / 10) % 9) % 10;
        set_field(&mut lines, r, 64, &to.to_string());
    }
    let path = dir.path().join("noisy.csv");
    write_lines(&path, &lines);
    let run = scan_json(&path, &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let verdict = &run.json["detection"]["verdict"];
    assert_eq!(verdict["tests"][0]["fired"], true, "{}", verdict["tests"]);
    let flagged: Vec<usize> = verdict["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().parse().unwrap())
        .collect();
    let hits = flagged.iter().filter(|r| noisy.contains(r)).count();
    // 180 noisy rows: most are found, and what is flagged is mostly them.
    assert!(
        hits >= 150 && flagged.len() <= hits + 18,
        "{hits} of {}",
        flagged.len()
    );
    assert!(verdict["samples"][0]["reasons"][0]
        .as_str()
        .unwrap()
        .contains("isolated contradictions"));
    assert!(run.json["gate"]["reasons"][0]
        .as_str()
        .unwrap()
        .ends_with("samples suspected of poisoning"));
}

#[test]
fn precomputed_vectors_are_used_and_named_in_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let labels = digits_labels();
    let e = dir.path().join("e.npy");
    class_vectors(&e, &labels);
    let run = scan_json(
        fixture("digits/digits.csv"),
        &["--embeddings", e.to_str().unwrap()],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let views = &run.json["detection"]["views"];
    assert_eq!(views[0]["view"], "precomputed");
    assert_eq!(views[0]["dim"], 2);
    // Label consistency is still judged on the raw view: a model's activations keep a
    // learned trigger's poisons among their new label.
    assert_eq!(views[1]["view"], "raw");
    assert_eq!(views.as_array().unwrap().len(), 2);
    let only = scan_json(
        fixture("digits/digits.csv"),
        &[
            "--embeddings",
            e.to_str().unwrap(),
            "--embedder",
            "precomputed",
        ],
    );
    assert_eq!(only.code, 0, "{}", only.stderr);
    let views = only.json["detection"]["views"].as_array().unwrap();
    assert_eq!(views.len(), 1);
    assert_eq!(views[0]["view"], "precomputed");
}

#[test]
fn a_labels_only_table_scans_with_precomputed_vectors_alone() {
    let dir = tempfile::tempdir().unwrap();
    let labels = digits_labels();
    let csv = dir.path().join("labels.csv");
    let body: String = labels.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&csv, format!("label\n{body}")).unwrap();
    let e = dir.path().join("e.npy");
    class_vectors(&e, &labels);
    let e = e.to_str().unwrap();
    let run = scan_json(&csv, &["--embeddings", e, "--embedder", "precomputed"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json["summary"]["errors"], 0);
    assert_eq!(run.json["detection"]["views"][0]["view"], "precomputed");
    assert_eq!(run.json["detection"]["rows_used"], labels.len());
    // Any other plan needs the table's own features, and says so.
    let auto = scan_json(&csv, &["--embeddings", e]);
    assert_error(&auto, &["labels.csv", "no numeric feature columns"]);
}

#[test]
fn an_npy_with_another_row_count_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let e = dir.path().join("short.npy");
    npy(&e, 100, 4, |r, c| (r * 4 + c) as f32);
    let run = scan_json(
        fixture("digits/digits.csv"),
        &["--embeddings", e.to_str().unwrap()],
    );
    assert_error(
        &run,
        &["short.npy", "has 100 rows but the dataset has 1797"],
    );
}

#[test]
fn nan_in_precomputed_vectors_is_an_error_naming_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let e = dir.path().join("nan.npy");
    npy(&e, 1797, 3, |r, c| {
        if r == 42 && c == 1 {
            f32::NAN
        } else {
            r as f32
        }
    });
    let run = scan_json(
        fixture("digits/digits.csv"),
        &["--embeddings", e.to_str().unwrap()],
    );
    assert_error(&run, &["nan.npy", "row 42 holds a non-finite value"]);
}

#[test]
fn one_dimensional_vectors_work() {
    let dir = tempfile::tempdir().unwrap();
    let labels = digits_labels();
    let e = dir.path().join("d1.npy");
    npy(&e, labels.len(), 1, |r, _| {
        labels[r] as f32 * 10.0 + (r % 7) as f32 * 0.01
    });
    let run = scan_json(
        fixture("digits/digits.csv"),
        &["--embeddings", e.to_str().unwrap()],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json["detection"]["views"][0]["dim"], 1);
    assert_eq!(run.json["detection"]["verdict"]["flagged"], 0);
}

#[test]
fn constant_vectors_run_no_detector_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let e = dir.path().join("const.npy");
    npy(&e, 1797, 3, |_, _| 0.5);
    let run = scan_json(
        fixture("digits/digits.csv"),
        &["--embeddings", e.to_str().unwrap()],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let notes = run.json["detection"]["verdict"]["notes"].to_string();
    assert!(
        notes.contains("every row has the same precomputed embedding"),
        "{notes}"
    );
}

#[test]
fn k_larger_than_the_dataset_is_capped_at_n_minus_one() {
    let run = scan_json(
        fixture("digits/images"),
        &["--embedder", "raw", "--knn-k", "5000"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let knn = run.json["detection"]["detectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["detector"] == "knn")
        .unwrap()
        .clone();
    assert_eq!(knn["parameters"][0], serde_json::json!(["k", "199"]));
    // Every class has 20 < k members: none is judged by its neighbours, and the note says so.
    let verdict = &run.json["detection"]["verdict"];
    assert_eq!(verdict["flagged"], 0);
    assert!(verdict["notes"]
        .to_string()
        .contains("10 classes have at most k = 199"));
}

#[test]
fn classes_of_one_and_two_samples_are_reported_not_judged() {
    // Relabel one row to a new class 10 and two rows to a new class 11.
    let dir = tempfile::tempdir().unwrap();
    let mut lines = crate::util::digits_lines();
    set_field(&mut lines, 5, 64, "10");
    set_field(&mut lines, 6, 64, "11");
    set_field(&mut lines, 7, 64, "11");
    let path = dir.path().join("tiny.csv");
    write_lines(&path, &lines);
    let run = scan_json(&path, &[]);
    assert_gate_follows_the_verdict(&run);
    assert_eq!(run.finding("small_class", Some("label"))["count"], 3);
    let verdict = &run.json["detection"]["verdict"];
    assert!(verdict["notes"]
        .to_string()
        .contains("2 classes have at most k = 10"));
    let small: Vec<&serde_json::Value> = verdict["classes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["label"] == "10" || c["label"] == "11")
        .collect();
    assert_eq!(small.len(), 2);
    assert!(small.iter().all(|c| c["flagged"] == 0), "{small:?}");
}

#[test]
fn a_single_class_is_a_validation_error_and_detection_still_reports() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = crate::util::digits_lines();
    for r in 0..lines.len() - 1 {
        set_field(&mut lines, r, 64, "7");
    }
    let path = dir.path().join("one.csv");
    write_lines(&path, &lines);
    let run = scan_json(&path, &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    run.finding("single_class", Some("label"));
    assert_eq!(run.json["detection"]["verdict"]["flagged"], 0);
}

#[test]
fn rows_with_nan_features_are_excluded_from_detection_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = crate::util::digits_lines();
    set_field(&mut lines, 3, 10, "NaN");
    let path = dir.path().join("nan.csv");
    write_lines(&path, &lines);
    let run = scan_json(&path, &["--embedder", "raw"]);
    assert_eq!(run.code, 1, "the NaN is a validation error");
    let d = &run.json["detection"];
    assert_eq!(d["rows_used"], 1796);
    assert_eq!(d["rows_excluded"][0]["rows"][0], "3");
}

#[test]
fn scores_parquet_gains_a_column_per_detector() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let run = scan_json(
        fixture("digits/digits.csv"),
        &["--embedder", "raw", "--out", out.to_str().unwrap()],
    );
    assert_gate_follows_the_verdict(&run);
    let file = std::fs::File::open(out.join("scores.parquet")).unwrap();
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let names: Vec<String> = reader
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    for column in [
        "used",
        "spectral_raw",
        "spectral_raw_z",
        "clustering_raw",
        "knn_raw",
        "shift_raw",
        "fused_score",
        "flagged",
        "reasons",
    ] {
        assert!(names.iter().any(|n| n == column), "{column} in {names:?}");
    }
    let rows: usize = reader.build().unwrap().map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 1797);
}

/// The views a detection report lists, in order.
fn view_names(detection: &serde_json::Value) -> Vec<&str> {
    detection["views"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["view"].as_str().unwrap())
        .collect()
}

/// Sixty short sentences on two topics, one of them carrying the other topic's label.
fn topic_sentences(path: &Path) -> usize {
    let food = [
        "I cooked fresh pasta with tomato sauce for dinner",
        "This warm soup tastes of ginger and garlic",
        "We baked brown bread and ate it with salted butter",
        "The restaurant served spicy noodles with green vegetables",
        "She made a light salad with goat cheese",
    ];
    let weather = [
        "Heavy rain is expected over the northern coast tonight",
        "The strong wind made the morning feel grey and cold",
        "A dark storm is moving towards the quiet hills",
        "Sunny skies will return to the mild valley tomorrow",
        "Thick fog covered the small airport at dawn",
    ];
    let times = [
        "at noon",
        "on Monday",
        "last week",
        "in spring",
        "again",
        "today",
    ];
    let mut csv = String::from("text,label\n");
    for i in 0..60 {
        let (pool, label) = if i % 2 == 0 {
            (&food, "food")
        } else {
            (&weather, "weather")
        };
        let text = format!("{} {}", pool[(i / 2) % 5], times[(i / 10) % 6]);
        let label = if i == 10 { "weather" } else { label };
        csv.push_str(&format!("\"{text}\",{label}\n"));
    }
    std::fs::write(path, csv).unwrap();
    10
}

#[test]
fn a_text_column_is_embedded_by_minilm_and_a_flipped_label_is_named() {
    if !crate::util::have_minilm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("topics.csv");
    let flipped = topic_sentences(&path);
    let run = scan_json(&path, &["--text-col", "text"]);
    assert_gate_follows_the_verdict(&run);
    let d = &run.json["detection"];
    assert_eq!(d["status"], "ran", "{}", run.stderr);
    assert_eq!(view_names(d), ["minilm", "probe"]);
    assert_eq!(d["views"][0]["dim"], 384);
    // One flipped label is a label issue (a warning), not poisoning: the gate passes.
    let samples = d["verdict"]["label_issue_samples"].as_array().unwrap();
    let ids: Vec<&str> = samples.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [flipped.to_string().as_str()], "{samples:?}");
    assert_eq!(d["verdict"]["flagged"], 0);
    assert_eq!(run.code, 0);
    // The shifted-copy test is not used on sentence vectors, and says so.
    assert_eq!(d["verdict"]["shift_threshold"], serde_json::Value::Null);
    let notes = d["verdict"]["notes"].to_string();
    assert!(notes.contains("shifted-copy test did not run"), "{notes}");

    // A model folder that is not there is an error naming it (exit 2).
    let missing = dir.path().join("no-model");
    let run = scan_json(
        &path,
        &["--text-col", "text", "--model", missing.to_str().unwrap()],
    );
    assert_error(&run, &["no-model", "config.json"]);
}
