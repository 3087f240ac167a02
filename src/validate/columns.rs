//! Column checks on a tabular frame, as polars expressions: one pass counts every rule's
//! violations, and only rules that fired are asked for their row numbers.

use polars::prelude::*;

use super::finding::{Finding, Rule, Severity};
use super::schema::{ColumnType, Schema as Declared};
use crate::source::tabular::{is_image_type, Frame, PayloadRole};

const ROW: &str = "\u{0}row";

/// One rule over one column: rows where `predicate` is true violate it.
struct Check {
    rule: Rule,
    severity: Severity,
    column: String,
    predicate: Expr,
    /// What was counted, then optionally "; " and what was expected: the message reads
    /// "<count> NaN values in `x`; expected finite numbers".
    what: String,
}

pub fn check(frame: &Frame, declared: Option<&Declared>) -> PolarsResult<Vec<Finding>> {
    let mut findings = Vec::new();
    let mut checks = Vec::new();
    let df = &frame.df;
    let n = df.height() as f64;
    if let Some(declared) = declared {
        findings.extend(declared_types(frame, declared));
    }
    let null_allowance = |c: &str| {
        declared
            .and_then(|d| d.columns.get(c))
            .map_or(0.0, |r| r.max_null_fraction)
    };
    let nulls = |column: &str, rule: Rule, what: &str, checks: &mut Vec<Check>| {
        let count = df.column(column).map_or(0, |c| c.null_count()) as f64;
        let allowed = null_allowance(column);
        // A declared allowance turns nulls below it into warnings; above it, too_many_nulls
        // (below) is the error.
        let severity = if allowed > 0.0 && count <= allowed * n {
            Severity::Warning
        } else {
            Severity::Error
        };
        if allowed == 0.0 || count <= allowed * n {
            checks.push(Check {
                rule,
                severity,
                column: column.to_string(),
                predicate: col(column).is_null(),
                what: what.to_string(),
            });
        }
    };
    if let Some(label) = &frame.roles.label {
        nulls(
            label,
            Rule::MissingLabel,
            "rows without a label",
            &mut checks,
        );
    }
    if let Some(id) = &frame.roles.id {
        nulls(id, Rule::MissingId, "rows without an id", &mut checks);
    }
    match &frame.roles.payload {
        PayloadRole::Features(features) => {
            for f in features {
                let dtype = df.column(f)?.dtype().clone();
                nulls(
                    f,
                    Rule::NullValue,
                    "null values; expected numbers",
                    &mut checks,
                );
                checks.extend(feature_checks(f, &dtype));
            }
        }
        PayloadRole::Text(t) => {
            nulls(t, Rule::MissingText, "rows without text", &mut checks);
            if df.column(t)?.dtype().is_string() {
                checks.push(Check {
                    rule: Rule::EmptyText,
                    severity: Severity::Warning,
                    column: t.clone(),
                    predicate: col(t.as_str()).eq(lit("")),
                    what: "empty texts".into(),
                });
            }
        }
        PayloadRole::Image(_) => {}
    }
    if let Some(declared) = declared {
        checks.extend(declared_values(frame, declared, n));
    }
    findings.extend(run(df, checks)?);
    findings.extend(constant_columns(frame)?);
    Ok(findings)
}

fn feature_checks(f: &str, dtype: &DataType) -> Vec<Check> {
    let check = |rule, predicate, what: &str| Check {
        rule,
        severity: Severity::Error,
        column: f.to_string(),
        predicate,
        what: what.to_string(),
    };
    // String columns are features whose values polars will parse ("NaN" and "inf" parse).
    let number = || col(f).cast(DataType::Float64);
    let mut checks = Vec::new();
    if dtype.is_float() || dtype.is_string() {
        checks.push(check(
            Rule::NanValue,
            number().is_nan(),
            "NaN values; expected finite numbers",
        ));
        checks.push(check(
            Rule::InfiniteValue,
            number().is_infinite(),
            "infinite values; expected finite numbers",
        ));
    }
    if dtype == &DataType::Float64 || dtype.is_string() {
        let max = f32::MAX as f64;
        checks.push(check(
            Rule::OutOfF32Range,
            number()
                .is_finite()
                .and(number().gt(lit(max)).or(number().lt(lit(-max)))),
            "values beyond the float32 range (|x| > 3.4e38); features are stored as float32",
        ));
    }
    if dtype.is_string() {
        checks.push(check(
            Rule::NonNumeric,
            col(f).is_not_null().and(number().is_null()),
            "values that are not numbers; expected numeric values",
        ));
    }
    checks
}

/// `missing_column` and `wrong_type` from the declared schema, against the file's schema.
fn declared_types(frame: &Frame, declared: &Declared) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (name, rules) in &declared.columns {
        let Some(dtype) = frame.file_schema.get(name) else {
            if rules.required {
                findings.push(
                    Finding::error(
                        Rule::MissingColumn,
                        format!("the schema requires column `{name}`, which the input lacks"),
                    )
                    .column(name),
                );
            }
            continue;
        };
        let Some(kind) = rules.kind else { continue };
        let fits = match kind {
            ColumnType::Float => dtype.is_float(),
            ColumnType::Int => dtype.is_integer(),
            ColumnType::Numeric => dtype.is_primitive_numeric(),
            ColumnType::String => dtype.is_string(),
            ColumnType::Bool => dtype.is_bool(),
            ColumnType::Binary => is_image_type(dtype),
        };
        if !fits {
            findings.push(
                Finding::error(
                    Rule::WrongType,
                    format!(
                        "column `{name}` has type {dtype}; the schema declares {}",
                        kind.name()
                    ),
                )
                .column(name),
            );
        }
    }
    findings
}

/// Declared ranges and null fractions, over columns the frame loaded.
fn declared_values(frame: &Frame, declared: &Declared, n: f64) -> Vec<Check> {
    let mut checks = Vec::new();
    for (name, rules) in &declared.columns {
        let Ok(column) = frame.df.column(name) else {
            continue;
        };
        let numeric = || col(name.as_str()).cast(DataType::Float64);
        let range = |rule, predicate, what: String| Check {
            rule,
            severity: Severity::Error,
            column: name.clone(),
            predicate,
            what,
        };
        if let Some(min) = rules.min {
            checks.push(range(
                Rule::BelowMin,
                numeric().lt(lit(min)),
                format!("values below the declared minimum {min}"),
            ));
        }
        if let Some(max) = rules.max {
            checks.push(range(
                Rule::AboveMax,
                numeric().gt(lit(max)),
                format!("values above the declared maximum {max}"),
            ));
        }
        let nulls = column.null_count() as f64;
        if rules.max_null_fraction > 0.0 && nulls > rules.max_null_fraction * n {
            checks.push(range(
                Rule::TooManyNulls,
                col(name.as_str()).is_null(),
                format!(
                    "nulls ({:.2}% of rows); the schema allows at most {}%",
                    100.0 * nulls / n,
                    100.0 * rules.max_null_fraction
                ),
            ));
        }
    }
    checks
}

/// Counts every check in one pass, then fetches the rows of those that fired.
fn run(df: &DataFrame, checks: Vec<Check>) -> PolarsResult<Vec<Finding>> {
    if checks.is_empty() {
        return Ok(Vec::new());
    }
    // Plain evaluation: the optimiser's passes cost more than they save on one flat select of
    // independent aggregates, and with 100k columns they took most of the scan.
    let counts = df
        .clone()
        .lazy()
        .without_optimizations()
        .select(
            checks
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    c.predicate
                        .clone()
                        .cast(DataType::UInt64)
                        .sum()
                        .alias(format!("{i}"))
                })
                .collect::<Vec<_>>(),
        )
        .collect()?;
    let mut findings = Vec::new();
    for (i, check) in checks.into_iter().enumerate() {
        let count = counts.column(&format!("{i}"))?.u64()?.get(0).unwrap_or(0);
        if count == 0 {
            continue;
        }
        let rows = df
            .clone()
            .lazy()
            .with_row_index(ROW, None)
            .filter(check.predicate)
            .select([col(ROW), col(check.column.as_str()).cast(DataType::String)])
            .collect()?;
        let index: Vec<u32> = rows.column(ROW)?.idx()?.into_no_null_iter().collect();
        let (head, expected) = match check.what.split_once("; ") {
            Some((head, expected)) => (head, format!("; {expected}")),
            None => (check.what.as_str(), String::new()),
        };
        let mut first = String::new();
        if check.rule == Rule::NonNumeric {
            if let Some(v) = rows.column(&check.column)?.str()?.get(0) {
                first = format!(" (first: {v:?})");
            }
        }
        let message = format!("{count} {head} in `{}`{first}{expected}", check.column);
        findings.push(
            Finding::new(check.rule, check.severity, message)
                .column(check.column)
                .rows(index),
        );
    }
    Ok(findings)
}

/// Numeric features whose every non-null value is the same: they carry no information and
/// often mean a broken export.
fn constant_columns(frame: &Frame) -> PolarsResult<Vec<Finding>> {
    let PayloadRole::Features(features) = &frame.roles.payload else {
        return Ok(Vec::new());
    };
    let numeric: Vec<&String> = features
        .iter()
        .filter(|f| {
            frame
                .df
                .column(f)
                .is_ok_and(|c| c.dtype().is_primitive_numeric())
        })
        .collect();
    if numeric.is_empty() {
        return Ok(Vec::new());
    }
    let exprs: Vec<Expr> = numeric
        .iter()
        .flat_map(|f| {
            let c = || col(f.as_str()).cast(DataType::Float64);
            [
                c().min().alias(format!("{f}\u{0}min")),
                c().max().alias(format!("{f}\u{0}max")),
            ]
        })
        .collect();
    let stats = frame
        .df
        .clone()
        .lazy()
        .without_optimizations()
        .select(exprs)
        .collect()?;
    let mut findings = Vec::new();
    for f in numeric {
        let get = |s: &str| -> PolarsResult<Option<f64>> {
            Ok(stats.column(&format!("{f}\u{0}{s}"))?.f64()?.get(0))
        };
        if let (Some(min), Some(max)) = (get("min")?, get("max")?) {
            if min == max {
                findings.push(
                    Finding::warning(
                        Rule::ConstantColumn,
                        format!("`{f}` is {min} in every row; it carries no information"),
                    )
                    .column(f.as_str()),
                );
            }
        }
    }
    Ok(findings)
}
