//! `bench --format table|json|csv|markdown`: one row per method (every detector on every view,
//! then the fused verdict).

use std::io::Write;

use super::{BenchReport, MethodResult};
use crate::cli::BenchFormat;

/// The columns of the csv and markdown tables, in order.
const COLUMNS: [&str; 10] = [
    "method",
    "view",
    "flagged",
    "true_positives",
    "precision",
    "recall",
    "f1",
    "auroc",
    "tpr_at_1pct_fpr",
    "seconds",
];

pub fn print(report: &BenchReport, format: BenchFormat) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    write(&mut out, report, format)
}

pub fn write(
    out: &mut impl Write,
    report: &BenchReport,
    format: BenchFormat,
) -> std::io::Result<()> {
    match format {
        BenchFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, report)?;
            writeln!(out)
        }
        BenchFormat::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(COLUMNS)?;
            for m in &report.methods {
                w.write_record(cells(m, 6))?;
            }
            w.flush()
        }
        BenchFormat::Markdown => {
            writeln!(out, "{}\n", title(report))?;
            writeln!(out, "| {} |", COLUMNS.join(" | "))?;
            writeln!(out, "|{}", "---|".repeat(COLUMNS.len()))?;
            for m in &report.methods {
                writeln!(out, "| {} |", cells(m, 3).join(" | "))?;
            }
            Ok(())
        }
        BenchFormat::Table => table(out, report),
    }
}

/// What was measured: the input and where its poisons came from.
fn title(report: &BenchReport) -> String {
    let source = match (&report.truth_file, report.attack, report.rate) {
        (Some(file), _, _) => format!("poisons from {file}"),
        (None, Some(attack), Some(rate)) => format!("{attack:?} at rate {rate}"),
        _ => "nothing planted".to_string(),
    };
    format!(
        "{}: {source}; {} poisons in {} rows",
        report.input, report.poisons, report.rows
    )
}

/// One method's row; `digits` decimals for the shares, "-" where a figure is undefined.
fn cells(m: &MethodResult, digits: usize) -> Vec<String> {
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.digits$}"));
    vec![
        m.method.clone(),
        m.view.clone(),
        m.quality.flagged.to_string(),
        m.quality.true_positives.to_string(),
        format!("{:.digits$}", m.quality.precision),
        format!("{:.digits$}", m.quality.recall),
        format!("{:.digits$}", m.quality.f1),
        opt(m.auroc),
        opt(m.tpr_at_1pct_fpr),
        format!("{:.3}", m.seconds),
    ]
}

fn table(out: &mut impl Write, report: &BenchReport) -> std::io::Result<()> {
    writeln!(out, "{}", title(report))?;
    writeln!(
        out,
        "{:<12} {:<12} {:>7} {:>9} {:>7} {:>6} {:>6} {:>9} {:>8}",
        "method", "view", "flagged", "precision", "recall", "f1", "auroc", "tpr@1%fpr", "seconds"
    )?;
    for m in &report.methods {
        let c = cells(m, 3);
        writeln!(
            out,
            "{:<12} {:<12} {:>7} {:>9} {:>7} {:>6} {:>6} {:>9} {:>8}",
            c[0], c[1], c[2], c[4], c[5], c[6], c[7], c[8], c[9]
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::AttackKind;
    use crate::detect::metrics::quality;

    fn report() -> BenchReport {
        let method = |name: &str, flags: &[bool], auroc| MethodResult {
            method: name.into(),
            view: "raw".into(),
            quality: quality(flags, &[true, false, false, true]),
            auroc,
            tpr_at_1pct_fpr: None,
            seconds: 0.25,
            classes: Vec::new(),
        };
        BenchReport {
            input: "d.csv".into(),
            attack: Some(AttackKind::Flip),
            rate: Some(0.5),
            truth_file: None,
            poisons: 2,
            rows: 4,
            methods: vec![
                method("knn", &[true, true, false, false], Some(0.75)),
                method("fused", &[true, false, false, true], None),
            ],
        }
    }

    fn text(format: BenchFormat) -> String {
        let mut buf = Vec::new();
        write(&mut buf, &report(), format).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn csv_has_a_header_and_one_row_per_method() {
        let csv = text(BenchFormat::Csv);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], COLUMNS.join(","));
        assert_eq!(
            lines[1],
            "knn,raw,2,1,0.500000,0.500000,0.500000,0.750000,-,0.250"
        );
        assert_eq!(
            lines[2],
            "fused,raw,2,2,1.000000,1.000000,1.000000,-,-,0.250"
        );
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn markdown_and_table_name_the_attack_and_every_method() {
        let md = text(BenchFormat::Markdown);
        assert!(
            md.starts_with("d.csv: Flip at rate 0.5; 2 poisons in 4 rows\n"),
            "{md}"
        );
        assert!(md.contains("| knn | raw | 2 | 1 | 0.500 | 0.500 | 0.500 | 0.750 | - | 0.250 |"));
        assert_eq!(md.lines().filter(|l| l.starts_with('|')).count(), 4);
        let table = text(BenchFormat::Table);
        assert!(table.contains("fused") && table.contains("knn"), "{table}");
        let json: serde_json::Value = serde_json::from_str(&text(BenchFormat::Json)).unwrap();
        assert_eq!(json["attack"], "flip");
        assert_eq!(json["methods"][0]["f1"], 0.5);
    }
}
