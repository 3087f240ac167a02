//! `scores.parquet`: one row per sample with an explicit Arrow schema and key-value metadata,
//! readable by any Arrow reader. Validation columns always; with detection, whether the row
//! took part, each detector's score and per-class robust z-score, the fused score, the flag
//! and the reasons. Rows left out of detection hold nulls there.

use std::ops::Range;
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
use crate::detect::robust::RobustScale;
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

/// Rows a record batch of [`write`]: at 20M rows one batch of every row held about 1.8 GB.
const CHUNK_ROWS: usize = 1 << 18;

/// Each row's place in the detection subset (`u32::MAX`: not used), and each detector's
/// per-class scale for its z-scores: what every chunk of rows reads.
struct Places {
    position: Vec<u32>,
    scales: Vec<RobustScale>,
}

impl Places {
    fn new(analysis: &Analysis, n: usize) -> Self {
        let mut position = vec![u32::MAX; n];
        for (p, &r) in analysis.subset.rows.iter().enumerate() {
            position[r as usize] = p as u32;
        }
        let scales = analysis
            .runs
            .iter()
            .map(|run| RobustScale::new(&run.detection.scores, &analysis.subset))
            .collect();
        Places { position, scales }
    }

    /// The subset places of rows `rows`.
    fn of(&self, rows: &Range<usize>) -> impl Iterator<Item = Option<usize>> + '_ {
        self.position[rows.clone()]
            .iter()
            .map(|&p| (p != u32::MAX).then_some(p as usize))
    }
}

/// Detection columns of rows `rows`: `used`, `<detector>_<view>` and `<detector>_<view>_z`
/// per run, `fused_score`, `flagged` (suspected poisoning), `label_issue`, `reasons`.
fn detection_columns(
    analysis: &Analysis,
    places: &Places,
    classes: &[String],
    rows: &Range<usize>,
) -> (Vec<Field>, Vec<ArrayRef>) {
    let subset = &analysis.subset;
    let per_row = |value: &dyn Fn(usize) -> f32| -> ArrayRef {
        Arc::new(Float32Array::from_iter(
            places.of(rows).map(|p| p.map(value)),
        ))
    };
    let mut fields = vec![Field::new("used", DataType::Boolean, false)];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(BooleanArray::from_iter(
        places.of(rows).map(|p| Some(p.is_some())),
    ))];
    for (run, scale) in analysis.runs.iter().zip(&places.scales) {
        let d = &run.detection;
        let name = format!("{}_{}", d.detector, d.view.name());
        fields.push(Field::new(&name, DataType::Float32, true));
        columns.push(per_row(&|p| d.scores[p]));
        fields.push(Field::new(format!("{name}_z"), DataType::Float32, true));
        columns.push(per_row(&|p| scale.z(d.scores[p], subset.labels[p])));
    }
    let v = &analysis.verdict;
    fields.push(Field::new("fused_score", DataType::Float32, true));
    columns.push(per_row(&|p| v.scores[p]));
    fields.push(Field::new("flagged", DataType::Boolean, false));
    columns.push(Arc::new(BooleanArray::from_iter(
        places.of(rows).map(|p| Some(p.is_some_and(|p| v.flags[p]))),
    )));
    fields.push(Field::new("label_issue", DataType::Boolean, false));
    columns.push(Arc::new(BooleanArray::from_iter(
        places
            .of(rows)
            .map(|p| Some(p.is_some_and(|p| v.label_issues[p]))),
    )));
    fields.push(Field::new("reasons", DataType::Utf8, true));
    columns.push(Arc::new(StringArray::from_iter(places.of(rows).map(|p| {
        p.filter(|&p| v.flags[p] || v.label_issues[p]).map(|p| {
            v.reasons[p]
                .iter()
                .map(|r| detection::describe(r, classes))
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
    Batches::new(dataset, flags, outcome).batch(0..dataset.len())
}

/// What the record batches of `scores.parquet` are built from, a range of rows at a time.
struct Batches<'a> {
    dataset: &'a Dataset,
    flags: &'a RowFlags,
    detection: Option<(&'a Analysis, Places)>,
    classes: Vec<String>,
}

impl<'a> Batches<'a> {
    fn new(dataset: &'a Dataset, flags: &'a RowFlags, outcome: &'a detection::Outcome) -> Self {
        let detection = match outcome {
            detection::Outcome::Ran(analysis) => {
                Some((analysis.as_ref(), Places::new(analysis, dataset.len())))
            }
            _ => None,
        };
        let classes = dataset
            .labels
            .as_ref()
            .map_or_else(Vec::new, |l| l.classes.clone());
        Batches {
            dataset,
            flags,
            detection,
            classes,
        }
    }

    /// The detectors' descriptions, for the file's metadata.
    fn detectors(&self) -> Vec<String> {
        let Some((analysis, _)) = &self.detection else {
            return Vec::new();
        };
        analysis
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
            .collect()
    }

    /// The columns of rows `rows`.
    fn batch(&self, rows: Range<usize>) -> Result<RecordBatch, arrow::error::ArrowError> {
        let (dataset, flags) = (self.dataset, self.flags);
        let label = |i| dataset.labels.as_ref().and_then(|l| l.name(i));
        let mut rules = ListBuilder::new(StringBuilder::new());
        for row in &flags.rules[rows.clone()] {
            for rule in row {
                rules.values().append_value(rule.name());
            }
            rules.append(true);
        }
        let mut fields = validation_fields();
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from_iter_values(
                rows.clone().map(|i| i as u64),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.clone().map(|i| dataset.ids.get(i)),
            )),
            Arc::new(StringArray::from_iter(rows.clone().map(label))),
            Arc::new(BooleanArray::from(flags.error[rows.clone()].to_vec())),
            Arc::new(BooleanArray::from(flags.warning[rows.clone()].to_vec())),
            Arc::new(rules.finish()),
        ];
        if let Some((analysis, places)) = &self.detection {
            let (f, c) = detection_columns(analysis, places, &self.classes, &rows);
            fields.extend(f);
            columns.extend(c);
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
    }
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
    let batches = Batches::new(dataset, flags, outcome);
    let detectors = batches.detectors();
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
    // The rows go in chunks of [`CHUNK_ROWS`]; the writer still cuts row groups by its own
    // size.
    let n = dataset.len();
    let first = batches
        .batch(0..n.min(CHUNK_ROWS))
        .map_err(|e| parquet_err(e.into()))?;
    let mut failure = None;
    super::write_atomic(path, |file| {
        let result = ArrowWriter::try_new(file, first.schema(), Some(props)).and_then(|mut w| {
            w.write(&first)?;
            for start in (CHUNK_ROWS..n).step_by(CHUNK_ROWS) {
                let batch = batches.batch(start..n.min(start + CHUNK_ROWS))?;
                w.write(&batch)?;
            }
            w.close().map(drop)
        });
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
