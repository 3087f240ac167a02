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
