//! `scores.parquet`: one row per sample with an explicit Arrow schema and key-value metadata,
//! readable by any Arrow reader. Validation columns always; with detection, whether the row
//! took part, each detector's score and per-class robust z-score, the fused score, the flag
//! and the reasons. Rows left out of detection hold nulls there.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float32Array, ListBuilder, StringArray, StringBuilder, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use super::{detection, Report, ReportError, RowFlags};
use crate::dataset::Dataset;
use crate::detect::robust::robust_z;
use crate::pipeline::Analysis;

/// The validation columns' Arrow fields; detection adds its own after them (README).
pub fn validation_fields() -> Vec<Field> {
    vec![
        Field::new("row", DataType::UInt64, false),
        Field::new("id", DataType::Utf8, false),
        Field::new("label", DataType::Utf8, true),
        Field::new("validation_error", DataType::Boolean, false),
        Field::new("validation_warning", DataType::Boolean, false),
        Field::new(
            "validation_rules",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            false,
        ),
    ]
}

/// Detection columns: `used`, `<detector>_<view>` and `<detector>_<view>_z` per run,
/// `fused_score`, `flagged` (suspected poisoning), `label_issue`, `reasons`.
fn detection_columns(analysis: &Analysis, dataset: &Dataset) -> (Vec<Field>, Vec<ArrayRef>) {
    let n = dataset.len();
    let subset = &analysis.subset;
    let mut position = vec![None; n];
    for (p, &r) in subset.rows.iter().enumerate() {
        position[r as usize] = Some(p);
    }
    let per_row = |values: &[f32]| -> ArrayRef {
        Arc::new(Float32Array::from_iter(
            position.iter().map(|p| p.map(|p| values[p])),
        ))
    };
    let mut fields = vec![Field::new("used", DataType::Boolean, false)];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(BooleanArray::from_iter(
        position.iter().map(|p| Some(p.is_some())),
    ))];
    for run in &analysis.runs {
        let d = &run.detection;
        let name = format!("{}_{}", d.detector, d.view.name());
        fields.push(Field::new(&name, DataType::Float32, true));
        columns.push(per_row(&d.scores));
        fields.push(Field::new(format!("{name}_z"), DataType::Float32, true));
        columns.push(per_row(&robust_z(&d.scores, subset)));
    }
    let v = &analysis.verdict;
    let classes: Vec<String> = dataset
        .labels
        .as_ref()
        .map_or_else(Vec::new, |l| l.classes.clone());
    fields.push(Field::new("fused_score", DataType::Float32, true));
    columns.push(per_row(&v.scores));
    fields.push(Field::new("flagged", DataType::Boolean, false));
    columns.push(Arc::new(BooleanArray::from_iter(
        position.iter().map(|p| Some(p.is_some_and(|p| v.flags[p]))),
    )));
    fields.push(Field::new("label_issue", DataType::Boolean, false));
    columns.push(Arc::new(BooleanArray::from_iter(
        position
            .iter()
            .map(|p| Some(p.is_some_and(|p| v.label_issues[p]))),
    )));
    fields.push(Field::new("reasons", DataType::Utf8, true));
    columns.push(Arc::new(StringArray::from_iter(position.iter().map(|p| {
        p.filter(|&p| v.flags[p] || v.label_issues[p]).map(|p| {
            v.reasons[p]
                .iter()
                .map(|r| detection::describe(r, &classes))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }))));
    (fields, columns)
}

/// The per-row scores as one record batch (the columns of `scores.parquet`).
pub fn batch(
    dataset: &Dataset,
    flags: &RowFlags,
    outcome: &detection::Outcome,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    Ok(columns(dataset, flags, outcome)?.0)
}

/// The batch, and the detectors' descriptions for the file's metadata.
fn columns(
    dataset: &Dataset,
    flags: &RowFlags,
    outcome: &detection::Outcome,
) -> Result<(RecordBatch, Vec<String>), arrow::error::ArrowError> {
    let n = dataset.len();
    let label = |i| dataset.labels.as_ref().and_then(|l| l.name(i));
    let mut rules = ListBuilder::new(StringBuilder::new());
    for row in &flags.rules {
        for rule in row {
            rules.values().append_value(rule.name());
        }
        rules.append(true);
    }
    let mut fields = validation_fields();
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from_iter_values(0..n as u64)),
        Arc::new(StringArray::from_iter_values(
            (0..n).map(|i| dataset.ids.get(i)),
        )),
        Arc::new(StringArray::from_iter((0..n).map(label))),
        Arc::new(BooleanArray::from(flags.error.clone())),
        Arc::new(BooleanArray::from(flags.warning.clone())),
        Arc::new(rules.finish()),
    ];
    let mut detectors = Vec::new();
    if let detection::Outcome::Ran(analysis) = outcome {
        let (f, c) = detection_columns(analysis, dataset);
        fields.extend(f);
        columns.extend(c);
        detectors = analysis
            .runs
            .iter()
            .map(|r| {
                let d = &r.detection;
                let view = d.view.name();
                let params: Vec<String> = d
                    .parameters
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                format!("{}_{view}({})", d.detector, params.join(","))
            })
            .collect();
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    Ok((batch, detectors))
}

pub fn write(
    path: &Path,
    report: &Report,
    dataset: &Dataset,
    flags: &RowFlags,
    outcome: &detection::Outcome,
) -> Result<(), ReportError> {
    let parquet_err = |source| ReportError::Parquet {
        path: path.to_owned(),
        source,
    };
    let (batch, detectors) = columns(dataset, flags, outcome).map_err(|e| parquet_err(e.into()))?;
    let mut metadata = vec![
        KeyValue::new("poisongate.version".into(), report.tool.version.to_string()),
        KeyValue::new(
            "poisongate.schema_version".into(),
            report.schema_version.to_string(),
        ),
        KeyValue::new("poisongate.input".into(), report.input.path.clone()),
        KeyValue::new("poisongate.strict".into(), report.gate.strict.to_string()),
    ];
    if !detectors.is_empty() {
        metadata.push(KeyValue::new(
            "poisongate.detectors".into(),
            detectors.join(";"),
        ));
    }
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_key_value_metadata(Some(metadata))
        .build();
    let mut failure = None;
    super::write_atomic(path, |file| {
        let result = ArrowWriter::try_new(file, batch.schema(), Some(props))
            .and_then(|mut w| w.write(&batch).and_then(|()| w.close().map(drop)));
        result.map_err(|e| {
            failure = Some(e);
            std::io::Error::other("parquet writer failed")
        })
    })
    .map_err(|source| match failure.take() {
        Some(e) => parquet_err(e),
        None => ReportError::Io {
            path: path.to_owned(),
            source,
        },
    })
}
