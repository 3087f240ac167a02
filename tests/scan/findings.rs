//! A tabular set with planted defects: every defect becomes a finding that names its rule,
//! column and rows, and the gate fails with exit code 1.

use crate::util::{digits_lines, set_field, validate_json, write_lines};

/// Column index of `label` in the digits CSV.
const LABEL: usize = 64;

fn ids(finding: &serde_json::Value) -> Vec<&str> {
    finding["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect()
}

#[test]
fn planted_defects_are_each_reported_with_their_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = digits_lines();
    set_field(&mut lines, 5, 3, "NaN");
    set_field(&mut lines, 6, 4, "inf");
    set_field(&mut lines, 7, 5, "");
    set_field(&mut lines, 8, 6, "abc");
    set_field(&mut lines, 20, LABEL, "");
    // Row 10 copies row 9 with another label; row 12 copies row 11 with the same label.
    let row9: Vec<String> = lines[10].split(',').map(str::to_owned).collect();
    let other = if row9[LABEL] == "3" { "4" } else { "3" };
    lines[11] = [&row9[..LABEL], &[other.to_string()]].concat().join(",");
    lines[13] = lines[12].clone();
    let path = dir.path().join("planted.csv");
    write_lines(&path, &lines);

    let run = validate_json(&path, &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let nan = run.finding("nan_value", Some("px03"));
    assert_eq!(
        (nan["severity"].as_str(), nan["count"].as_u64()),
        (Some("error"), Some(1))
    );
    assert_eq!(ids(nan), ["5"]);
    assert_eq!(ids(run.finding("infinite_value", Some("px04"))), ["6"]);
    assert_eq!(ids(run.finding("null_value", Some("px05"))), ["7"]);
    let non_numeric = run.finding("non_numeric", Some("px06"));
    assert_eq!(ids(non_numeric), ["8"]);
    assert!(non_numeric["message"].as_str().unwrap().contains("\"abc\""));
    assert_eq!(ids(run.finding("missing_label", Some("label"))), ["20"]);
    assert_eq!(
        ids(run.finding("conflicting_duplicates", None)),
        ["9", "10"]
    );
    let dup = run.finding("duplicate_rows", None);
    assert_eq!(
        (dup["severity"].as_str(), ids(dup)),
        (Some("warning"), vec!["12"])
    );
    let summary = &run.json["summary"];
    assert_eq!(summary["errors"], 6);
    assert_eq!(summary["rows_with_errors"], 7);
    assert_eq!(run.json["gate"]["passed"], false);
    assert_eq!(run.json["gate"]["exit_code"], 1);
}

#[test]
fn declared_schema_rules_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("schema.toml");
    std::fs::write(
        &schema,
        r#"
        [labels]
        allowed = [0, 1, 2, 3, 4, 5, 6, 7, 8]
        [columns.px33]
        type = "int"
        max = 15
        [columns.px34]
        type = "float"
        [columns.weight]
        type = "float"
        [columns.note]
        required = false
        [columns.px00]
        min = 0
        max = 16
        "#,
    )
    .unwrap();
    let run = validate_json(
        crate::util::fixture("digits/digits.csv"),
        &["--schema", schema.to_str().unwrap()],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let not_allowed = run.finding("label_not_allowed", Some("label"));
    assert_eq!(not_allowed["count"], 180, "the 180 nines");
    assert!(not_allowed["message"].as_str().unwrap().contains("[\"9\"]"));
    let above = run.finding("above_max", Some("px33"));
    assert!(above["count"].as_u64().unwrap() > 0);
    assert!(above["message"].as_str().unwrap().contains("maximum 15"));
    let wrong = run.finding("wrong_type", Some("px34"));
    assert!(wrong["message"]
        .as_str()
        .unwrap()
        .contains("declares float"));
    run.finding("missing_column", Some("weight"));
    assert!(
        run.findings("missing_column").len() == 1,
        "`note` is optional"
    );
    assert!(run.findings("below_min").is_empty());
}

#[test]
fn declared_null_fraction_turns_few_nulls_into_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = digits_lines();
    for row in [1, 2, 3] {
        set_field(&mut lines, row, 1, "");
    }
    let path = dir.path().join("nulls.csv");
    write_lines(&path, &lines);
    let schema = |fraction: f64| {
        let p = dir.path().join(format!("s{fraction}.toml"));
        std::fs::write(
            &p,
            format!("[columns.px01]\nmax_null_fraction = {fraction}\n"),
        )
        .unwrap();
        p
    };
    let tolerant = validate_json(&path, &["--schema", schema(0.01).to_str().unwrap()]);
    assert_eq!(tolerant.code, 0, "{}", tolerant.stdout);
    assert_eq!(
        tolerant.finding("null_value", Some("px01"))["severity"],
        "warning"
    );
    let strict = validate_json(&path, &["--schema", schema(0.001).to_str().unwrap()]);
    assert_eq!(strict.code, 1);
    let too_many = strict.finding("too_many_nulls", Some("px01"));
    assert_eq!(ids(too_many), ["1", "2", "3"]);
    assert!(strict.findings("null_value").is_empty());
}

#[test]
fn text_ids_and_classes_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("text.csv");
    let mut csv = String::from("id,text,label\n");
    for i in 0..12 {
        let text = match i {
            3 => String::from("\"\""),
            4 => String::new(),
            _ => format!("sample number {i}"),
        };
        let id = if i == 7 {
            "a1".to_string()
        } else {
            format!("a{i}")
        };
        let label = if i < 10 { "spam" } else { "ham" };
        csv.push_str(&format!("{id},{text},{label}\n"));
    }
    std::fs::write(&path, csv).unwrap();
    let run = validate_json(&path, &["--text-col", "text", "--id", "id"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.json["input"]["payload"], "text");
    assert_eq!(run.json["input"]["id_column"], "id");
    assert_eq!(ids(run.finding("empty_text", Some("text"))), ["a3"]);
    assert_eq!(ids(run.finding("missing_text", Some("text"))), ["a4"]);
    let dup_id = run.finding("duplicate_id", Some("id"));
    assert_eq!(ids(dup_id), ["a1"]);
    assert!(dup_id["message"].as_str().unwrap().contains("rows 1 and 7"));
    let small = run.finding("small_class", Some("label"));
    assert!(small["message"].as_str().unwrap().contains("\"ham\" (2)"));
}

#[test]
fn a_single_class_fails_the_gate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.csv");
    std::fs::write(&path, "x,label\n1,a\n2,a\n3,a\n4,a\n5,a\n").unwrap();
    let run = validate_json(&path, &[]);
    assert_eq!(run.code, 1);
    assert!(run.finding("single_class", Some("label"))["message"]
        .as_str()
        .unwrap()
        .contains("\"a\""));
}

#[test]
fn text_columns_are_listed_as_ignored_not_dropped_silently() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.csv");
    std::fs::write(&path, "name,x,y,label\nann,1,2,0\nbob,3,4,1\n").unwrap();
    let run = validate_json(&path, &[]);
    assert_eq!(
        run.json["input"]["feature_columns"],
        serde_json::json!(["x", "y"])
    );
    assert_eq!(
        run.json["input"]["ignored_columns"],
        serde_json::json!([{"name": "name", "dtype": "str"}])
    );
}
