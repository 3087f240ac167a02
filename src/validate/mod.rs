//! Validation: schema, types, ranges, nulls/NaN/inf, label set, class sizes, exact duplicates
//! (and duplicates whose labels disagree), undecodable images. It returns findings and never
//! drops or alters a row. Column rules run as polars expressions on the tabular frame
//! (`columns`); rules that hold for any payload run on the dataset (`rows`).

pub mod columns;
pub mod finding;
pub mod rows;
pub mod schema;

pub use finding::{Finding, Rule, Severity};

use crate::dataset::Dataset;

/// Orders findings (errors first, then by rule and column), names their first rows by id,
/// and with `strict` turns warnings into errors.
pub fn finish(findings: &mut [Finding], dataset: &Dataset, strict: bool) {
    for f in findings.iter_mut() {
        if strict {
            f.severity = Severity::Error;
        }
        f.name_rows(|i| dataset.ids.get(i).into_owned());
    }
    findings.sort_by(|a, b| (a.severity, a.rule, &a.column).cmp(&(b.severity, b.rule, &b.column)));
}
