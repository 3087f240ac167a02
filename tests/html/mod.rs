//! `--html FILE`: scan and bench write one page whose plots match the JSON report, an
//! unwritable path is a clear error, and the pages render in a real headless browser
//! (Debian's chromium; skipped when `/usr/bin/chromium` is absent, see
//! `tests/install-chromium.sh`).

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{assert_error, fixture, poisongate, Run};

const CHROMIUM: &str = "/usr/bin/chromium";
/// The colour of unflagged or clean histogram bars (`colour::PLAIN` in src/report/html).
const BAR: [u8; 3] = [76, 120, 168];

/// `poisongate <command> digits.csv --format json --quiet --embedder raw --html <page> <args>`.
fn write_page(command: &str, page: &Path, args: &[&str]) -> Run {
    let out = poisongate()
        .arg(command)
        .arg(fixture("digits/digits.csv"))
        .args(["--format", "json", "--quiet", "--embedder", "raw", "--html"])
        .arg(page)
        .args(args)
        .output()
        .expect("the binary runs");
    Run::from_output(out)
}

/// How many `<svg>` a page must hold: per class the projection and one histogram per
/// method (the fused score included), plus the ROC plot on a bench page.
fn expected_plots(command: &str, json: &Value) -> usize {
    match command {
        "scan" => {
            let classes = json["classes"].as_array().unwrap().len();
            let detectors = json["detection"]["detectors"].as_array().unwrap().len();
            classes * (1 + detectors + 1)
        }
        _ => {
            let methods = json["methods"].as_array().unwrap().len();
            10 * (1 + methods) + 1
        }
    }
}

#[test]
fn scan_and_bench_write_one_page_with_a_plot_per_class_and_method() {
    let dir = tempfile::tempdir().unwrap();
    for (command, args) in [("scan", &[][..]), ("bench", &["--attack", "flip"][..])] {
        let page = dir.path().join(format!("{command}.html"));
        let run = write_page(command, &page, args);
        assert!(run.code < 2, "{command}: {}", run.stderr);
        // stdout still carries the JSON report, unchanged by --html.
        assert!(run.json.is_object(), "{command}: {}", run.stdout);
        let html = std::fs::read_to_string(&page).unwrap();
        assert_eq!(
            html.matches("<svg").count(),
            expected_plots(command, &run.json),
            "{command}"
        );
        assert!(html.contains("id=\"findings\"") && html.contains("constant_column"));
        let size = html.len();
        assert!(size < 1_500_000, "{command}: {size} bytes");
    }
}

#[test]
fn an_unwritable_html_path_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("missing/report.html");
    let run = write_page("scan", &page, &["--validate-only"]);
    assert_error(&run, &["cannot write", "missing/report.html"]);
    let run = write_page("bench", dir.path(), &["--attack", "clean"]);
    assert_error(&run, &["--html", "is a folder"]);
    let input = fixture("digits/digits.csv");
    let run = write_page("scan", &input, &["--validate-only"]);
    assert_error(&run, &["--html", "would write into the input"]);
}

#[test]
fn the_pages_render_in_a_headless_browser() {
    if !Path::new(CHROMIUM).exists() {
        println!("skipped: chromium not installed (bash tests/install-chromium.sh)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (command, args) in [("scan", &[][..]), ("bench", &["--attack", "badnets"][..])] {
        let page = dir.path().join(format!("{command}.html"));
        let run = write_page(command, &page, args);
        assert!(run.code < 2, "{command}: {}", run.stderr);
        let url = format!("file://{}", page.display());

        let dom = chromium(dir.path(), &["--dump-dom", &url]);
        let dom = String::from_utf8_lossy(&dom);
        let svgs = dom.matches("<svg").count();
        assert_eq!(svgs, expected_plots(command, &run.json), "{command}");
        assert_eq!(
            dom.matches("<figure").count(),
            svgs,
            "every plot in a figure"
        );
        let mut ids = vec!["summary", "findings", "verdict", "classes"];
        if command == "bench" {
            ids.extend(["methods", "roc"]);
        }
        let classes: Vec<String> = (0..10).map(|c| format!("class-{c}")).collect();
        for id in ids
            .iter()
            .copied()
            .chain(classes.iter().map(String::as_str))
        {
            assert!(dom.contains(&format!("id=\"{id}\"")), "{command}: no #{id}");
        }
        for heading in ["<h2>Validation findings</h2>", "<h2>Per class</h2>"] {
            assert!(dom.contains(heading), "{command}: no {heading}");
        }

        let shot = dir.path().join(format!("{command}.png"));
        let screenshot = format!("--screenshot={}", shot.display());
        chromium(dir.path(), &[&screenshot, "--window-size=1280,4000", &url]);
        let image = image::open(&shot).expect("chromium wrote a PNG").to_rgb8();
        let pixels = image.pixels().count();
        let inked = image
            .pixels()
            .filter(|p| p.0.iter().any(|&v| v < 235))
            .count();
        let colours: HashSet<[u8; 3]> = image.pixels().map(|p| p.0).collect();
        let bars = image.pixels().filter(|p| near(p.0, BAR)).count();
        println!(
            "{command}: {}x{}, {:.1} % inked, {} colours, {bars} bar pixels",
            image.width(),
            image.height(),
            100.0 * inked as f64 / pixels as f64,
            colours.len()
        );
        assert!(
            inked * 100 > 3 * pixels,
            "{command}: nearly blank screenshot"
        );
        assert!(colours.len() > 50, "{command}: {} colours", colours.len());
        // Histogram bars are filled rectangles: drawn, they leave blocks of their colour.
        assert!(bars > 2_000, "{command}: {bars} pixels of the bar colour");
    }
}

fn near(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter().zip(b).all(|(&x, y)| x.abs_diff(y) <= 3)
}

/// Runs headless chromium on `args` with a fresh profile under `dir`, at most two minutes,
/// and returns its stdout.
fn chromium(dir: &Path, args: &[&str]) -> Vec<u8> {
    let profile = tempfile::tempdir_in(dir).unwrap();
    let log = std::fs::File::create(dir.join("chromium.log")).unwrap();
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("chromium starts");
    // Read stdout on a thread: a DOM larger than the pipe would otherwise block chromium.
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        stdout.read_to_end(&mut out).map(|_| out)
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(120) {
            child.kill().unwrap();
            panic!("chromium {args:?} ran over two minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = std::fs::read_to_string(dir.join("chromium.log")).unwrap_or_default();
    assert!(status.success(), "chromium {args:?}: {status}\n{log}");
    reader.join().unwrap().unwrap()
}
