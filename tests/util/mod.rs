//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("datasets")
        .join(name)
}

pub fn poisongate() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("poisongate").expect("the binary is built for tests")
}

/// The result of one run: exit code, stdout parsed as JSON (if it is), stderr.
pub struct Run {
    pub code: i32,
    pub json: Value,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from_output(out: Output) -> Self {
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        Run {
            code: out.status.code().expect("not killed by a signal"),
            json: serde_json::from_str(&stdout).unwrap_or(Value::Null),
            stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The findings with rule `rule`.
    pub fn findings(&self, rule: &str) -> Vec<&Value> {
        self.json["findings"]
            .as_array()
            .expect("a report has findings")
            .iter()
            .filter(|f| f["rule"] == rule)
            .collect()
    }

    /// The one finding with rule `rule` (and column, if given).
    pub fn finding(&self, rule: &str, column: Option<&str>) -> &Value {
        let found: Vec<_> = self
            .findings(rule)
            .into_iter()
            .filter(|f| column.is_none_or(|c| f["column"] == c))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "one {rule} finding expected in\n{}",
            self.stdout
        );
        found[0]
    }

    pub fn rules(&self) -> Vec<String> {
        self.json["findings"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|f| f["rule"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// `poisongate scan <input> --format json <args>`.
pub fn scan_json(input: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Run {
    let out = poisongate()
        .arg("scan")
        .arg(input)
        .args(["--format", "json"])
        .args(args)
        .output()
        .expect("the binary runs");
    Run::from_output(out)
}

/// `poisongate scan <input> --format json --validate-only <args>`: for tests of reading and
/// validation, which the detectors' verdict must not blur.
pub fn validate_json(input: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Run {
    scan_json(input, &[&["--validate-only"], args].concat())
}

pub fn run(args: &[&std::ffi::OsStr]) -> Run {
    Run::from_output(poisongate().args(args).output().expect("the binary runs"))
}

/// Asserts a run failed with exit code 2 and an error line on stderr containing each part.
pub fn assert_error(run: &Run, parts: &[&str]) {
    assert_eq!(run.code, 2, "exit code; stderr:\n{}", run.stderr);
    assert!(run.stdout.is_empty(), "nothing on stdout: {}", run.stdout);
    assert!(
        run.stderr.starts_with("poisongate: error: "),
        "stderr: {}",
        run.stderr
    );
    for p in parts {
        assert!(
            run.stderr.contains(p),
            "stderr lacks {p:?}:\n{}",
            run.stderr
        );
    }
}

/// A PNG of the given size and colour, filled with a value derived from `seed`.
pub fn png(width: u32, height: u32, color: image::ColorType, seed: u8) -> Vec<u8> {
    let img = match color {
        image::ColorType::L8 => {
            image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(width, height, |x, y| {
                image::Luma([seed.wrapping_add((x * 7 + y * 3) as u8)])
            }))
        }
        image::ColorType::Rgb8 => {
            image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(width, height, |x, y| {
                image::Rgb([seed, (x * 9) as u8, (y * 5) as u8])
            }))
        }
        image::ColorType::Rgba8 => {
            image::DynamicImage::ImageRgba8(image::RgbaImage::from_fn(width, height, |x, y| {
                image::Rgba([seed, (x * 9) as u8, (y * 5) as u8, 128])
            }))
        }
        other => panic!("no test images of type {other:?}"),
    };
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Png).unwrap();
    buf.into_inner()
}

/// A valid PNG whose header claims `width x height` pixels (CRC fixed up).
pub fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = png(2, 2, image::ColorType::L8, 0);
    bytes[16..20].copy_from_slice(&width.to_be_bytes());
    bytes[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32fast::hash(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

/// An image folder `root/<class>/<n>.png` with `per_class` distinct grey 8x8 images each.
pub fn image_folder(root: &Path, classes: &[&str], per_class: usize) {
    for (c, class) in classes.iter().enumerate() {
        let dir = root.join(class);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..per_class {
            let seed = (c * per_class + i) as u8;
            std::fs::write(
                dir.join(format!("{i}.png")),
                png(8, 8, image::ColorType::L8, seed),
            )
            .unwrap();
        }
    }
}

/// The digits CSV as lines (header first), for tests that write an edited copy.
pub fn digits_lines() -> Vec<String> {
    std::fs::read_to_string(fixture("digits/digits.csv"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Sets field `col` (0-based) of data row `row` (0-based, header excluded).
pub fn set_field(lines: &mut [String], row: usize, col: usize, value: &str) {
    let mut fields: Vec<&str> = lines[row + 1].split(',').collect();
    fields[col] = value;
    lines[row + 1] = fields.join(",");
}

pub fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// Whether the fetched MiniLM model is there; says "skipped" when it is not.
pub fn have_minilm() -> bool {
    let model = poisongate::embed::text::default_minilm_dir();
    let found = model.is_some_and(|m| m.join(".complete").exists());
    if !found {
        eprintln!("skipped: no MiniLM model (bash datasets/models/fetch-minilm.sh)");
    }
    found
}
