//! The terminal summary: what was read, class counts, each finding on one line with its first
//! rows, and the gate's verdict last.

use std::io::{self, Write};

use super::Report;
use crate::validate::finding::EXAMPLE_ROWS;
use crate::validate::Severity;

pub fn render(report: &Report, out: &mut impl Write) -> io::Result<()> {
    let i = &report.input;
    writeln!(out, "poisongate {}: {}", report.tool.version, i.path)?;
    let mut what = format!("  input     {}, {} rows", i.format.name(), i.rows);
    if !i.feature_columns.is_empty() {
        what.push_str(&format!(", {} feature columns", i.feature_columns.len()));
    }
    if let Some(img) = &i.image {
        what.push_str(&format!(
            ", images {}x{}x{}",
            img.width, img.height, img.channels
        ));
    }
    if let Some(t) = &i.text_column {
        what.push_str(&format!(", text column `{t}`"));
    }
    if let Some(id) = &i.id_column {
        what.push_str(&format!(", id column `{id}`"));
    }
    writeln!(out, "{what}")?;
    match &i.label_column {
        Some(l) => {
            let classes: Vec<String> = report
                .classes
                .iter()
                .map(|c| format!("{}: {}", c.label, c.count))
                .collect();
            writeln!(
                out,
                "  labels    `{l}`, {} classes: {}",
                classes.len(),
                classes.join("  ")
            )?;
        }
        None => writeln!(
            out,
            "  labels    none (no `label` column; name one with --label)"
        )?,
    }
    if !i.ignored_columns.is_empty() {
        let cols: Vec<String> = i
            .ignored_columns
            .iter()
            .map(|c| format!("{} ({})", c.name, c.dtype))
            .collect();
        writeln!(out, "  ignored   {}", cols.join(", "))?;
    }
    let s = &report.summary;
    writeln!(
        out,
        "findings: {} errors, {} warnings ({} rows with errors, {} with warnings)",
        s.errors, s.warnings, s.rows_with_errors, s.rows_with_warnings
    )?;
    for f in &report.findings {
        let severity = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        writeln!(out, "  {severity:<8}{:<24}{}", f.rule.name(), f.message)?;
        if !f.rows.is_empty() {
            let more = if f.count > EXAMPLE_ROWS {
                format!(" and {} more", f.count - EXAMPLE_ROWS)
            } else {
                String::new()
            };
            writeln!(out, "  {:32}rows: {}{more}", "", f.rows.join(", "))?;
        }
    }
    if let Some(d) = &report.detection {
        detection(d, out)?;
    }
    let g = &report.gate;
    if g.passed {
        writeln!(out, "gate: PASS (exit {})", g.exit_code)
    } else {
        writeln!(
            out,
            "gate: FAIL: {} (exit {})",
            g.reasons.join("; "),
            g.exit_code
        )
    }
}

/// Flagged samples shown in the terminal (the JSON report lists more, scores.parquet all).
const SHOWN_SAMPLES: usize = 10;

fn detection(d: &super::detection::DetectionReport, out: &mut impl Write) -> io::Result<()> {
    if let Some(why) = &d.skipped_because {
        return writeln!(out, "detection: skipped: {why}");
    }
    let excluded: usize = d.rows_excluded.iter().map(|e| e.count).sum();
    let views: Vec<String> = d
        .views
        .iter()
        .map(|v| {
            let mut s = format!("{} {}-d {:.1}s", v.view.name(), v.dim, v.seconds);
            if let Some(t) = &v.training {
                let acc = t.accuracy.last().copied().unwrap_or(0.0);
                s.push_str(&format!(
                    " ({}, {} epochs, train accuracy {:.3})",
                    t.architecture, t.epochs, acc
                ));
            }
            s
        })
        .collect();
    writeln!(
        out,
        "detection: {} rows used, {excluded} excluded; views: {}",
        d.rows_used,
        views.join("; ")
    )?;
    for e in &d.rows_excluded {
        writeln!(
            out,
            "  excluded  {} rows: {} (first: {})",
            e.count,
            e.reason,
            e.rows.join(", ")
        )?;
    }
    let Some(v) = &d.verdict else { return Ok(()) };
    for t in &v.tests {
        writeln!(
            out,
            "  test {}({}): {} {:.4} (cut {:.4}) {}: {}",
            t.test,
            t.view.name(),
            t.statistic,
            t.value,
            t.threshold,
            if t.fired { "FIRED" } else { "passed" },
            t.detail
        )?;
    }
    writeln!(
        out,
        "  {:<12} {:>7} {:>8} {:>8}  evidence of poisoning",
        "class", "size", "poison?", "issues"
    )?;
    for c in &v.classes {
        let evidence: Vec<String> = c
            .firings
            .iter()
            .map(|f| {
                format!(
                    "{}({}) {} {:.3} (cut {:.3}): {}",
                    f.detector,
                    f.view.name(),
                    f.statistic,
                    f.value,
                    f.threshold,
                    f.samples
                )
            })
            .collect();
        let evidence = if evidence.is_empty() {
            "-".to_string()
        } else {
            evidence.join("; ")
        };
        writeln!(
            out,
            "  {:<12} {:>7} {:>8} {:>8}  {evidence}",
            c.label, c.size, c.flagged, c.label_issues
        )?;
    }
    for note in &v.notes {
        writeln!(out, "  note: {note}")?;
    }
    let lists = [
        (
            v.flagged,
            &v.samples,
            "suspected of poisoning, highest fused score first",
        ),
        (
            v.label_issues_only,
            &v.label_issue_samples,
            "label issues (a warning: natural ambiguity or mislabels), strongest first",
        ),
    ];
    for (count, samples, title) in lists {
        if count == 0 {
            continue;
        }
        writeln!(out, "  {title}:")?;
        for s in samples.iter().take(SHOWN_SAMPLES) {
            writeln!(
                out,
                "    {} (label {}, score {:.2}): {}",
                s.id,
                s.label,
                s.score,
                s.reasons.join("; ")
            )?;
        }
        if count > SHOWN_SAMPLES {
            writeln!(
                out,
                "    and {} more (all in scores.parquet with --out)",
                count - SHOWN_SAMPLES
            )?;
        }
    }
    Ok(())
}
