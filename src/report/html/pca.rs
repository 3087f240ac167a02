//! Per-class 2-D PCA projections, of the view label consistency was judged in (raw by
//! default, minilm for text; the first computed view when no k-NN ran). That is the view the
//! verdict's neighbour rule and the shifted-copy test read, so the picture shows the geometry
//! the verdict judged.
//!
//! Each class is projected on its own first two principal components, fitted on the points
//! drawn. A class of more than [`POINTS_PER_CLASS`] samples is drawn as a seeded sample of
//! that many (seed [`SEED`] plus the class index), so a page for a large dataset stays small;
//! the caption says when. The sample is stratified by the verdict: the flagged samples, which
//! the page is about, are all drawn unless they alone would take more than half the points,
//! and the unflagged ones fill the rest, each group a uniform sample of itself.

use nalgebra::{DMatrix, DVector};
use plotters::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::colour;
use super::{escape, Marks, PlotError};
use crate::detect::linalg::{centred, eigen_desc};
use crate::detect::Points;
use crate::pipeline::Analysis;

/// Most points drawn in one class's projection.
pub const POINTS_PER_CLASS: usize = 500;
/// Seed of the sample drawn from a larger class (plus the class index).
pub const SEED: u64 = 0;
const SIZE: (u32, u32) = (420, 340);

/// The view that is projected, on the host.
pub(super) struct View<'a> {
    points: Points<'a>,
}

impl<'a> View<'a> {
    /// None when no view was computed.
    pub fn new(analysis: &'a Analysis) -> Result<Option<Self>, PlotError> {
        let wanted = analysis
            .judged_view
            .or_else(|| analysis.views.first().map(|v| v.view));
        // A streaming scan holds no matrix in memory: no projection.
        let Some(embedding) = analysis
            .views
            .iter()
            .find(|v| Some(v.view) == wanted)
            .and_then(|v| v.embedding.as_ref())
        else {
            return Ok(None);
        };
        Ok(Some(View {
            points: Points::new(embedding, &analysis.subset)?,
        }))
    }

    pub fn name(&self) -> &'static str {
        self.points.view.name()
    }

    /// The projection of one class (subset rows `rows`), as a `<figure>`.
    pub fn figure(
        &self,
        name: &str,
        class: u32,
        rows: &[u32],
        marks: &Marks<'_>,
    ) -> Result<String, PlotError> {
        let flagged = |r: &&u32| marks.flagged[**r as usize];
        let drawn = sample(rows, class, marks.flagged);
        let coords = project(&self.points, &drawn);
        let title: String = format!("class {name}").chars().take(48).collect();
        let svg = super::svg(SIZE, |root| draw(root, &title, &coords, &drawn, marks))?;
        let sampled = if drawn.len() < rows.len() {
            let f = drawn.iter().filter(flagged).count();
            let all_f = rows.iter().filter(flagged).count();
            format!(
                " The class has {} samples: a seeded sample is drawn, {f} of its {all_f} \
                 flagged and {} of its {} unflagged samples.",
                rows.len(),
                drawn.len() - f,
                rows.len() - all_f
            )
        } else {
            String::new()
        };
        Ok(format!(
            "<figure class=\"pca\">{svg}<figcaption>{} view, first two principal components \
             of the class, fitted on the {} points drawn.{sampled}</figcaption></figure>\n",
            escape(self.name()),
            drawn.len()
        ))
    }
}

/// All of `rows`, or a seeded sample of [`POINTS_PER_CLASS`] of them (in order): all the
/// flagged ones if they take at most half of it, else half of it from them, and the
/// unflagged ones in the rest.
pub(super) fn sample(rows: &[u32], class: u32, flagged: &[bool]) -> Vec<u32> {
    if rows.len() <= POINTS_PER_CLASS {
        return rows.to_vec();
    }
    let (hot, cold): (Vec<u32>, Vec<u32>) = rows.iter().partition(|&&r| flagged[r as usize]);
    let take_hot = hot
        .len()
        .min((POINTS_PER_CLASS / 2).max(POINTS_PER_CLASS.saturating_sub(cold.len())));
    let take_cold = cold.len().min(POINTS_PER_CLASS - take_hot);
    let mut rng = StdRng::seed_from_u64(SEED.wrapping_add(u64::from(class)));
    let mut picked: Vec<u32> = [(&hot, take_hot), (&cold, take_cold)]
        .into_iter()
        .flat_map(|(group, take)| {
            rand::seq::index::sample(&mut rng, group.len(), take)
                .into_iter()
                .map(|i| group[i])
                .collect::<Vec<_>>()
        })
        .collect();
    picked.sort_unstable();
    picked
}

/// The first two principal-component coordinates of `rows` (a second coordinate of 0 when
/// the view has one dimension). Each axis's sign is set so that its largest coordinate is
/// positive, so the picture does not flip between runs.
pub(super) fn project(points: &Points<'_>, rows: &[u32]) -> Vec<[f64; 2]> {
    let d = points.dim;
    let m = rows.len().max(1) as f64;
    let mut mean = DVector::<f64>::zeros(d);
    for &r in rows {
        for (s, &v) in mean.iter_mut().zip(points.row(r as usize)) {
            *s += f64::from(v);
        }
    }
    mean /= m;
    let x = centred(points, rows, &mean);
    // The smaller of the two eigenproblems: d x d for a narrow view, m x m for a wide one.
    let coords = if d <= rows.len() {
        by_covariance(&x)
    } else {
        by_gram(&x)
    };
    orient(coords)
}

/// `x V`, V the leading eigenvectors of `x' x`.
pub(super) fn by_covariance(x: &DMatrix<f64>) -> DMatrix<f64> {
    let (_, vectors) = eigen_desc(x.transpose() * x);
    let k = vectors.ncols().min(2);
    x * vectors.columns(0, k)
}

/// The same coordinates from the Gram matrix `x x' = U L U'`: `x v_j = sqrt(l_j) u_j`.
pub(super) fn by_gram(x: &DMatrix<f64>) -> DMatrix<f64> {
    let (values, vectors) = eigen_desc(x * x.transpose());
    let k = vectors.ncols().min(2);
    DMatrix::from_fn(x.nrows(), k, |i, j| vectors[(i, j)] * values[j].sqrt())
}

fn orient(coords: DMatrix<f64>) -> Vec<[f64; 2]> {
    let sign: Vec<f64> = (0..coords.ncols())
        .map(|j| {
            let col = coords.column(j);
            let big = col
                .iter()
                .copied()
                .max_by(|a, b| a.abs().total_cmp(&b.abs()));
            if big.unwrap_or(0.0) < 0.0 {
                -1.0
            } else {
                1.0
            }
        })
        .collect();
    (0..coords.nrows())
        .map(|i| {
            let at = |j: usize| sign.get(j).map_or(0.0, |s| s * coords[(i, j)]);
            [at(0), at(1)]
        })
        .collect()
}

/// The points of one colour and shape.
struct Group {
    flagged: bool,
    poison: bool,
    label: String,
    points: Vec<(f64, f64)>,
}

/// The non-empty groups in drawing order: unflagged first, so that flagged points lie on top.
/// Without the truth every point is one of two groups.
fn groups(coords: &[[f64; 2]], rows: &[u32], marks: &Marks<'_>) -> Vec<Group> {
    let mut out = Vec::new();
    for flagged in [false, true] {
        for poison in [false, true] {
            if marks.truth.is_none() && poison {
                continue;
            }
            let points: Vec<(f64, f64)> = coords
                .iter()
                .zip(rows)
                .filter(|(_, &r)| {
                    marks.flagged[r as usize] == flagged
                        && marks.truth.is_none_or(|t| t[r as usize] == poison)
                })
                .map(|(c, _)| (c[0], c[1]))
                .collect();
            let verdict = if flagged { "flagged" } else { "not flagged" };
            let label = match marks.truth {
                Some(_) if poison => format!("poison, {verdict}"),
                Some(_) => format!("clean, {verdict}"),
                None => verdict.to_string(),
            };
            if !points.is_empty() {
                out.push(Group {
                    flagged,
                    poison,
                    label,
                    points,
                });
            }
        }
    }
    out
}

fn draw(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    coords: &[[f64; 2]],
    rows: &[u32],
    marks: &Marks<'_>,
) -> Result<(), PlotError> {
    let range = |j: usize| {
        let lo = coords.iter().map(|c| c[j]).fold(f64::INFINITY, f64::min);
        let hi = coords
            .iter()
            .map(|c| c[j])
            .fold(f64::NEG_INFINITY, f64::max);
        if !(hi - lo).is_finite() || hi - lo < 1e-12 {
            (lo.min(0.0) - 1.0)..(hi.max(0.0) + 1.0)
        } else {
            let pad = (hi - lo) * 0.05;
            (lo - pad)..(hi + pad)
        }
    };
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 17))
        .margin(6)
        .x_label_area_size(30)
        .y_label_area_size(40)
        .build_cartesian_2d(range(0), range(1))?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(5)
        .y_labels(5)
        .x_label_formatter(&super::tick)
        .y_label_formatter(&super::tick)
        .x_desc("PC 1")
        .y_desc("PC 2")
        .label_style(("sans-serif", 13))
        .draw()?;
    for group in groups(coords, rows, marks) {
        let style = if group.flagged {
            colour::FLAGGED
        } else {
            colour::PLAIN
        }
        .mix(0.75)
        .filled();
        let at = group.points;
        if group.poison {
            chart
                .draw_series(at.iter().map(|&p| TriangleMarker::new(p, 4, style)))?
                .label(group.label)
                .legend(move |p| TriangleMarker::new(p, 4, style));
        } else {
            chart
                .draw_series(at.iter().map(|&p| Circle::new(p, 2, style)))?
                .label(group.label)
                .legend(move |p| Circle::new(p, 3, style));
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 13))
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::{Subset, View as EmbedView};
    use rand::Rng;

    #[test]
    fn both_eigenproblems_give_the_same_coordinates() {
        let mut rng = StdRng::seed_from_u64(9);
        let x = DMatrix::from_fn(30, 12, |_, _| rng.random_range(-1.0..1.0));
        let mean = x.row_mean();
        let x = DMatrix::from_fn(30, 12, |i, j| x[(i, j)] - mean[j]);
        let a = orient(by_covariance(&x));
        let b = orient(by_gram(&x));
        for (p, q) in a.iter().zip(&b) {
            assert!(
                (p[0] - q[0]).abs() < 1e-9 && (p[1] - q[1]).abs() < 1e-9,
                "{p:?} {q:?}"
            );
        }
    }

    #[test]
    fn the_first_axis_follows_the_widest_spread() {
        // Pairs of points along (1, 2, 0), one pair far out, each pair split by +-0.5 along
        // (0, 0, 1): the small spread is independent of the position on the line.
        let values: Vec<f32> = (0..40)
            .flat_map(|i| {
                let t = if i / 2 == 19 { 60.0 } else { (i / 2) as f32 };
                [t, 2.0 * t, if i % 2 == 0 { 0.5 } else { -0.5 }]
            })
            .collect();
        let subset = Subset {
            rows: (0..40).collect(),
            labels: vec![0; 40],
            n_classes: 1,
            excluded: Vec::new(),
        };
        let points = Points::from_vec(values, 3, &subset, EmbedView::Raw);
        let rows: Vec<u32> = (0..40).collect();
        let coords = project(&points, &rows);
        let spread = |j: usize| coords.iter().map(|c| c[j] * c[j]).sum::<f64>();
        assert!(spread(0) > 100.0 * spread(1));
        // The far pair has the largest first coordinate, made positive: its t less the mean
        // t of 11.55, times sqrt(5).
        assert!(
            (coords[39][0] - 48.45 * 5f64.sqrt()).abs() < 1e-3,
            "{:?}",
            coords[39]
        );
        assert!((coords[0][1].abs() - 0.5).abs() < 1e-6, "{:?}", coords[0]);
        assert!((coords[0][1] + coords[1][1]).abs() < 1e-6);
    }

    #[test]
    fn large_classes_are_sampled_reproducibly_with_their_flagged_samples() {
        let rows: Vec<u32> = (0..2000).map(|i| i * 3).collect();
        // Every 100th row of the class is flagged: 20 of them, all drawn.
        let flagged: Vec<bool> = (0..6000).map(|r| r % 300 == 0).collect();
        let a = sample(&rows, 4, &flagged);
        assert_eq!(a.len(), POINTS_PER_CLASS);
        assert_eq!(a.iter().filter(|&&r| flagged[r as usize]).count(), 20);
        assert_eq!(a, sample(&rows, 4, &flagged));
        assert_ne!(a, sample(&rows, 5, &flagged));
        assert!(a.windows(2).all(|w| w[0] < w[1]) && a.iter().all(|r| rows.contains(r)));
        // When most are flagged, they take half the points and the unflagged the rest.
        let most: Vec<bool> = (0..6000).map(|r| r % 9 != 0).collect();
        let b = sample(&rows, 4, &most);
        assert_eq!(
            b.iter().filter(|&&r| most[r as usize]).count(),
            POINTS_PER_CLASS / 2
        );
        assert_eq!(b.len(), POINTS_PER_CLASS);
        assert_eq!(sample(&rows[..10], 4, &flagged), &rows[..10]);
    }
}
