//! The page around the plots: the `const` template and the text sections (summary, findings,
//! verdict, bench methods, the per-class frame). Every string from the data or the command
//! line goes through [`escape`]; ids and classes are built from numbers only.

use super::colour::{self, css};
use super::pca::{POINTS_PER_CLASS, SEED};
use super::{escape, Marks, Mode, Page};
use crate::bench::BenchReport;
use crate::dataset::Dataset;
use crate::pipeline::Analysis;
use crate::report::detection::{DetectionReport, VerdictSummary};
use crate::report::Report;
use crate::validate::{Finding, Severity};

/// The template, in the order it is written: `TOP`, the escaped title, `MIDDLE`, the body,
/// `BOTTOM`. Styles are inline; nothing is fetched.
const TOP: &str = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>";
const MIDDLE: &str = "</title>\n<style>
body { font-family: sans-serif; color: #222; max-width: 1320px; margin: 1.5em auto; padding: 0 1em; }
h1 { font-size: 1.5em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: .5em 0; font-size: .9em; }
th, td { border: 1px solid #ddd; padding: .25em .5em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.error, .failed { color: #b00; font-weight: bold; }
.warning { color: #a60; }
.passed { color: #070; font-weight: bold; }
.plots { display: flex; flex-wrap: wrap; gap: 10px; align-items: flex-start; }
figure { margin: 0; width: 300px; }
figure.pca { width: 420px; }
figure.roc { width: 640px; }
figcaption { font-size: .75em; color: #555; }
.swatch { display: inline-block; width: .9em; height: .9em; vertical-align: middle; margin: 0 .3em 0 1em; }
</style>\n</head>\n<body>\n";
const BOTTOM: &str = "</body>\n</html>\n";

/// The template filled in.
pub(super) fn fill(title: &str, body: &str) -> String {
    [TOP, &escape(title), MIDDLE, body, BOTTOM].concat()
}

pub(super) fn title(page: &Page<'_>) -> String {
    match &page.mode {
        Mode::Scan(r) => format!("poisongate scan: {}", r.input.path),
        Mode::Bench { report, .. } => {
            format!("poisongate bench {}: {}", attack_name(report), report.input)
        }
    }
}

fn attack_name(report: &BenchReport) -> String {
    match report.attack {
        Some(kind) => serde_json::to_value(kind)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_else(|| format!("{kind:?}")),
        None => "none (--truth)".to_string(),
    }
}

fn row(out: &mut String, name: &str, value: &str) {
    out.push_str(&format!("<tr><th>{name}</th><td>{value}</td></tr>\n"));
}

/// The `<header id="summary">`: what was read and, for a scan, the gate.
pub(super) fn header(page: &Page<'_>) -> String {
    let mut out = format!(
        "<header id=\"summary\">\n<h1>{}</h1>\n<table>\n",
        escape(&title(page))
    );
    match &page.mode {
        Mode::Scan(r) => scan_rows(&mut out, r),
        Mode::Bench { report, .. } => bench_rows(&mut out, report, page.dataset),
    }
    out.push_str("</table>\n</header>\n");
    out
}

fn scan_rows(out: &mut String, r: &Report) {
    let i = &r.input;
    row(out, "tool", &format!("poisongate {}", r.tool.version));
    row(out, "input", &escape(&i.path));
    let what = format!(
        "{}, {} files, {} rows, payload {}",
        i.format.name(),
        i.files,
        i.rows,
        i.payload
    );
    row(out, "read", &escape(&what));
    let column = |c: &Option<String>| c.as_deref().map_or("none".into(), escape);
    row(out, "label column", &column(&i.label_column));
    row(out, "id column", &column(&i.id_column));
    if !i.feature_columns.is_empty() {
        let names: Vec<String> = i.feature_columns.iter().map(|c| escape(c)).collect();
        let list = format!(
            "<details><summary>{} columns</summary>{}</details>",
            names.len(),
            names.join(", ")
        );
        row(out, "features", &list);
    }
    if let Some(t) = &i.text_column {
        row(out, "text column", &escape(t));
    }
    if let Some(img) = &i.image {
        let size = format!("{} x {} x {}", img.width, img.height, img.channels);
        row(out, "images", &size);
    }
    let counts: Vec<String> = r
        .classes
        .iter()
        .map(|c| format!("{}: {}", escape(&c.label), c.count))
        .collect();
    row(out, "classes", &counts.join(", "));
    let gate = if r.gate.passed {
        "<span class=\"passed\">passed (exit code 0)</span>".to_string()
    } else {
        format!(
            "<span class=\"failed\">failed (exit code {})</span>: {}",
            r.gate.exit_code,
            escape(&r.gate.reasons.join("; "))
        )
    };
    row(out, "gate", &gate);
}

fn bench_rows(out: &mut String, report: &BenchReport, dataset: &Dataset) {
    row(
        out,
        "tool",
        &format!("poisongate {}", env!("CARGO_PKG_VERSION")),
    );
    row(out, "input", &escape(&report.input));
    let attack = match (&report.truth_file, report.rate) {
        (Some(file), _) => format!(
            "poisons listed in {file}: {} among {} rows used (nothing planted)",
            report.poisons, report.rows
        ),
        (None, rate) => format!(
            "{} at rate {}: {} planted among {} rows used (in memory; the input is not written)",
            attack_name(report),
            rate.map_or("-".to_string(), |r| r.to_string()),
            report.poisons,
            report.rows
        ),
    };
    row(out, "attack", &escape(&attack));
    if let Some(labels) = &dataset.labels {
        let counts: Vec<String> = labels
            .classes
            .iter()
            .zip(labels.counts())
            .map(|(name, n)| format!("{}: {n}", escape(name)))
            .collect();
        row(out, "classes (as planted)", &counts.join(", "));
    }
}

/// The `<section id="findings">`: every validation finding, as in the text and JSON reports.
pub(super) fn findings(findings: &[Finding], note: &str) -> String {
    let mut out =
        format!("<section id=\"findings\">\n<h2>Validation findings</h2>\n<p>{note}</p>\n");
    if findings.is_empty() {
        out.push_str("<p>No findings.</p>\n</section>\n");
        return out;
    }
    out.push_str(
        "<table>\n<tr><th>severity</th><th>rule</th><th>column</th><th>rows</th>\
         <th>first rows</th><th>message</th></tr>\n",
    );
    for f in findings {
        let severity = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        out.push_str(&format!(
            "<tr><td class=\"{severity}\">{severity}</td><td>{}</td><td>{}</td>\
             <td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>\n",
            f.rule.name(),
            f.column.as_deref().map(escape).unwrap_or_default(),
            f.count,
            escape(&f.rows.join(", ")),
            escape(&f.message)
        ));
    }
    out.push_str("</table>\n</section>\n");
    out
}

/// The `<section id="verdict">`: views, detectors, the verdict per class, the flagged samples.
pub(super) fn verdict(d: &DetectionReport) -> String {
    let mut out = String::from("<section id=\"verdict\">\n<h2>Detection and verdict</h2>\n");
    if let Some(why) = &d.skipped_because {
        out.push_str(&format!(
            "<p>Detection did not run: {}</p>\n</section>\n",
            escape(why)
        ));
        return out;
    }
    out.push_str(&format!(
        "<p>{} rows used, on the {}.",
        d.rows_used,
        d.device.unwrap_or("cpu")
    ));
    for e in &d.rows_excluded {
        out.push_str(&format!(
            " {} left out: {} (first: {}).",
            e.count,
            escape(e.reason),
            escape(&e.rows.join(", "))
        ));
    }
    out.push_str("</p>\n");
    out.push_str(&detectors(d));
    if let Some(v) = &d.verdict {
        out.push_str(&verdict_classes(v));
        out.push_str(&flagged_samples(v));
    }
    out.push_str("</section>\n");
    out
}

fn detectors(d: &DetectionReport) -> String {
    let mut out = String::from(
        "<table>\n<tr><th>detector</th><th>view</th><th>parameters</th>\
         <th>own rule flagged</th><th>seconds</th></tr>\n",
    );
    for det in &d.detectors {
        let params: Vec<String> = det
            .parameters
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{:.2}</td></tr>\n",
            det.detector,
            det.view.name(),
            escape(&params.join(", ")),
            det.own_rule_flagged,
            det.seconds
        ));
    }
    out.push_str("</table>\n");
    out
}

/// The verdict's totals, each class's firings, and its notes.
fn verdict_classes(v: &VerdictSummary) -> String {
    let mut out = format!(
        "<p>The verdict suspects <b>{}</b> samples of poisoning and lists <b>{}</b> label issues (neighbour share {}{}).</p>\n",
        v.flagged,
        v.label_issues,
        v.neighbour_share,
        v.shift_threshold
            .map_or(String::new(), |t| format!(", shifted-copy threshold {t}"))
    );
    for t in &v.tests {
        out.push_str(&format!(
            "<p>Dataset test <b>{}</b> ({} view): {} {:.4}, cut {:.4}: {}. {}.</p>\n",
            escape(t.test),
            escape(t.view.name()),
            escape(t.statistic),
            t.value,
            t.threshold,
            if t.fired { "<b>fired</b>" } else { "passed" },
            escape(&t.detail)
        ));
    }
    out.push_str(
        "<table>\n<tr><th>class</th><th>size</th><th>suspected</th><th>label issues</th><th>rules that fired</th></tr>\n",
    );
    for c in &v.classes {
        let firings: Vec<String> = c
            .firings
            .iter()
            .map(|f| {
                format!(
                    "{}/{}: {} {:.3} (cut {:.3}), {} samples",
                    f.detector,
                    f.view.name(),
                    f.statistic,
                    f.value,
                    f.threshold,
                    f.samples
                )
            })
            .collect();
        out.push_str(&format!(
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>\n",
            escape(&c.label),
            c.size,
            c.flagged,
            c.label_issues,
            firings.join("<br>")
        ));
    }
    out.push_str("</table>\n");
    if !v.notes.is_empty() {
        out.push_str("<ul class=\"notes\">\n");
        for n in &v.notes {
            out.push_str(&format!("<li>{}</li>\n", escape(n)));
        }
        out.push_str("</ul>\n");
    }
    out
}

/// The flagged samples the report lists, folded away.
fn flagged_samples(v: &VerdictSummary) -> String {
    if v.samples.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "<details><summary>The {} flagged samples with the highest fused score</summary>\n\
         <table>\n<tr><th>id</th><th>label</th><th>score</th><th>reasons</th></tr>\n",
        v.samples.len()
    );
    for s in &v.samples {
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{:.3}</td><td>{}</td></tr>\n",
            escape(&s.id),
            escape(&s.label),
            s.score,
            escape(&s.reasons.join("; "))
        ));
    }
    out.push_str("</table>\n</details>\n");
    out
}

/// The `<section id="methods">` of a bench page: each method against the planted truth.
pub(super) fn methods(report: &BenchReport) -> String {
    let mut out = String::from(
        "<section id=\"methods\">\n<h2>Methods against the planted truth</h2>\n<table>\n\
         <tr><th>method</th><th>view</th><th>flagged</th><th>precision</th><th>recall</th>\
         <th>F1</th><th>AUROC</th><th>TPR at 1 % FPR</th><th>seconds</th></tr>\n",
    );
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    for m in &report.methods {
        let q = &m.quality;
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{:.3}</td>\
             <td class=\"num\">{:.3}</td><td class=\"num\">{:.3}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{:.2}</td></tr>\n",
            escape(&m.method),
            escape(&m.view),
            q.flagged,
            q.precision,
            q.recall,
            q.f1,
            opt(m.auroc),
            opt(m.tpr_at_1pct_fpr),
            m.seconds
        ));
    }
    out.push_str("</table>\n</section>\n");
    out
}

/// The opening of `<section id="classes">`: how to read the plots, and the colour key.
pub(super) fn classes_intro(analysis: &Analysis, view: Option<&str>, marks: &Marks<'_>) -> String {
    let swatch = |c, what: &str| {
        format!(
            "<span class=\"swatch\" style=\"background:{}\"></span>{what}",
            css(c)
        )
    };
    let key = match marks.truth {
        Some(_) => [
            swatch(colour::PLAIN, "clean"),
            swatch(colour::POISON, "planted (histogram bars)"),
            swatch(
                colour::FLAGGED,
                "flagged by the verdict (PCA points; triangles are planted)",
            ),
        ]
        .concat(),
        None => [
            swatch(colour::PLAIN, "not flagged"),
            swatch(colour::FLAGGED, "flagged by the verdict"),
        ]
        .concat(),
    };
    let projection = match view {
        Some(v) => format!(
            "The scatter plot projects the class's samples in the <b>{}</b> view (the view \
             label consistency was judged in) on their first two principal components. A class \
             of more than {POINTS_PER_CLASS} samples is drawn as a seeded sample of \
             {POINTS_PER_CLASS} (seed {SEED} plus the class index), so the page stays small: \
             all its flagged samples unless they would take more than half, then unflagged \
             ones; the caption gives the counts.",
            escape(v)
        ),
        None => "No view was computed, so there is no projection.".into(),
    };
    format!(
        "<section id=\"classes\">\n<h2>Per class</h2>\n<p>{projection} Each histogram is one \
         detector's per-sample score over the class ({} detector runs, then the fused score); \
         a black line is the cut its flag rule makes on that score, where the rule is such a \
         cut, and the caption says what the rule is where it is not.</p>\n<p class=\"key\">{key}</p>\n",
        analysis.runs.len()
    )
}

/// One class's `<section>`, around its plots.
pub(super) fn class_section(
    class: usize,
    name: &str,
    rows: &[u32],
    marks: &Marks<'_>,
    plots: &str,
) -> String {
    let flagged = rows.iter().filter(|&&r| marks.flagged[r as usize]).count();
    let planted = marks.truth.map_or(String::new(), |t| {
        let n = rows.iter().filter(|&&r| t[r as usize]).count();
        format!(", {n} planted")
    });
    format!(
        "<section class=\"class\" id=\"class-{class}\">\n<h3>Class {}</h3>\n<p>{} samples, \
         {flagged} flagged by the verdict{planted}.</p>\n<div class=\"plots\">\n{plots}</div>\n</section>\n",
        escape(name),
        rows.len()
    )
}
