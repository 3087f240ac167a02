//! Turns a collected polars frame into a [`Dataset`]: ids and labels as text, features as one
//! contiguous row-major f32 buffer (the single crossing from polars to the tensor side), text
//! as strings, image bytes decoded by [`super::decode`].

use polars::prelude::*;

use super::decode::{decode_all, Encoded};
use super::tabular::{Frame, PayloadRole};
use super::SourceError;
use crate::dataset::{Dataset, Ids, Labels, Origin, Payload, Table, TextValue, Texts};
use crate::progress::Progress;

pub fn into_dataset(
    frame: Frame,
    image_size: Option<(u32, u32)>,
    progress: &Progress,
) -> Result<Dataset, SourceError> {
    let path = frame.input.path.clone();
    let err = |source| SourceError::Polars {
        path: path.clone(),
        format: frame.input.format.name(),
        source,
    };
    let df = &frame.df;
    let ids = match &frame.roles.id {
        Some(name) => Ids::Column {
            name: name.clone(),
            values: strings(df, name).map_err(err)?,
        },
        None => Ids::RowNumber(df.height()),
    };
    let labels = match &frame.roles.label {
        Some(name) => Some(Labels::from_names(
            name.clone(),
            strings(df, name).map_err(err)?,
        )),
        None => None,
    };
    let payload = match &frame.roles.payload {
        PayloadRole::Features(columns) => Payload::Table(table(df, columns).map_err(err)?),
        PayloadRole::Text(column) => Payload::Text(texts(df, column).map_err(err)?),
        PayloadRole::Image(column) => {
            let bytes = image_bytes(df, column).map_err(err)?;
            let items: Vec<Encoded<'_>> = bytes.iter().map(|b| Encoded::Bytes(*b)).collect();
            let images = decode_all(&items, image_size, progress).map_err(|problem| {
                SourceError::Images {
                    path: path.clone(),
                    problem,
                }
            })?;
            Payload::Images(images)
        }
    };
    let format = frame.input.format.dataset_format();
    Ok(Dataset {
        origin: Origin {
            path: frame.input.path.display().to_string(),
            format,
            files: frame.input.files.len(),
            ignored_columns: frame.roles.ignored.clone(),
        },
        ids,
        labels,
        payload,
    })
}

/// A column as optional strings (integers and booleans in their text form).
pub(crate) fn strings(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<String>>> {
    let c = df.column(name)?.cast(&DataType::String)?;
    Ok(c.str()?.iter().map(|v| v.map(str::to_owned)).collect())
}

/// Features as `n x d` row-major f32. Nulls and values that do not parse become NaN; the
/// validator has already reported each of them by row.
fn table(df: &DataFrame, columns: &[String]) -> PolarsResult<Table> {
    let (n, d) = (df.height(), columns.len());
    let mut values = vec![f32::NAN; n * d];
    for (j, name) in columns.iter().enumerate() {
        let c = df.column(name)?.cast(&DataType::Float32)?;
        for (i, v) in c.f32()?.iter().enumerate() {
            if let Some(v) = v {
                values[i * d + j] = v;
            }
        }
    }
    Ok(Table {
        columns: columns.to_vec(),
        values,
    })
}

fn texts(df: &DataFrame, name: &str) -> PolarsResult<Texts> {
    let c = df.column(name)?;
    let values = if c.dtype() == &DataType::Binary {
        c.binary()?
            .iter()
            .map(|v| match v {
                None => TextValue::Null,
                Some(b) => match std::str::from_utf8(b) {
                    Ok(s) => TextValue::Text(s.to_owned()),
                    Err(e) => TextValue::InvalidUtf8 {
                        valid_up_to: e.valid_up_to(),
                    },
                },
            })
            .collect()
    } else {
        c.str()?
            .iter()
            .map(|v| v.map_or(TextValue::Null, |s| TextValue::Text(s.to_owned())))
            .collect()
    };
    Ok(Texts {
        column: name.to_string(),
        values,
    })
}

/// Borrowed bytes of each image cell (a struct's `bytes` field was already projected out by
/// the scan).
fn image_bytes<'a>(df: &'a DataFrame, name: &str) -> PolarsResult<Vec<Option<&'a [u8]>>> {
    Ok(df.column(name)?.binary()?.iter().collect())
}
