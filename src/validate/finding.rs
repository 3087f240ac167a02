//! One validation finding: which rule, how bad, where (column, rows) and a one-line message.

use serde::Serialize;

/// How many row ids a finding lists in the report; `count` always has the full number.
pub const EXAMPLE_ROWS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Fails the gate (exit code 1).
    Error,
    /// Reported; fails the gate only with `--strict`.
    Warning,
}

/// Every rule the validator applies. The serialised names are part of the JSON schema.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    strum::IntoStaticStr,
    strum::EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Rule {
    // Declared in a `--schema` file.
    MissingColumn,
    WrongType,
    LabelNotAllowed,
    BelowMin,
    AboveMax,
    TooManyNulls,
    // Inferred from the data.
    NullValue,
    NanValue,
    InfiniteValue,
    OutOfF32Range,
    NonNumeric,
    ConstantColumn,
    MissingLabel,
    SmallClass,
    SingleClass,
    MissingId,
    DuplicateId,
    DuplicateRows,
    ConflictingDuplicates,
    UndecodableImage,
    MixedChannels,
    MixedSizes,
    ConvertedImage,
    MissingText,
    EmptyText,
    InvalidUtf8,
    IgnoredFile,
    NonUtf8Name,
}

impl Rule {
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// A finding. `rows` holds every affected row (0-based positions); the report shows the
/// first [`EXAMPLE_ROWS`] of them by id, and `count`.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub rule: Rule,
    pub severity: Severity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// Number of affected rows (0 for findings about a column or the whole dataset).
    pub count: usize,
    /// Ids of the first affected rows.
    pub rows: Vec<String>,
    pub message: String,
    #[serde(skip)]
    pub row_index: Vec<u32>,
}

impl Finding {
    pub fn new(rule: Rule, severity: Severity, message: impl Into<String>) -> Self {
        Finding {
            rule,
            severity,
            column: None,
            count: 0,
            rows: Vec::new(),
            message: message.into(),
            row_index: Vec::new(),
        }
    }

    pub fn error(rule: Rule, message: impl Into<String>) -> Self {
        Self::new(rule, Severity::Error, message)
    }

    pub fn warning(rule: Rule, message: impl Into<String>) -> Self {
        Self::new(rule, Severity::Warning, message)
    }

    pub fn column(mut self, column: impl Into<String>) -> Self {
        self.column = Some(column.into());
        self
    }

    /// Attaches the affected rows; ids are filled in later by [`Finding::name_rows`].
    pub fn rows(mut self, rows: Vec<u32>) -> Self {
        self.count = rows.len();
        self.row_index = rows;
        self
    }

    /// Fills `rows` with the ids of the first affected rows.
    pub fn name_rows(&mut self, id: impl Fn(usize) -> String) {
        self.rows = self
            .row_index
            .iter()
            .take(EXAMPLE_ROWS)
            .map(|&r| id(r as usize))
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_names_match_their_json_names() {
        use strum::IntoEnumIterator;
        for rule in Rule::iter() {
            let json = serde_json::to_string(&rule).unwrap();
            assert_eq!(json, format!("\"{}\"", rule.name()));
        }
        assert_eq!(Rule::OutOfF32Range.name(), "out_of_f32_range");
    }
}
