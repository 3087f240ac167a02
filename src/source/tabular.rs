//! Tabular input through polars: CSV/TSV files, Parquet files and folders of Parquet shards.
//! Files are opened here (so errors name the path, and paths need not be UTF-8) and handed to
//! polars' lazy scans, which read only the columns the roles need.

use std::path::PathBuf;
use std::sync::Arc;

use polars::prelude::*;

use super::SourceError;
use crate::cli::config::Columns;
use crate::validate::schema::Schema as Declared;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TabularFormat {
    Csv {
        separator: u8,
    },
    Parquet,
    /// Arrow data handed over in memory (the Python package's tables): no file to open.
    Arrow,
}

impl TabularFormat {
    pub fn name(self) -> &'static str {
        match self {
            TabularFormat::Csv { separator: b'\t' } => "TSV",
            TabularFormat::Csv { .. } => "CSV",
            TabularFormat::Parquet => "Parquet",
            TabularFormat::Arrow => "Arrow",
        }
    }

    /// The format a dataset read from it reports.
    pub fn dataset_format(self) -> crate::dataset::Format {
        use crate::dataset::Format;
        match self {
            TabularFormat::Csv { .. } => Format::Csv,
            TabularFormat::Parquet => Format::Parquet,
            TabularFormat::Arrow => Format::Arrow,
        }
    }
}

/// One tabular input: a file, or the shards of a folder read as one dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct TabularInput {
    /// What the user named (file or folder).
    pub path: PathBuf,
    pub format: TabularFormat,
    pub files: Vec<PathBuf>,
}

/// Rows used to infer CSV column types before a full-file retry (see [`read`]).
pub(crate) const CSV_INFER_ROWS: usize = 10_000;

/// What each loaded column is for.
#[derive(Debug, Clone, PartialEq)]
pub struct Roles {
    pub label: Option<String>,
    pub id: Option<String>,
    pub payload: PayloadRole,
    /// Columns not used, with their types.
    pub ignored: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PayloadRole {
    /// Numeric features. String columns here are checked for non-numeric values.
    Features(Vec<String>),
    /// Encoded images: a binary column or a struct with a binary `bytes` field.
    Image(String),
    Text(String),
}

/// A collected frame holding just the role columns (plus columns a schema declares), and the
/// types of every column in the file.
pub struct Frame {
    pub input: TabularInput,
    pub df: DataFrame,
    pub roles: Roles,
    pub file_schema: SchemaRef,
}

/// Reads `input`, choosing column roles from `columns` and the file's schema. A CSV whose
/// types were inferred from the first rows and then failed to parse further down is read
/// again with types inferred from the whole file, so that a stray non-numeric value becomes
/// a finding that names its row instead of an error.
pub fn read(
    input: &TabularInput,
    columns: &Columns,
    declared: Option<&Declared>,
    payload_optional: bool,
) -> Result<Frame, SourceError> {
    if let TabularFormat::Csv { separator } = input.format {
        for path in &input.files {
            super::csv_check::check(path, separator)?;
        }
    }
    match read_with(
        input,
        columns,
        declared,
        Some(CSV_INFER_ROWS),
        payload_optional,
    ) {
        Err(SourceError::Polars { .. }) if matches!(input.format, TabularFormat::Csv { .. }) => {
            read_with(input, columns, declared, None, payload_optional)
        }
        other => other,
    }
}

fn read_with(
    input: &TabularInput,
    columns: &Columns,
    declared: Option<&Declared>,
    infer_rows: Option<usize>,
    payload_optional: bool,
) -> Result<Frame, SourceError> {
    let lf = scan(input, infer_rows)?;
    from_lazy(input, lf, columns, declared, payload_optional)
}

/// Arrow data already in memory, named `name` in errors and in the report: the same column
/// roles, projection and checks as a file.
pub fn read_frame(
    df: DataFrame,
    name: &str,
    columns: &Columns,
    declared: Option<&Declared>,
    payload_optional: bool,
) -> Result<Frame, SourceError> {
    let input = TabularInput {
        path: PathBuf::from(name),
        format: TabularFormat::Arrow,
        files: Vec::new(),
    };
    from_lazy(&input, df.lazy(), columns, declared, payload_optional)
}

/// `payload_optional`: a table with no feature column is read (its payload empty) instead of
/// refused, for runs whose every view comes from `--embeddings`.
fn from_lazy(
    input: &TabularInput,
    mut lf: LazyFrame,
    columns: &Columns,
    declared: Option<&Declared>,
    payload_optional: bool,
) -> Result<Frame, SourceError> {
    let polars_err = |path: &PathBuf| {
        let path = path.clone();
        let format = input.format.name();
        move |source| SourceError::Polars {
            path,
            format,
            source,
        }
    };
    let file_schema = super::guard::guarded(|| lf.collect_schema())
        .unwrap_or_else(|panic| {
            Err(PolarsError::ComputeError(
                format!("the decoder failed on inconsistent data: {panic}").into(),
            ))
        })
        .map_err(polars_err(&input.path))?;
    let mut roles = resolve_roles(input, &file_schema, columns)?;
    let mut wanted = role_columns(&roles);
    for name in declared.iter().flat_map(|d| d.columns.keys()) {
        if file_schema.contains(name) && !wanted.contains(name) {
            wanted.push(name.clone());
        }
    }
    let projection: Vec<Expr> = wanted
        .iter()
        .map(|c| match (&roles.payload, file_schema.get(c)) {
            (PayloadRole::Image(image), Some(DataType::Struct(_))) if image == c => col(c.as_str())
                .struct_()
                .field_by_name("bytes")
                .alias(c.as_str()),
            _ => col(c.as_str()),
        })
        .collect();
    // polars' decoders can panic on corrupt pages (a bit flipped in a Parquet footer made one
    // assert on value counts): that is an unreadable file, not a crash.
    let df = super::guard::guarded(|| lf.select(projection).collect())
        .unwrap_or_else(|panic| {
            Err(PolarsError::ComputeError(
                format!("the decoder failed on inconsistent data: {panic}").into(),
            ))
        })
        .map_err(polars_err(&input.path))?;
    if df.height() == 0 {
        return Err(SourceError::NoRows(input.path.clone()));
    }
    let df = if columns.features.is_none() {
        settle_text_columns(&mut roles, df).map_err(polars_err(&input.path))?
    } else {
        df
    };
    if !payload_optional && matches!(&roles.payload, PayloadRole::Features(f) if f.is_empty()) {
        return Err(SourceError::NoFeatures {
            path: input.path.clone(),
            available: available(&file_schema),
        });
    }
    Ok(Frame {
        input: input.clone(),
        df,
        roles,
        file_schema,
    })
}

/// Share of a string column's non-null values that must parse as numbers for it to count as
/// a numeric feature with stray bad values (reported as `non_numeric`) rather than a text
/// column that is ignored.
const NUMERIC_SHARE: f64 = 0.5;

/// With inferred features, keeps a string column only if it is mostly numbers; the others
/// move to `ignored` and leave the frame.
pub(crate) fn settle_text_columns(roles: &mut Roles, df: DataFrame) -> PolarsResult<DataFrame> {
    let PayloadRole::Features(features) = &mut roles.payload else {
        return Ok(df);
    };
    let text: Vec<String> = features
        .iter()
        .filter(|f| df.column(f).is_ok_and(|c| c.dtype().is_string()))
        .cloned()
        .collect();
    if text.is_empty() {
        return Ok(df);
    }
    let exprs: Vec<Expr> = text
        .iter()
        .flat_map(|c| {
            [
                col(c.as_str())
                    .is_not_null()
                    .sum()
                    .alias(format!("{c}\0present")),
                col(c.as_str())
                    .cast(DataType::Float64)
                    .is_not_null()
                    .sum()
                    .alias(format!("{c}\0numeric")),
            ]
        })
        .collect();
    let counts = df.clone().lazy().select(exprs).collect()?;
    let count = |name: String| -> PolarsResult<f64> {
        let c = counts.column(&name)?.cast(&DataType::Float64)?;
        Ok(c.f64()?.get(0).unwrap_or(0.0))
    };
    let mut drop = Vec::new();
    for c in text {
        let present = count(format!("{c}\0present"))?;
        let numeric = count(format!("{c}\0numeric"))?;
        if numeric == 0.0 || numeric < NUMERIC_SHARE * present {
            drop.push(c);
        }
    }
    features.retain(|f| !drop.contains(f));
    roles.ignored.extend(
        drop.iter()
            .map(|c| (c.clone(), DataType::String.to_string())),
    );
    Ok(df.drop_many(drop))
}

/// A lazy scan over all files. Parquet shards are checked one by one first, so a truncated
/// shard or one with other columns is named.
pub(crate) fn scan(
    input: &TabularInput,
    infer_rows: Option<usize>,
) -> Result<LazyFrame, SourceError> {
    let mut files = Vec::with_capacity(input.files.len());
    for path in &input.files {
        files.push(std::fs::File::open(path).map_err(|e| SourceError::io(path, e))?);
    }
    let err = |path: &PathBuf| {
        let path = path.clone();
        move |source| SourceError::Polars {
            path,
            format: input.format.name(),
            source,
        }
    };
    match input.format {
        TabularFormat::Csv { separator } => {
            LazyCsvReader::new_with_sources(ScanSources::Files(files.into()))
                .with_separator(separator)
                .with_infer_schema_length(infer_rows)
                .with_raise_if_empty(true)
                .finish()
                .map_err(err(&input.path))
        }
        TabularFormat::Arrow => Err(err(&input.path)(
            polars_err!(ComputeError: "in-memory Arrow data has no file to scan"),
        )),
        TabularFormat::Parquet => {
            let mut first: Option<SchemaRef> = None;
            for (path, file) in input.files.iter().zip(&files) {
                super::parquet_check::check(path)?;
                let one = file.try_clone().map_err(|e| SourceError::io(path, e))?;
                let schema = super::guard::guarded(|| {
                    LazyFrame::scan_parquet_sources(
                        ScanSources::Files(Arc::from([one])),
                        parquet_args(),
                    )
                    .and_then(|mut lf| lf.collect_schema())
                })
                .unwrap_or_else(|panic| {
                    Err(PolarsError::ComputeError(
                        format!("the decoder failed on inconsistent data: {panic}").into(),
                    ))
                })
                .map_err(err(path))?;
                match &first {
                    None => first = Some(schema),
                    Some(f) if f != &schema => {
                        return Err(SourceError::ShardMismatch {
                            path: path.clone(),
                            first: input.files[0].clone(),
                            difference: schema_difference(f, &schema),
                        })
                    }
                    Some(_) => {}
                }
            }
            LazyFrame::scan_parquet_sources(ScanSources::Files(files.into()), parquet_args())
                .map_err(err(&input.path))
        }
    }
}

/// Hive partitioning reads column values from folder names; poisongate reads files it opened
/// itself, and the partition layout is not part of its input model.
fn parquet_args() -> ScanArgsParquet {
    ScanArgsParquet {
        hive_options: HiveOptions::new_disabled(),
        ..Default::default()
    }
}

fn schema_difference(first: &Schema, other: &Schema) -> String {
    let show = |s: &Schema| {
        s.iter()
            .map(|(n, t)| format!("{n}: {t}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("[{}] instead of [{}]", show(other), show(first))
}

/// Encoded-image columns: binary, or a struct with a binary `bytes` field (the dataset-hub
/// layout `{bytes, path}`).
pub fn is_image_type(dtype: &DataType) -> bool {
    match dtype {
        DataType::Binary => true,
        DataType::Struct(fields) => fields
            .iter()
            .any(|f| f.name() == "bytes" && f.dtype() == &DataType::Binary),
        _ => false,
    }
}

pub(crate) fn available(schema: &Schema) -> String {
    schema
        .iter()
        .map(|(n, t)| format!("{n} ({t})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Chooses label, id and payload columns. Every named column must exist with a usable type;
/// every column left over is listed in `ignored`.
pub fn resolve_roles(
    input: &TabularInput,
    schema: &Schema,
    columns: &Columns,
) -> Result<Roles, SourceError> {
    let dtype = |name: &str| {
        schema.get(name).ok_or_else(|| SourceError::NoColumn {
            path: input.path.clone(),
            column: name.to_string(),
            available: available(schema),
        })
    };
    let wrong = |column: &str, found: &DataType, expected: &'static str| SourceError::ColumnType {
        path: input.path.clone(),
        column: column.to_string(),
        found: found.to_string(),
        expected,
    };
    let label = match &columns.label {
        Some(l) => Some(l.clone()),
        None => schema.contains("label").then(|| "label".to_string()),
    };
    if let Some(l) = &label {
        let t = dtype(l)?;
        // Dictionary-encoded labels (pandas categoricals, Arrow dictionaries) read as
        // categoricals: their values are strings.
        let categorical = matches!(t, DataType::Categorical(..) | DataType::Enum(..));
        if !(t.is_integer() || t.is_string() || t.is_bool() || categorical) {
            return Err(wrong(l, t, "integer, string or boolean labels"));
        }
    }
    if let Some(id) = &columns.id {
        let t = dtype(id)?;
        if !(t.is_integer() || t.is_string()) {
            return Err(wrong(id, t, "integer or string ids"));
        }
    }
    let taken = |n: &str| Some(n) == label.as_deref() || Some(n) == columns.id.as_deref();
    let payload = if let Some(text) = &columns.text {
        let t = dtype(text)?;
        if !(t.is_string() || t == &DataType::Binary) {
            return Err(wrong(text, t, "a string (or binary UTF-8) text column"));
        }
        PayloadRole::Text(text.clone())
    } else if let Some(image) = &columns.image {
        let t = dtype(image)?;
        if !is_image_type(t) {
            return Err(wrong(
                image,
                t,
                "binary image bytes, or a struct with a binary `bytes` field",
            ));
        }
        PayloadRole::Image(image.clone())
    } else if let Some(features) = &columns.features {
        for f in features {
            let t = dtype(f)?;
            if !(t.is_primitive_numeric() || t.is_bool() || t.is_string()) {
                return Err(wrong(f, t, "a numeric feature column"));
            }
        }
        PayloadRole::Features(features.clone())
    } else {
        let images: Vec<_> = schema
            .iter()
            .filter(|(n, t)| !taken(n) && is_image_type(t))
            .collect();
        if let [(name, _)] = images.as_slice() {
            PayloadRole::Image(name.to_string())
        } else {
            let features: Vec<String> = schema
                .iter()
                .filter(|(n, t)| !taken(n) && (t.is_primitive_numeric() || t.is_string()))
                .map(|(n, _)| n.to_string())
                .collect();
            PayloadRole::Features(features)
        }
    };
    let mut roles = Roles {
        label,
        id: columns.id.clone(),
        payload,
        ignored: Vec::new(),
    };
    // A set: a table may have 100k columns, and a list lookup per column was quadratic.
    let used: std::collections::HashSet<String> = role_columns(&roles).into_iter().collect();
    roles.ignored = schema
        .iter()
        .filter(|(n, _)| !used.contains(n.as_str()))
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    Ok(roles)
}

/// The columns a frame must load, in a fixed order: label, id, payload.
pub fn role_columns(roles: &Roles) -> Vec<String> {
    let mut cols: Vec<String> = roles.label.iter().chain(&roles.id).cloned().collect();
    match &roles.payload {
        PayloadRole::Features(f) => cols.extend(f.iter().cloned()),
        PayloadRole::Image(c) | PayloadRole::Text(c) => cols.push(c.clone()),
    }
    cols
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> TabularInput {
        TabularInput {
            path: "t.csv".into(),
            format: TabularFormat::Csv { separator: b',' },
            files: vec!["t.csv".into()],
        }
    }

    fn schema() -> Schema {
        Schema::from_iter([
            Field::new("id".into(), DataType::String),
            Field::new("a".into(), DataType::Float64),
            Field::new("b".into(), DataType::Int32),
            Field::new("note".into(), DataType::String),
            Field::new("flag".into(), DataType::Boolean),
            Field::new("label".into(), DataType::Int64),
        ])
    }

    #[test]
    fn default_roles_use_label_and_every_numeric_or_string_column() {
        let roles = resolve_roles(&input(), &schema(), &Columns::default()).unwrap();
        assert_eq!(roles.label.as_deref(), Some("label"));
        assert_eq!(
            roles.payload,
            PayloadRole::Features(vec!["id".into(), "a".into(), "b".into(), "note".into()])
        );
        assert_eq!(roles.ignored, [("flag".to_string(), "bool".to_string())]);
    }

    #[test]
    fn named_id_is_not_a_feature_and_missing_columns_are_named() {
        let cols = Columns {
            id: Some("id".into()),
            ..Default::default()
        };
        let roles = resolve_roles(&input(), &schema(), &cols).unwrap();
        assert_eq!(role_columns(&roles)[..2], ["label", "id"]);
        let missing = Columns {
            label: Some("y".into()),
            ..Default::default()
        };
        let err = resolve_roles(&input(), &schema(), &missing).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("t.csv: no column `y`; the columns are: id (str), a (f64)"));
    }

    #[test]
    fn a_float_label_or_binary_feature_is_a_type_error() {
        let cols = Columns {
            label: Some("a".into()),
            ..Default::default()
        };
        let err = resolve_roles(&input(), &schema(), &cols).unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.csv: column `a` has type f64; expected integer, string or boolean labels"
        );
    }

    #[test]
    fn a_single_image_column_is_found_without_being_named() {
        let image = DataType::Struct(vec![
            Field::new("bytes".into(), DataType::Binary),
            Field::new("path".into(), DataType::String),
        ]);
        let s = Schema::from_iter([
            Field::new("image".into(), image),
            Field::new("label".into(), DataType::Int64),
        ]);
        let roles = resolve_roles(&input(), &s, &Columns::default()).unwrap();
        assert_eq!(roles.payload, PayloadRole::Image("image".into()));
        assert!(roles.ignored.is_empty());
    }
}
