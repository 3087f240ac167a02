//! Image folders with odd members: other sizes, colour types, broken and hostile files.

use image::ColorType;

use crate::util::{image_folder, png, png_claiming, validate_json};

#[test]
fn odd_sizes_and_colour_types_are_converted_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    image_folder(root, &["cat", "dog"], 6);
    std::fs::write(root.join("cat/big.png"), png(16, 12, ColorType::L8, 1)).unwrap();
    std::fs::write(root.join("dog/colour.png"), png(8, 8, ColorType::Rgb8, 2)).unwrap();
    std::fs::write(root.join("dog/alpha.png"), png(8, 8, ColorType::Rgba8, 3)).unwrap();
    let run = validate_json(root, &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let image = &run.json["input"]["image"];
    assert_eq!(
        (image["width"].as_u64(), image["channels"].as_u64()),
        (Some(8), Some(1))
    );
    assert_eq!(
        run.finding("mixed_sizes", None)["rows"],
        serde_json::json!(["cat/big.png"])
    );
    assert_eq!(
        run.finding("mixed_channels", None)["rows"],
        serde_json::json!(["dog/alpha.png", "dog/colour.png"])
    );
    assert_eq!(
        run.finding("converted_image", None)["rows"],
        serde_json::json!(["dog/alpha.png"])
    );
    // --image-size overrides the most common size.
    let sized = validate_json(root, &["--image-size", "4x4"]);
    assert_eq!(sized.json["input"]["image"]["width"], 4);
    assert_eq!(sized.finding("mixed_sizes", None)["count"], 15);
}

#[test]
fn broken_empty_and_huge_images_fail_the_gate_and_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    image_folder(root, &["a", "b"], 5);
    std::fs::write(root.join("a/empty.png"), b"").unwrap();
    std::fs::write(root.join("a/text.jpg"), b"this is not a jpeg").unwrap();
    let good = png(8, 8, ColorType::L8, 9);
    std::fs::write(root.join("b/truncated.png"), &good[..good.len() - 20]).unwrap();
    std::fs::write(root.join("b/huge.png"), png_claiming(100_000, 100_000)).unwrap();
    let run = validate_json(root, &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let bad = run.finding("undecodable_image", None);
    assert_eq!(bad["severity"], "error");
    assert_eq!(
        bad["rows"],
        serde_json::json!(["a/empty.png", "a/text.jpg", "b/huge.png", "b/truncated.png"])
    );
    assert_eq!(
        run.json["input"]["rows"], 14,
        "failed images stay in the dataset"
    );
    let text = crate::util::poisongate()
        .args(["scan", "--validate-only"])
        .arg(root)
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("a/empty.png: not a PNG or JPEG"), "{text}");
}

#[test]
fn hostile_header_is_refused_before_allocation() {
    let dir = tempfile::tempdir().unwrap();
    image_folder(dir.path(), &["a", "b"], 5);
    std::fs::write(
        dir.path().join("a/huge.png"),
        png_claiming(100_000, 100_000),
    )
    .unwrap();
    let out = crate::util::poisongate()
        .args(["scan", "--validate-only"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(
            "a/huge.png: its header claims 100000 x 100000 pixels; expected 1 to 16384 per side"
        ),
        "{text}"
    );
}

#[test]
fn unreadable_entries_are_findings_not_crashes() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    image_folder(root, &["a", "b"], 5);
    std::fs::create_dir(root.join("a/folder.png")).unwrap();
    let locked = root.join("b/locked.png");
    std::fs::write(&locked, png(8, 8, ColorType::L8, 1)).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    // Root reads the file anyway; then only the folder can be unreadable.
    let privileged = std::fs::read(&locked).is_ok();
    let run = validate_json(root, &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let bad = run.finding("undecodable_image", None);
    let mut expected = vec!["a/folder.png"];
    if !privileged {
        expected.push("b/locked.png");
    }
    assert_eq!(bad["rows"], serde_json::json!(expected));
    assert!(bad["message"].as_str().unwrap().contains("it is a folder"));
}

#[test]
fn stray_files_and_empty_classes_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    image_folder(root, &["a", "b"], 5);
    std::fs::write(root.join("README.txt"), "about").unwrap();
    std::fs::write(root.join("a/notes.json"), "{}").unwrap();
    std::fs::create_dir(root.join("empty")).unwrap();
    let run = validate_json(root, &[]);
    assert_eq!(run.code, 0, "warnings only: {}", run.stdout);
    let ignored = run.finding("ignored_file", None)["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        ignored.contains("2 file(s)") && ignored.contains("README.txt"),
        "{ignored}"
    );
    assert!(ignored.contains("a/notes.json"), "{ignored}");
    let empty = run.finding("small_class", None)["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(empty.contains("empty"), "{empty}");
}

#[test]
fn duplicate_images_with_other_labels_are_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    image_folder(root, &["a", "b"], 5);
    std::fs::copy(root.join("a/0.png"), root.join("b/copy.png")).unwrap();
    std::fs::copy(root.join("a/1.png"), root.join("a/copy.png")).unwrap();
    let run = validate_json(root, &[]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.finding("conflicting_duplicates", None)["rows"],
        serde_json::json!(["a/0.png", "b/copy.png"])
    );
    assert_eq!(
        run.finding("duplicate_rows", None)["rows"],
        serde_json::json!(["a/copy.png"])
    );
}

#[test]
fn non_utf8_file_names_are_read_and_reported() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    image_folder(root, &["a", "b"], 5);
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.png");
    std::fs::write(root.join("a").join(name), png(8, 8, ColorType::L8, 77)).unwrap();
    let run = validate_json(root, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json["input"]["rows"], 11);
    let finding = run.finding("non_utf8_name", None);
    assert!(finding["message"]
        .as_str()
        .unwrap()
        .contains("caf\u{FFFD}.png"));
}
