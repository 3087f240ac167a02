//! Bad input of every kind the issue lists: a clear error (exit 2) that names the file, row or
//! column and what was expected, never a panic.

use std::ffi::OsStr;

use crate::util::{assert_error, fixture, run, validate_json};

#[test]
fn missing_path() {
    let r = validate_json("no/such/data.parquet", &[]);
    assert_error(&r, &["no/such/data.parquet: no such file or folder"]);
}

#[test]
fn empty_folder() {
    let dir = tempfile::tempdir().unwrap();
    let r = validate_json(dir.path(), &[]);
    assert_error(&r, &["the folder is empty", "ROOT/<class>/<image>"]);
}

#[test]
fn folder_without_images() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("cats")).unwrap();
    std::fs::write(dir.path().join("cats/readme.txt"), "no images here").unwrap();
    let r = validate_json(dir.path(), &[]);
    assert_error(&r, &["no images found; expected PNG or JPEG files"]);
}

#[test]
fn folder_whose_images_all_fail() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("cats")).unwrap();
    std::fs::write(dir.path().join("cats/a.png"), "not a png").unwrap();
    let r = validate_json(dir.path(), &[]);
    assert_error(&r, &["every image failed to decode", "not a PNG or JPEG"]);
}

#[test]
fn truncated_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("digits/digits.parquet")).unwrap();
    let path = dir.path().join("cut.parquet");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let r = validate_json(&path, &[]);
    assert_error(&r, &["cut.parquet: cannot read as Parquet", "PAR1"]);
}

#[test]
fn not_parquet_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fake.parquet");
    std::fs::write(&path, "id,label\n1,2\n").unwrap();
    let r = validate_json(&path, &[]);
    assert_error(&r, &["fake.parquet: cannot read as Parquet"]);
}

#[test]
fn truncated_shard_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("digits/digits.parquet")).unwrap();
    std::fs::write(dir.path().join("a.parquet"), &bytes).unwrap();
    std::fs::write(dir.path().join("b.parquet"), &bytes[..100]).unwrap();
    let r = validate_json(dir.path(), &[]);
    assert_error(&r, &["b.parquet: cannot read as Parquet"]);
}

#[test]
fn shards_with_other_columns_are_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("digits/digits.parquet"),
        dir.path().join("a.parquet"),
    )
    .unwrap();
    std::fs::copy(
        fixture("digits/digits_png.parquet"),
        dir.path().join("b.parquet"),
    )
    .unwrap();
    let r = validate_json(dir.path(), &[]);
    assert_error(
        &r,
        &["b.parquet: its columns differ from those of the first shard"],
    );
}

#[test]
fn ragged_csv_rows_name_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ragged.csv");
    std::fs::write(&path, "a,b,label\n1,2,0\n3,4,5,1\n").unwrap();
    assert_error(
        &validate_json(&path, &[]),
        &["ragged.csv: line 3: 4 fields where the header has 3"],
    );
    std::fs::write(&path, "a,b,label\n1,2,0\n3,1\n").unwrap();
    assert_error(
        &validate_json(&path, &[]),
        &["ragged.csv: line 3: 2 fields where the header has 3"],
    );
}

#[test]
fn csv_with_an_unclosed_quote() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quote.csv");
    std::fs::write(&path, "a,b,label\n1,\"2,0\n3,1,1\n5,6,0\n").unwrap();
    assert_error(
        &validate_json(&path, &[]),
        &["quote.csv: line 2:", "a quote that is not closed"],
    );
}

#[test]
fn csv_with_invalid_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bytes.csv");
    std::fs::write(&path, b"a,b,label\n1,2,0\n3,\xff\xfe,1\n").unwrap();
    assert_error(
        &validate_json(&path, &[]),
        &["bytes.csv: line 3: field 2 is not valid UTF-8"],
    );
}

#[test]
fn empty_and_header_only_csv() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, "").unwrap();
    assert_error(
        &validate_json(&empty, &[]),
        &["empty.csv: cannot read as CSV"],
    );
    let header = dir.path().join("header.csv");
    std::fs::write(&header, "a,b,label\n").unwrap();
    assert_error(&validate_json(&header, &[]), &["header.csv: has no rows"]);
}

#[test]
fn label_column_that_does_not_exist() {
    let r = validate_json(fixture("digits/digits.csv"), &["--label", "digit"]);
    assert_error(
        &r,
        &[
            "digits.csv: no column `digit`; the columns are: px00 (i64)",
            "label (i64)",
        ],
    );
}

#[test]
fn a_float_label_column_is_a_type_error() {
    let r = validate_json(fixture("digits/digits.csv"), &["--label", "px01"]);
    // px01 is an integer pixel: a valid (if silly) label. A float one is not.
    assert_eq!(r.code, 0, "{}", r.stderr);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.csv");
    std::fs::write(&path, "x,y\n1,0.5\n2,1.5\n").unwrap();
    let r = validate_json(&path, &["--label", "y"]);
    assert_error(
        &r,
        &["column `y` has type f64; expected integer, string or boolean labels"],
    );
}

#[test]
fn non_numeric_values_in_a_named_feature_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("words.csv");
    std::fs::write(&path, "x,word,label\n1,one,0\n2,two,1\n3,3,0\n").unwrap();
    let r = validate_json(&path, &["--features", "x,word"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let f = r.finding("non_numeric", Some("word"));
    assert_eq!(f["rows"], serde_json::json!(["0", "1"]));
    assert!(f["message"].as_str().unwrap().contains("(first: \"one\")"));
    let r = validate_json(&path, &["--features", "x,nope"]);
    assert_error(&r, &["words.csv: no column `nope`"]);
}

#[test]
fn unsupported_file_type() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.json");
    std::fs::write(&path, "{}").unwrap();
    assert_error(
        &validate_json(&path, &[]),
        &["data.json: unsupported input"],
    );
}

#[test]
fn unreadable_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.csv");
    std::fs::copy(fixture("digits/digits.csv"), &path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::read(&path).is_ok() {
        // Privileged users (root in CI containers) read it anyway; a dangling link is
        // unreadable for everyone and takes the same open-error path.
        eprintln!("running privileged: checking a dangling link instead of permissions");
        let link = dir.path().join("dangling.csv");
        std::os::unix::fs::symlink(dir.path().join("gone.csv"), &link).unwrap();
        assert_error(
            &validate_json(&link, &[]),
            &["dangling.csv: no such file or folder"],
        );
    } else {
        assert_error(
            &validate_json(&path, &[]),
            &["cannot read", "locked.csv", "ermission denied"],
        );
    }
}

#[test]
fn non_utf8_path_is_read() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(OsStr::from_bytes(b"d\xefgits.csv"));
    std::fs::copy(fixture("digits/digits.csv"), &path).unwrap();
    let r = validate_json(&path, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.json["input"]["path"]
        .as_str()
        .unwrap()
        .ends_with("d\u{FFFD}gits.csv"));
    let missing = dir.path().join(OsStr::from_bytes(b"m\xefssing.csv"));
    assert_error(
        &validate_json(&missing, &[]),
        &["m\u{FFFD}ssing.csv: no such file or folder"],
    );
}

#[test]
fn bad_arguments_exit_2() {
    let r = validate_json(fixture("digits/images"), &["--image-size", "wide"]);
    assert_error(&r, &["--image-size `wide` is not WIDTHxHEIGHT"]);
    let r = validate_json(fixture("digits/images"), &["--label", "x"]);
    assert_error(&r, &["an image folder has none"]);
    let r = run(&[OsStr::new("scan")]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("<INPUT>"), "{}", r.stderr);
    let schema = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(schema.path(), "[columns.a]\nmaxx = 1\n").unwrap();
    let r = validate_json(
        fixture("digits/digits.csv"),
        &["--schema", schema.path().to_str().unwrap()],
    );
    assert_error(
        &r,
        &["is not a valid poisongate schema", "unknown field `maxx`"],
    );
}

#[test]
fn images_too_large_for_memory_are_refused() {
    // 1,797 images at 16384 x 16384 need 450 GiB: more than the memory available (Linux's
    // MemAvailable), whatever the overcommit mode, so the scan refuses before allocating.
    let r = validate_json(
        fixture("digits/digits_png.parquet"),
        &["--image-size", "16384x16384"],
    );
    assert_error(
        &r,
        &[
            "digits_png.parquet: 1797 images at 16384x16384x1 need",
            "choose a smaller --image-size",
        ],
    );
}
