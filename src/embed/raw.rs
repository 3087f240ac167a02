//! The `raw` view: numeric columns centred on their median and divided by their robust range
//! (1st to 99th percentile, over the embedded rows), or image pixels scaled to [0, 1] and
//! flattened in height x width x channel order. It is not trained on the labels, which is why
//! label consistency (k-NN) is strongest on it.
//!
//! Why a robust range rather than the standard deviation: a column that is almost constant
//! (an always-blank pixel, a rarely set flag) has a tiny standard deviation, so
//! standardising would blow its rare values up to dominate every distance. A trigger planted
//! in such columns then pulls all poisons into one clique far from their true classes, which
//! defeats label consistency (measured in the README). The 1-99 % range keeps each column's
//! weight tied to the spread of its values, as pixel scaling does for images, and is not
//! stretched by a few outliers as the full range would be.

use candle_core::{Device, Tensor};

use super::{CandleContext, EmbedError, Embedding, Subset, View};
use crate::dataset::{Payload, Table};

pub fn embed(payload: &Payload, subset: &Subset, device: &Device) -> Result<Embedding, EmbedError> {
    let (values, dim) = match payload {
        Payload::Table(t) => (scaled(t, &subset.rows), t.dim()),
        Payload::Images(img) => {
            let per = img.pixels_per_image();
            let mut values = Vec::with_capacity(subset.len() * per);
            for &r in &subset.rows {
                values.extend(img.image(r as usize).iter().map(|&p| p as f32 / 255.0));
            }
            (values, per)
        }
        Payload::Text(_) => return Err(EmbedError::Unsupported("raw")),
        Payload::Spilled(_) | Payload::SpilledImages(_) => return Err(EmbedError::OnDisk("raw")),
    };
    let matrix = Tensor::from_vec(values, (subset.len(), dim), device).context("raw embedding")?;
    Ok(Embedding {
        view: View::Raw,
        matrix,
        training: None,
    })
}

/// The chosen rows of `table`, each column centred on its median and divided by its 1-99 %
/// range (the full range if that is 0; a constant column becomes all zeros).
pub fn scaled(table: &Table, rows: &[u32]) -> Vec<f32> {
    let d = table.dim();
    let mut centre = vec![0f32; d];
    let mut scale = vec![0f32; d];
    let mut column = Vec::with_capacity(rows.len());
    for j in 0..d {
        column.clear();
        column.extend(rows.iter().map(|&r| table.row(r as usize)[j]));
        (centre[j], scale[j]) = column_scale(&mut column);
    }
    let mut out = Vec::with_capacity(rows.len() * d);
    for &r in rows {
        let row = table.row(r as usize);
        out.extend((0..d).map(|j| (row[j] - centre[j]) * scale[j]));
    }
    out
}

/// One column's centre (median) and the factor that divides by its 1-99 % range (the full
/// range if that is 0; 0 for a constant column), from its values over the embedded rows
/// (reordered in place).
pub fn column_scale(column: &mut [f32]) -> (f32, f32) {
    if column.is_empty() {
        return (0.0, 0.0);
    }
    let last = column.len() - 1;
    let mut quantile = |q: f64| {
        let at = ((q * last as f64).round() as usize).min(last);
        *column.select_nth_unstable_by(at, f32::total_cmp).1
    };
    let (lo, mid, hi) = (quantile(0.01), quantile(0.5), quantile(0.99));
    let (min, max) = (quantile(0.0), quantile(1.0));
    let range = if hi > lo { hi - lo } else { max - min };
    // Spread below float32 resolution of the values is rounding, not signal.
    let scale = if range > 1e-6 * (1.0 + mid.abs()) {
        1.0 / range
    } else {
        0.0
    };
    (mid, scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_centred_on_the_median_and_scaled_by_the_robust_range() {
        // Column a: 0..=100 (101 values) with one far outlier, which must not set the scale;
        // column b: constant.
        let mut values = Vec::new();
        for i in 0..=100 {
            values.extend([i as f32, 5.0]);
        }
        values.extend([1e6, 5.0]);
        let table = Table {
            columns: vec!["a".into(), "b".into()],
            values,
        };
        let rows: Vec<u32> = (0..102).collect();
        let out = scaled(&table, &rows);
        // Median 50.5 rounds to index 51 of 102 sorted values: 51; 1 % and 99 % land on 1
        // and 100.
        assert_eq!(out[0], (0.0 - 51.0) / 99.0);
        assert_eq!(out[2 * 51], 0.0);
        assert!(out.iter().skip(1).step_by(2).all(|&b| b == 0.0));
        // Rows left out do not shift the statistics.
        let first_ten = scaled(&table, &(0..10).collect::<Vec<_>>());
        assert_eq!(first_ten[0], (0.0 - 5.0) / 9.0);
    }

    #[test]
    fn a_mostly_constant_column_falls_back_to_its_full_range() {
        let mut values = vec![0.0f32; 200];
        values[7] = 8.0;
        let table = Table {
            columns: vec!["rare".into()],
            values,
        };
        let out = scaled(&table, &(0..200).collect::<Vec<_>>());
        assert_eq!(out[7], 1.0);
        assert_eq!(out[0], 0.0);
    }
}
