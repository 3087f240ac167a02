//! The page end to end: a small seeded table with markup in its names goes through the real
//! pipeline, and the page is checked for its sections, its plots, its escaping and for
//! anything it would fetch.

use std::path::Path;

use clap::Parser;
use rand::{Rng, SeedableRng};

use super::*;
use crate::dataset::{Format, Ids, Labels, Origin, Payload, Table};
use crate::pipeline::analyse;
use crate::progress::Progress;
use crate::report::detection::Outcome;

/// Markup that must never reach the page unescaped.
const CLASSES: [&str; 3] = ["cat", "<b>dog</b>", "a&b\"'"];
const COLUMN: &str = "x<script>alert(1)</script>";
const PATH: &str = "in<put>.csv";

/// Three Gaussian classes of 40 rows in 3 columns; rows 0..4 of class 0 carry label 1.
fn dataset() -> Dataset {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let (mut values, mut names) = (Vec::new(), Vec::new());
    for i in 0..120 {
        let class = i % 3;
        values.extend((0..3).map(|j| {
            let centre = if j == class { 6.0 } else { 0.0 };
            centre + rng.random_range(-1.0f32..1.0)
        }));
        let label = if i < 12 && class == 0 { 1 } else { class };
        names.push(Some(CLASSES[label].to_string()));
    }
    Dataset {
        origin: Origin {
            path: PATH.into(),
            format: Format::Csv,
            files: 1,
            ignored_columns: Vec::new(),
        },
        ids: Ids::RowNumber(120),
        labels: Some(Labels::from_names("label".into(), names)),
        payload: Payload::Table(Table {
            columns: vec![COLUMN.into(), "b".into(), "c".into()],
            values,
        }),
    }
}

fn scan(argv: &[&str]) -> (Dataset, Report, Outcome) {
    let args = crate::cli::Args::parse_from([&["poisongate", "scan", "x.csv"], argv].concat());
    let crate::cli::Command::Scan(args) = args.command else {
        panic!("not a scan")
    };
    let config = crate::cli::config::ScanConfig::from_args(args, false).unwrap();
    let ds = dataset();
    let outcome = match &config.detect {
        Some(detect) => Outcome::Ran(Box::new(
            analyse(&ds, detect, &Progress::hidden()).unwrap().unwrap(),
        )),
        None => Outcome::NotRequested,
    };
    let findings = validate_input(&ds, Vec::new());
    let (report, _) = Report::build(&ds, findings, &outcome, Default::default());
    (ds, report, outcome)
}

fn count(html: &str, needle: &str) -> usize {
    html.matches(needle).count()
}

/// Nothing the page would load from elsewhere, and no script at all.
fn assert_self_contained(html: &str) {
    for bad in [
        "src=", "href=", "<link", "url(", "@import", "<script", "<iframe", "<img",
    ] {
        assert_eq!(count(html, bad), 0, "the page contains {bad:?}");
    }
}

#[test]
fn a_scan_page_has_every_section_and_one_plot_per_detector_and_class() {
    let (ds, report, outcome) = scan(&["--embedder", "raw"]);
    let html = render(&Page::scan(&report, &ds, &outcome)).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>\n"));
    for id in [
        "summary", "findings", "verdict", "classes", "class-0", "class-1", "class-2",
    ] {
        assert_eq!(count(&html, &format!("id=\"{id}\"")), 1, "{id}");
    }
    assert_eq!(count(&html, "id=\"roc\""), 0);
    assert_eq!(count(&html, "id=\"methods\""), 0);
    let Outcome::Ran(analysis) = &outcome else {
        panic!("detection ran")
    };
    // Per class: the projection, each detector run, the fused score.
    let per_class = 1 + analysis.runs.len() + 1;
    assert_eq!(count(&html, "<svg"), 3 * per_class);
    assert_eq!(count(&html, "</svg>"), 3 * per_class);
    // The fused score's cut is drawn in every class; the flipped rows are label issues (four
    // mislabels of one class are not poisoning), and the page counts them.
    assert!(html.contains("Line at 1: the verdict flags"));
    assert!(analysis.verdict.label_issues[..12].iter().any(|&f| f));
    assert!(html.contains("label issues"));
    assert_self_contained(&html);
}

#[test]
fn every_user_string_is_escaped() {
    let (ds, report, outcome) = scan(&["--embedder", "raw"]);
    let html = render(&Page::scan(&report, &ds, &outcome)).unwrap();
    for raw in [CLASSES[1], CLASSES[2], COLUMN, PATH] {
        assert!(!html.contains(raw), "unescaped {raw:?}");
    }
    assert!(html.contains("&lt;b&gt;dog&lt;/b&gt;"));
    assert!(html.contains("<h3>Class a&amp;b&quot;&#39;</h3>"));
    assert!(html.contains("x&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("<title>poisongate scan: in&lt;put&gt;.csv</title>"));
    // Inside the plots, plotters' own escaping applies (class titles of the projections).
    assert!(html.contains("class &lt;b&gt;dog&lt;/b&gt;"));
}

#[test]
fn a_bench_page_adds_the_methods_and_the_roc_curves() {
    let (ds, _, outcome) = scan(&["--embedder", "raw"]);
    let Outcome::Ran(analysis) = &outcome else {
        panic!("detection ran")
    };
    // Call the relabelled rows the planted ones.
    let truth: Vec<bool> = (0..120).map(|i| i < 12 && i % 3 == 0).collect();
    let report = crate::bench::BenchReport {
        input: PATH.into(),
        attack: Some(crate::attack::AttackKind::Flip),
        rate: Some(0.1),
        truth_file: None,
        poisons: 4,
        rows: 120,
        methods: Vec::new(),
    };
    let detection = detection::ran(analysis, &ds);
    let page = Page {
        mode: Mode::Bench {
            report: &report,
            truth: &truth,
        },
        dataset: &ds,
        findings: &[],
        detection: Some(&detection),
        analysis: Some(analysis),
    };
    let html = render(&page).unwrap();
    for id in [
        "summary", "findings", "verdict", "methods", "roc", "classes",
    ] {
        assert_eq!(count(&html, &format!("id=\"{id}\"")), 1, "{id}");
    }
    let per_class = 1 + analysis.runs.len() + 1;
    assert_eq!(count(&html, "<svg"), 3 * per_class + 1);
    // One legend entry per method and one for the fused score, each with its AUROC.
    assert_eq!(count(&html, "(AUROC "), analysis.runs.len() + 1);
    assert!(html.contains("4 planted"), "class 1 holds the planted rows");
    assert!(html.contains("What <code>scan</code> finds"));
    assert_self_contained(&html);
}

#[test]
fn a_validate_only_page_has_the_findings_and_no_plots() {
    let (ds, report, outcome) = scan(&["--validate-only"]);
    let html = render(&Page::scan(&report, &ds, &outcome)).unwrap();
    assert_eq!(count(&html, "id=\"findings\""), 1);
    assert_eq!(count(&html, "id=\"verdict\""), 0);
    assert_eq!(count(&html, "<svg"), 0);
    // The constant-free seeded table has no findings.
    assert!(html.contains("No findings."));
}

#[test]
fn the_page_is_not_written_into_the_input_or_a_folder_or_nowhere() {
    let (ds, report, outcome) = scan(&["--validate-only"]);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "label\n1\n").unwrap();
    let write = |path: &Path| write_scan(path, Some(&input), &report, &ds, &outcome);
    let err = write(&input).unwrap_err();
    assert!(matches!(err, ReportError::HtmlIntoInput { .. }), "{err}");
    assert_eq!(std::fs::read_to_string(&input).unwrap(), "label\n1\n");
    let err = write(dir.path()).unwrap_err();
    assert!(matches!(err, ReportError::HtmlIsFolder(_)), "{err}");
    let missing = dir.path().join("no/such/folder/report.html");
    let err = write(&missing).unwrap_err();
    assert!(
        err.to_string().contains("no/such/folder/report.html"),
        "{err}"
    );
    let ok = dir.path().join("report.html");
    write(&ok).unwrap();
    assert!(std::fs::read_to_string(&ok)
        .unwrap()
        .contains("id=\"findings\""));
}
