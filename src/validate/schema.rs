//! Declared rules from a `--schema FILE.toml`: required columns and their types, allowed label
//! values, per-column ranges and the largest tolerated fraction of nulls.
//!
//! ```toml
//! [labels]
//! allowed = ["cat", "dog"]          # or integers: [0, 1, 2]
//!
//! [columns.age]
//! type = "int"                      # float | int | numeric | string | bool | binary
//! min = 0
//! max = 130
//! max_null_fraction = 0.01          # default 0: any null is an error
//! required = true                   # default true
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("cannot read schema file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("schema file {path} is not a valid poisongate schema")]
    Parse {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("schema file {path}: column `{column}`: {problem}")]
    Invalid {
        path: PathBuf,
        column: String,
        problem: String,
    },
}

/// The parsed schema file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    #[serde(default)]
    pub labels: Option<LabelRules>,
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnRules>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelRules {
    /// Allowed label values; integers and strings are compared by their text form.
    pub allowed: Vec<LabelValue>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum LabelValue {
    Int(i64),
    Bool(bool),
    Text(String),
}

impl LabelValue {
    pub fn as_label(&self) -> String {
        match self {
            LabelValue::Int(i) => i.to_string(),
            LabelValue::Bool(b) => b.to_string(),
            LabelValue::Text(s) => s.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnRules {
    #[serde(rename = "type")]
    pub kind: Option<ColumnType>,
    #[serde(default = "yes")]
    pub required: bool,
    pub min: Option<f64>,
    pub max: Option<f64>,
    #[serde(default)]
    pub max_null_fraction: f64,
}

fn yes() -> bool {
    true
}

/// Column types a schema can declare, coarser than the file's physical types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    Float,
    Int,
    Numeric,
    String,
    Bool,
    Binary,
}

impl ColumnType {
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::Float => "float",
            ColumnType::Int => "int",
            ColumnType::Numeric => "numeric",
            ColumnType::String => "string",
            ColumnType::Bool => "bool",
            ColumnType::Binary => "binary",
        }
    }
}

impl Schema {
    pub fn load(path: &Path) -> Result<Self, SchemaError> {
        let text = std::fs::read_to_string(path).map_err(|source| SchemaError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, SchemaError> {
        let schema: Schema = toml::from_str(text).map_err(|source| SchemaError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        for (column, rules) in &schema.columns {
            let invalid = |problem: String| SchemaError::Invalid {
                path: path.to_owned(),
                column: column.clone(),
                problem,
            };
            if let (Some(min), Some(max)) = (rules.min, rules.max) {
                if min > max {
                    return Err(invalid(format!("min {min} is larger than max {max}")));
                }
            }
            if !(0.0..=1.0).contains(&rules.max_null_fraction) {
                return Err(invalid(format!(
                    "max_null_fraction {} is not between 0 and 1",
                    rules.max_null_fraction
                )));
            }
            let ranged = rules.min.is_some() || rules.max.is_some();
            let numeric = matches!(
                rules.kind,
                None | Some(ColumnType::Float | ColumnType::Int | ColumnType::Numeric)
            );
            if ranged && !numeric {
                return Err(invalid("min/max apply to numeric columns only".to_string()));
            }
        }
        Ok(schema)
    }

    /// Allowed labels as text, if declared.
    pub fn allowed_labels(&self) -> Option<Vec<String>> {
        self.labels
            .as_ref()
            .map(|l| l.allowed.iter().map(LabelValue::as_label).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Schema, SchemaError> {
        Schema::parse(text, Path::new("s.toml"))
    }

    #[test]
    fn parses_every_field() {
        let s = parse(
            r#"
            [labels]
            allowed = [0, 1, "other", true]
            [columns.age]
            type = "int"
            min = 0
            max = 130
            max_null_fraction = 0.5
            [columns.note]
            type = "string"
            required = false
            "#,
        )
        .unwrap();
        assert_eq!(s.allowed_labels().unwrap(), ["0", "1", "other", "true"]);
        let age = &s.columns["age"];
        assert_eq!(age.kind, Some(ColumnType::Int));
        assert_eq!((age.min, age.max), (Some(0.0), Some(130.0)));
        assert!(age.required);
        assert!(!s.columns["note"].required);
    }

    #[test]
    fn rejects_typos_and_inconsistent_rules() {
        let typo = parse("[columns.a]\nmaxx = 3").unwrap_err();
        assert!(matches!(typo, SchemaError::Parse { .. }));
        let swapped = parse("[columns.a]\nmin = 3\nmax = 1").unwrap_err();
        assert!(swapped
            .to_string()
            .contains("column `a`: min 3 is larger than max 1"));
        let ranged_text = parse("[columns.a]\ntype = \"string\"\nmin = 1").unwrap_err();
        assert!(ranged_text.to_string().contains("numeric columns only"));
        let fraction = parse("[columns.a]\nmax_null_fraction = 2.0").unwrap_err();
        assert!(fraction.to_string().contains("not between 0 and 1"));
    }
}
