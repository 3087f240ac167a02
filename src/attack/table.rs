//! Table triggers: BadNets as a few seeded columns set to their maximum, and a blend with one
//! seeded row. Column ranges come from the usable rows, so a trigger stays within the values
//! the data already takes.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

use crate::dataset::Table;

/// Per-column (min, max) over the usable rows.
fn ranges(t: &Table, usable: &[u32]) -> Vec<(f32, f32)> {
    let mut r = vec![(f32::INFINITY, f32::NEG_INFINITY); t.dim()];
    for &i in usable {
        for (m, &v) in r.iter_mut().zip(t.row(i as usize)) {
            *m = (m.0.min(v), m.1.max(v));
        }
    }
    r
}

/// Sets `columns` seeded columns (at least 1, at most all) of each row in `rows` to the
/// column's maximum.
pub(super) fn patch(t: &mut Table, usable: &[u32], rows: &[u32], columns: usize, rng: &mut StdRng) {
    let d = t.dim();
    let range = ranges(t, usable);
    let mut cols: Vec<usize> = (0..d).collect();
    cols.shuffle(rng);
    cols.truncate(columns.clamp(1, d));
    for &r in rows {
        for &j in &cols {
            t.values[r as usize * d + j] = range[j].1;
        }
    }
}

/// Mixes one seeded row `p`, drawn within the column ranges, into each row of `rows`:
/// `(1 - alpha) x + alpha p`.
pub(super) fn blend(t: &mut Table, usable: &[u32], rows: &[u32], alpha: f64, rng: &mut StdRng) {
    let d = t.dim();
    let pattern: Vec<f64> = ranges(t, usable)
        .iter()
        .map(|&(lo, hi)| {
            if hi > lo {
                rng.random_range(lo as f64..=hi as f64)
            } else {
                lo as f64
            }
        })
        .collect();
    for &r in rows {
        for (v, &p) in t.values[r as usize * d..(r as usize + 1) * d]
            .iter_mut()
            .zip(&pattern)
        {
            *v = ((1.0 - alpha) * *v as f64 + alpha * p) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn table() -> Table {
        Table {
            columns: vec!["a".into(), "b".into()],
            values: vec![0.0, 0.0, 10.0, 100.0, 0.0, 0.0],
        }
    }

    #[test]
    fn blend_mixes_one_pattern_into_tables() {
        let mut t = table();
        let mut rng = StdRng::seed_from_u64(1);
        blend(&mut t, &[0, 1, 2], &[0, 2], 0.5, &mut rng);
        assert_eq!(t.values[0], t.values[4]);
        assert!(t.values[0] > 0.0 && t.values[0] <= 5.0);
        assert_eq!(&t.values[2..4], &[10.0, 100.0]);
    }

    #[test]
    fn the_table_patch_sets_seeded_columns_to_their_maximum() {
        let mut t = table();
        patch(
            &mut t,
            &[0, 1, 2],
            &[0, 2],
            5,
            &mut StdRng::seed_from_u64(0),
        );
        assert_eq!(t.values, [10.0, 100.0, 10.0, 100.0, 10.0, 100.0]);
        let mut t = table();
        patch(&mut t, &[0, 1, 2], &[2], 1, &mut StdRng::seed_from_u64(0));
        let set = [t.values[4], t.values[5]];
        assert!(set == [10.0, 0.0] || set == [0.0, 100.0], "{set:?}");
        assert_eq!(&t.values[..4], [0.0, 0.0, 10.0, 100.0]);
    }
}
