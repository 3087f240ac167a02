//! Tables handed over in memory through the Arrow C stream interface (the Python package's
//! pandas, polars, PyArrow and Hugging Face tables): read into a polars frame without copying
//! the buffers.

pub use polars::prelude::DataFrame;
use polars::prelude::PolarsError;
use polars_arrow::array::StructArray;
use polars_arrow::ffi::{ArrowArrayStream, ArrowArrayStreamReader};

use super::SourceError;

/// The error of an unreadable stream, named after what was handed over.
fn stream_error(name: &str, source: PolarsError) -> SourceError {
    SourceError::Polars {
        path: name.into(),
        format: "Arrow",
        source,
    }
}

/// Reads every batch of an Arrow C stream into one frame. The stream is moved out of
/// `stream` (which is left released, as the C stream interface asks of a consumer). Each
/// batch must be a struct array (a record batch); `name` names the data in errors.
///
/// # Safety
/// `stream` must point to a valid `ArrowArrayStream` (for example the pointer inside a
/// PyCapsule named `arrow_array_stream`) that nothing else reads concurrently.
pub unsafe fn read(stream: *mut ArrowArrayStream, name: &str) -> Result<DataFrame, SourceError> {
    // SAFETY: the caller promises a valid stream; replacing it with an empty one moves it out.
    let owned = Box::new(unsafe { std::ptr::replace(stream, ArrowArrayStream::empty()) });
    // SAFETY: as above, the stream follows the C stream interface.
    let mut reader =
        unsafe { ArrowArrayStreamReader::try_new(owned) }.map_err(|e| stream_error(name, e))?;
    let mut frame: Option<DataFrame> = None;
    // SAFETY: the stream's arrays follow the C data interface (the caller's promise).
    while let Some(array) = unsafe { reader.next() } {
        let array = array.map_err(|e| stream_error(name, e))?;
        let Some(batch) = array.as_any().downcast_ref::<StructArray>() else {
            return Err(stream_error(
                name,
                PolarsError::ComputeError(
                    format!(
                        "the stream holds {:?} arrays; expected record batches (a table)",
                        array.dtype()
                    )
                    .into(),
                ),
            ));
        };
        let batch = DataFrame::try_from(batch.clone()).map_err(|e| stream_error(name, e))?;
        match frame.as_mut() {
            None => frame = Some(batch),
            Some(f) => {
                f.vstack_mut_owned(batch)
                    .map_err(|e| stream_error(name, e))?;
            }
        }
    }
    match frame {
        Some(f) => Ok(f),
        None => Err(SourceError::NoRows(name.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::*;
    use polars_arrow::ffi::export_iterator;

    /// A frame exported as a C stream of two batches and read back.
    #[test]
    fn a_stream_of_batches_reads_back_into_one_frame() {
        let a = df!("x" => [1.0f64, 2.0], "label" => ["a", "b"]).unwrap();
        let b = df!("x" => [3.0f64], "label" => ["a"]).unwrap();
        let field = polars_arrow::datatypes::Field::new(
            "".into(),
            ArrowDataType::Struct(
                a.schema()
                    .iter_fields()
                    .map(|f| f.to_arrow(CompatLevel::newest()))
                    .collect(),
            ),
            false,
        );
        let batches: Vec<PolarsResult<Box<dyn polars_arrow::array::Array>>> = [a.clone(), b]
            .into_iter()
            .map(|df| {
                let mut df = df;
                df.rechunk_mut();
                Ok(Box::new(
                    df.into_struct("".into())
                        .rechunk()
                        .downcast_iter()
                        .next()
                        .unwrap()
                        .clone(),
                ) as Box<dyn polars_arrow::array::Array>)
            })
            .collect();
        let mut stream = export_iterator(Box::new(batches.into_iter()), field);
        let frame = unsafe { read(&mut stream, "<test>") }.unwrap();
        assert_eq!(frame.height(), 3);
        assert_eq!(
            frame
                .column("x")
                .unwrap()
                .f64()
                .unwrap()
                .into_no_null_iter()
                .collect::<Vec<_>>(),
            [1.0, 2.0, 3.0]
        );
        // The stream was moved out: reading it again is an error, not a double free.
        let again = unsafe { read(&mut stream, "<test>") }.unwrap_err();
        let cause = std::error::Error::source(&again).unwrap().to_string();
        assert!(again.to_string().contains("<test>"), "{again}");
        assert!(cause.contains("released"), "{cause}");
    }
}
