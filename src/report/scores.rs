//! `scores.parquet`: one row per sample with an explicit Arrow schema and key-value metadata,
//! readable by any Arrow reader. Later detectors add their score columns here.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, ListBuilder, StringArray, StringBuilder, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use super::{Report, ReportError, RowFlags};
use crate::dataset::Dataset;

/// The file's Arrow schema; documented column by column in the README.
pub fn schema() -> Schema {
    Schema::new(vec![
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
    ])
}

pub fn write(
    path: &Path,
    report: &Report,
    dataset: &Dataset,
    flags: &RowFlags,
) -> Result<(), ReportError> {
    let n = dataset.len();
    let label = |i| dataset.labels.as_ref().and_then(|l| l.name(i));
    let mut rules = ListBuilder::new(StringBuilder::new());
    for row in &flags.rules {
        for rule in row {
            rules.values().append_value(rule.name());
        }
        rules.append(true);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from_iter_values(0..n as u64)),
        Arc::new(StringArray::from_iter_values(
            (0..n).map(|i| dataset.ids.get(i)),
        )),
        Arc::new(StringArray::from_iter((0..n).map(label))),
        Arc::new(BooleanArray::from(flags.error.clone())),
        Arc::new(BooleanArray::from(flags.warning.clone())),
        Arc::new(rules.finish()),
    ];
    let parquet_err = |source| ReportError::Parquet {
        path: path.to_owned(),
        source,
    };
    let batch =
        RecordBatch::try_new(Arc::new(schema()), columns).map_err(|e| parquet_err(e.into()))?;
    let metadata = vec![
        KeyValue::new("poisongate.version".into(), report.tool.version.to_string()),
        KeyValue::new(
            "poisongate.schema_version".into(),
            report.schema_version.to_string(),
        ),
        KeyValue::new("poisongate.input".into(), report.input.path.clone()),
        KeyValue::new("poisongate.strict".into(), report.gate.strict.to_string()),
    ];
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
