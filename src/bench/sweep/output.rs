//! The sweep's table. `table` and `markdown`: a row per attack and rate (then its three
//! control rows), a column group per method: F1, AUROC and the share flagged, each as mean±sd
//! over the seeds. `csv`: the same figures in long form, one line per row and method, means
//! and standard deviations in their own columns. `json`: the report as it is.

use std::io::Write;

use super::run::SweepReport;
use super::{Filter, Row, Stat, Summary};
use crate::cli::BenchFormat;

pub fn print(report: &SweepReport, format: BenchFormat) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    write(&mut out, report, format)
}

pub fn write(
    out: &mut impl Write,
    report: &SweepReport,
    format: BenchFormat,
) -> std::io::Result<()> {
    match format {
        BenchFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, report)?;
            writeln!(out)
        }
        BenchFormat::Csv => long(out, report),
        BenchFormat::Markdown | BenchFormat::Table => {
            let cells = wide(report);
            let seeds: Vec<String> = report.seeds.iter().map(u64::to_string).collect();
            writeln!(
                out,
                "{}: mean±sd over seeds {}",
                report.input,
                seeds.join(", ")
            )?;
            if format == BenchFormat::Markdown {
                writeln!(out)?;
                for (i, row) in cells.iter().enumerate() {
                    writeln!(out, "| {} |", row.join(" | "))?;
                    if i == 0 {
                        writeln!(out, "|{}", "---|".repeat(row.len()))?;
                    }
                }
                Ok(())
            } else {
                aligned(out, &cells)
            }
        }
    }
}

fn filter_name(filter: Filter) -> &'static str {
    match filter {
        Filter::Measured => "measured",
        Filter::NoFilter => "no filter",
        Filter::Random => "random, same size",
        Filter::Perfect => "perfect",
    }
}

fn rate_text(row: &Row) -> String {
    row.rate.map_or("-".to_string(), |r| r.to_string())
}

/// `mean±sd` with `digits` decimals after scaling by `scale`; `-` when undefined.
fn stat(s: Option<Stat>, scale: f64, digits: usize) -> String {
    match s {
        None => "-".to_string(),
        Some(s) if s.sd == 0.0 => format!("{:.digits$}", s.mean * scale),
        Some(s) => format!("{:.digits$}±{:.digits$}", s.mean * scale, s.sd * scale),
    }
}

/// Every method named in any row, in order of first appearance.
fn methods(report: &SweepReport) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for m in report.rows.iter().flat_map(|r| &r.methods) {
        if !names.contains(&m.method.as_str()) {
            names.push(&m.method);
        }
    }
    names
}

/// The header and one line per row, as cells.
fn wide(report: &SweepReport) -> Vec<Vec<String>> {
    let names = methods(report);
    let mut header = vec!["attack".to_string(), "rate".into(), "filter".into()];
    for name in &names {
        header.push(format!("{name} F1"));
        header.push(format!("{name} AUROC"));
        header.push(format!("{name} flagged %"));
    }
    let mut lines = vec![header];
    for row in &report.rows {
        let mut line = vec![
            serde_plain(row),
            rate_text(row),
            filter_name(row.filter).to_string(),
        ];
        for name in &names {
            let found: Option<&Summary> = row.methods.iter().find(|m| m.method == *name);
            line.push(stat(found.and_then(|m| m.f1), 1.0, 3));
            line.push(stat(found.and_then(|m| m.auroc), 1.0, 3));
            line.push(stat(found.and_then(|m| m.flagged_share), 100.0, 1));
        }
        lines.push(line);
    }
    lines
}

/// The attack's name as on the command line.
fn serde_plain(row: &Row) -> String {
    use clap::ValueEnum;
    row.attack
        .to_possible_value()
        .map_or_else(|| format!("{:?}", row.attack), |v| v.get_name().to_string())
}

fn aligned(out: &mut impl Write, lines: &[Vec<String>]) -> std::io::Result<()> {
    let columns = lines.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for line in lines {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .map(|(cell, &w)| format!("{cell:<w$}"))
            .collect();
        writeln!(out, "{}", cells.join("  ").trim_end())?;
    }
    Ok(())
}

fn long(out: &mut impl Write, report: &SweepReport) -> std::io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    let mut header = vec!["attack", "rate", "filter", "method"];
    for figure in ["flagged_share", "precision", "recall", "f1", "auroc"] {
        header.push(figure);
        header.push(match figure {
            "flagged_share" => "flagged_share_sd",
            "precision" => "precision_sd",
            "recall" => "recall_sd",
            "f1" => "f1_sd",
            _ => "auroc_sd",
        });
    }
    w.write_record(&header)?;
    let text = |s: Option<Stat>| -> [String; 2] {
        s.map_or([String::new(), String::new()], |s| {
            [format!("{:.6}", s.mean), format!("{:.6}", s.sd)]
        })
    };
    for row in &report.rows {
        for m in &row.methods {
            let mut record = vec![
                serde_plain(row),
                row.rate.map_or(String::new(), |r| r.to_string()),
                filter_name(row.filter).to_string(),
                m.method.clone(),
            ];
            for s in [m.flagged_share, m.precision, m.recall, m.f1, m.auroc] {
                record.extend(text(s));
            }
            w.write_record(&record)?;
        }
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::super::{Cell, Measured};
    use super::*;
    use crate::attack::AttackKind;

    fn report() -> SweepReport {
        let truth = [true, false, false, false];
        let mut rows = Vec::new();
        let mut cell = Cell::new(AttackKind::Badnets, Some(0.25));
        for (seed, flags) in [[true, false, false, false], [true, true, false, false]]
            .iter()
            .enumerate()
        {
            let scores: Vec<f32> = flags.iter().map(|&f| f32::from(u8::from(f))).collect();
            let m = Measured {
                method: "fused".into(),
                flags,
                scores: &scores,
            };
            cell.add(&[m], &truth, seed as u64);
        }
        rows.extend(cell.rows());
        let mut clean = Cell::new(AttackKind::Clean, None);
        let m = Measured {
            method: "fused".into(),
            flags: &[false; 4],
            scores: &[0.0; 4],
        };
        clean.add(&[m], &[false; 4], 0);
        rows.extend(clean.rows());
        SweepReport {
            input: "d.csv".into(),
            seeds: vec![0, 1],
            rows,
        }
    }

    fn text(format: BenchFormat) -> String {
        let mut buf = Vec::new();
        write(&mut buf, &report(), format).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn markdown_has_a_row_per_attack_and_control_and_a_group_per_method() {
        let md = text(BenchFormat::Markdown);
        let lines: Vec<&str> = md.lines().filter(|l| l.starts_with('|')).collect();
        assert_eq!(
            lines[0],
            "| attack | rate | filter | fused F1 | fused AUROC | fused flagged % |"
        );
        // F1 1 and 2/3 over the two seeds, AUROC 1 and 5/6 (a tie with a clean sample); 25 % and
        // 50 % flagged.
        assert_eq!(
            lines[2],
            "| badnets | 0.25 | measured | 0.833±0.236 | 0.917±0.118 | 37.5±17.7 |"
        );
        assert_eq!(lines[3], "| badnets | 0.25 | no filter | 0.000 | - | 0.0 |");
        assert!(lines[4].starts_with("| badnets | 0.25 | random, same size | "));
        assert_eq!(
            lines[5],
            "| badnets | 0.25 | perfect | 1.000 | 1.000 | 25.0 |"
        );
        assert_eq!(lines[6], "| clean | - | measured | - | - | 0.0 |");
        assert_eq!(lines.len(), 2 + 8);
    }

    #[test]
    fn csv_is_long_with_means_and_sds() {
        let csv = text(BenchFormat::Csv);
        let mut lines = csv.lines();
        assert_eq!(
            lines.next().unwrap(),
            "attack,rate,filter,method,flagged_share,flagged_share_sd,precision,precision_sd,\
             recall,recall_sd,f1,f1_sd,auroc,auroc_sd"
        );
        let first = lines.next().unwrap();
        assert!(
            first.starts_with("badnets,0.25,measured,fused,0.375000,0.176777,"),
            "{first}"
        );
        assert_eq!(lines.count(), 7);
        let table = text(BenchFormat::Table);
        assert!(
            table
                .lines()
                .nth(2)
                .unwrap()
                .starts_with("badnets  0.25  measured"),
            "{table}"
        );
    }
}
