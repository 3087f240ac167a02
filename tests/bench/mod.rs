//! `poisongate bench`: planted attacks are found, the numbers reproduce under a seed, and bad
//! attack settings are clear errors.

use serde_json::Value;

use crate::util::{assert_error, fixture, poisongate, Run};

fn bench(args: &[&str]) -> Run {
    bench_on("digits/digits.csv", args)
}

fn bench_on(input: &str, args: &[&str]) -> Run {
    let out = poisongate()
        .arg("bench")
        .arg(fixture(input))
        .args(["--format", "json", "--quiet"])
        .args(args)
        .output()
        .expect("the binary runs");
    Run::from_output(out)
}

fn method<'a>(json: &'a Value, name: &str, view: &str) -> &'a Value {
    json["methods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["method"] == name && m["view"] == view)
        .unwrap_or_else(|| panic!("no {name}/{view} in {json}"))
}

/// The report with every timing removed.
fn without_times(mut json: Value) -> Value {
    for m in json["methods"].as_array_mut().unwrap() {
        m.as_object_mut().unwrap().remove("seconds");
    }
    json
}

#[test]
fn label_flips_on_digits_are_found_by_the_fused_verdict() {
    let run = bench(&["--attack", "flip", "--rate", "0.1", "--embedder", "raw"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json["poisons"], 180);
    let fused = method(&run.json, "fused", "all");
    assert!(fused["f1"].as_f64().unwrap() > 0.9, "{fused}");
    let knn = method(&run.json, "knn", "raw");
    assert!(knn["auroc"].as_f64().unwrap() > 0.95, "{knn}");
}

#[test]
fn the_same_seed_reproduces_the_same_numbers() {
    let args = ["--attack", "badnets", "--rate", "0.1", "--embedder", "raw"];
    let a = bench(&args);
    let b = bench(&args);
    assert_eq!(a.code, 0, "{}", a.stderr);
    assert_eq!(without_times(a.json), without_times(b.json));
    let other = bench(&[&args[..], &["--attack-seed", "1"]].concat());
    assert_eq!(other.code, 0, "{}", other.stderr);
    assert_ne!(
        method(&other.json, "spectral", "raw")["auroc"],
        Value::Null,
        "another seed still gives numbers"
    );
}

#[test]
fn the_clean_twin_flags_almost_nothing() {
    let run = bench(&["--attack", "clean", "--embedder", "raw"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json["poisons"], 0);
    let fused = method(&run.json, "fused", "all");
    // Raw view alone, no probe to confirm: the clean-data target is at most 1 %.
    assert!(fused["flagged"].as_u64().unwrap() <= 25, "{fused}");
}

#[test]
fn an_unknown_target_and_an_impossible_rate_are_errors() {
    assert_error(
        &bench(&["--attack", "badnets", "--target", "cat"]),
        &["--target \"cat\" is not one of the classes"],
    );
    assert_error(
        &bench(&["--attack", "badnets", "--rate", "0.95"]),
        &["only", "rows can be poisoned"],
    );
}

#[test]
fn sig_targeted_flips_and_all_to_all_run_on_the_digits() {
    let images = "digits/digits_png.parquet";
    let sig = bench_on(
        images,
        &["--attack", "sig", "--rate", "0.05", "--embedder", "raw"],
    );
    assert_eq!(sig.code, 0, "{}", sig.stderr);
    assert_eq!(
        (&sig.json["attack"], &sig.json["poisons"]),
        (&"sig".into(), &90.into())
    );
    let all = [
        "--attack",
        "badnets",
        "--mapping",
        "all-to-all",
        "--patch",
        "2",
        "--embedder",
        "raw",
    ];
    let all = bench_on(images, &all);
    assert_eq!(all.code, 0, "{}", all.stderr);
    assert_eq!(all.json["poisons"], 180);
    let flip = [
        "--attack",
        "targeted-flip",
        "--source",
        "3",
        "--target",
        "8",
    ];
    let flip = bench(&[&flip[..], &["--rate", "0.05", "--embedder", "raw"]].concat());
    assert_eq!(flip.code, 0, "{}", flip.stderr);
    assert_eq!(flip.json["attack"], "targeted_flip");
    assert_eq!(flip.json["poisons"], 90);
    let knn = method(&flip.json, "knn", "raw");
    assert!(knn["auroc"].as_f64().unwrap() > 0.9, "{knn}");
}

#[test]
fn new_attack_settings_that_cannot_work_are_errors() {
    assert_error(
        &bench(&["--attack", "sig"]),
        &["sig is an image attack; this dataset's payload is a table"],
    );
    assert_error(
        &bench(&["--attack", "targeted-flip"]),
        &["--attack targeted-flip needs --source"],
    );
    assert_error(
        &bench(&["--attack", "targeted-flip", "--source", "0"]),
        &["--source \"0\" is also the target class"],
    );
    assert_error(
        &bench(&["--attack", "flip", "--mapping", "all-to-all"]),
        &["--mapping all-to-all applies to badnets and blend, not to flip"],
    );
    // Class 0 holds 178 of the 1797 digits: sig cannot poison 10 % of all rows from it.
    assert_error(
        &bench_on("digits/digits_png.parquet", &["--attack", "sig"]),
        &["only 178 rows can be poisoned", "target class \"0\""],
    );
}

#[test]
fn out_writes_per_sample_truth_scores_and_embeddings() {
    let dir = tempfile::tempdir().unwrap();
    let run = bench(&[
        "--attack",
        "flip",
        "--embedder",
        "raw",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = std::fs::read_to_string(dir.path().join("samples.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(&header[..3], ["row", "label", "is_poison"]);
    assert!(header.contains(&"knn_raw"), "{header:?}");
    assert_eq!(&header[header.len() - 2..], ["fused_score", "flagged"]);
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 1797);
    let poisons = rows.iter().filter(|r| r[2] == "1").count();
    assert_eq!(Value::from(poisons), run.json["poisons"]);
    let flagged = rows.iter().filter(|r| r[r.len() - 1] == "1").count();
    assert_eq!(
        Value::from(flagged),
        method(&run.json, "fused", "all")["flagged"]
    );
    // A 1797 x 64 float32 .npy: a header, then 1797 * 64 * 4 bytes.
    let npy = std::fs::read(dir.path().join("raw.npy")).unwrap();
    assert!(npy.starts_with(b"\x93NUMPY"));
    assert!(npy.len() > 1797 * 64 * 4 && npy.len() < 1797 * 64 * 4 + 256);
}

/// Digits with every 10th row's label moved to another digit (each of the nine in turn, as
/// random flips spread), written outside the tool, and the truth file that says which rows
/// those are.
fn poisoned_elsewhere(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let text = std::fs::read_to_string(fixture("digits/digits.csv")).unwrap();
    let mut lines = text.lines();
    let mut data = format!("{}\n", lines.next().unwrap());
    let mut truth = String::from("id,is_poison\n");
    for (row, line) in lines.enumerate() {
        let (pixels, label) = line.rsplit_once(',').unwrap();
        let poison = row % 10 == 3;
        let label: u32 = label.parse().unwrap();
        let label = if poison {
            (label + 1 + (row as u32 / 10) % 9) % 10
        } else {
            label
        };
        data.push_str(&format!("{pixels},{label}\n"));
        truth.push_str(&format!("{row},{}\n", u8::from(poison)));
    }
    let (data_path, truth_path) = (dir.join("flipped.csv"), dir.join("truth.csv"));
    std::fs::write(&data_path, data).unwrap();
    std::fs::write(&truth_path, truth).unwrap();
    (data_path, truth_path)
}

#[test]
fn truth_measures_a_dataset_poisoned_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let (data, truth) = poisoned_elsewhere(dir.path());
    let run = Run::from_output(
        poisongate()
            .arg("bench")
            .arg(&data)
            .arg("--truth")
            .arg(&truth)
            .args(["--format", "json", "--quiet", "--embedder", "raw"])
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json["poisons"], 180);
    assert_eq!(run.json["attack"], Value::Null);
    assert!(run.json["truth_file"]
        .as_str()
        .unwrap()
        .ends_with("truth.csv"));
    let fused = method(&run.json, "fused", "all");
    assert!(fused["recall"].as_f64().unwrap() > 0.9, "{fused}");
    // Planting is refused alongside a truth file.
    let both = Run::from_output(
        poisongate()
            .arg("bench")
            .arg(&data)
            .arg("--truth")
            .arg(&truth)
            .args(["--attack", "flip"])
            .output()
            .unwrap(),
    );
    assert_eq!(both.code, 2, "{}", both.stderr);
    assert!(
        both.stderr.contains("--truth") && both.stderr.contains("--attack"),
        "{}",
        both.stderr
    );
}

#[test]
fn csv_and_markdown_output_list_every_method() {
    let out = poisongate()
        .arg("bench")
        .arg(fixture("digits/digits.csv"))
        .args(["--attack", "flip", "--embedder", "raw", "--quiet"])
        .args(["--format", "csv"])
        .output()
        .unwrap();
    let csv = String::from_utf8(out.stdout).unwrap();
    assert!(csv.starts_with("method,view,flagged,"), "{csv}");
    assert!(csv.lines().any(|l| l.starts_with("fused,all,")), "{csv}");
    let out = poisongate()
        .arg("bench")
        .arg(fixture("digits/digits.csv"))
        .args(["--attack", "flip", "--embedder", "raw", "--quiet"])
        .args(["--format", "markdown"])
        .output()
        .unwrap();
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(
        md.contains("Flip at rate 0.1; 180 poisons in 1797 rows"),
        "{md}"
    );
    assert!(md.lines().any(|l| l.starts_with("| fused | all |")), "{md}");
}

#[test]
fn a_sweep_averages_exactly_what_bench_measures_per_seed() {
    let run = Run::from_output(
        poisongate()
            .arg("sweep")
            .arg(fixture("digits/digits.csv"))
            .args([
                "--attacks",
                "flip,clean",
                "--rates",
                "0.1",
                "--seeds",
                "0,1",
            ])
            .args(["--embedder", "raw", "--format", "json", "--quiet"])
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rows = run.json["rows"].as_array().unwrap();
    // flip at 0.1 and the clean twin, each measured plus three controls.
    assert_eq!(rows.len(), 8);
    let filters: Vec<&str> = rows.iter().map(|r| r["filter"].as_str().unwrap()).collect();
    assert_eq!(filters[..4], ["measured", "no_filter", "random", "perfect"]);
    let fused = |row: &Value| -> Value {
        row["methods"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["method"] == "fused")
            .unwrap()
            .clone()
    };
    let f1s: Vec<f64> = ["0", "1"]
        .iter()
        .map(|seed| {
            let one = bench(&[
                "--attack",
                "flip",
                "--embedder",
                "raw",
                "--attack-seed",
                seed,
                "--seed",
                seed,
            ]);
            assert_eq!(one.code, 0, "{}", one.stderr);
            method(&one.json, "fused", "all")["f1"].as_f64().unwrap()
        })
        .collect();
    let mean = fused(&rows[0])["f1"]["mean"].as_f64().unwrap();
    assert!(
        (mean - (f1s[0] + f1s[1]) / 2.0).abs() < 1e-12,
        "{mean} vs {f1s:?}"
    );
    assert_eq!(fused(&rows[3])["f1"]["mean"], 1.0);
    assert_eq!(rows[4]["attack"], "clean");
    assert_eq!(rows[4]["rate"], Value::Null);
    assert_eq!(fused(&rows[4])["f1"], Value::Null);
}

#[test]
fn a_sweep_plan_file_is_read_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    std::fs::write(&plan, "attacks = [\"flip\"]\nrates = [0.1]\nseeds = [0]\n").unwrap();
    let ok = Run::from_output(
        poisongate()
            .arg("sweep")
            .arg(fixture("digits/digits.csv"))
            .arg("--plan")
            .arg(&plan)
            .args(["--embedder", "raw", "--format", "csv", "--quiet"])
            .output()
            .unwrap(),
    );
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(
        ok.stdout
            .lines()
            .any(|l| l.starts_with("flip,0.1,measured,fused,")),
        "{}",
        ok.stdout
    );
    std::fs::write(&plan, "attacks = [\"flip\"]\nrates = [2.0]\nseeds = [0]\n").unwrap();
    let bad = Run::from_output(
        poisongate()
            .arg("sweep")
            .arg(fixture("digits/digits.csv"))
            .arg("--plan")
            .arg(&plan)
            .output()
            .unwrap(),
    );
    assert_error(&bad, &["sweep rate 2 is not between 0 and 1"]);
}
