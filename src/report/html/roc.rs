//! The ROC curve of every method of a bench run, on one plot: the curves are
//! [`roc_curve`] and the AUROC in the legend is [`auroc`], the number the bench table shows.

use plotters::prelude::*;

use super::colour;
use super::PlotError;
use crate::detect::metrics::{auroc, roc_curve};
use crate::pipeline::Analysis;

const SIZE: (u32, u32) = (640, 480);
/// Curve points closer than this to the last kept one, in both rates, are left out: the
/// drawn curve is then within this distance of the exact one (a pixel is 0.002 here).
pub(super) const STEP: f64 = 0.002;

/// The `<section id="roc">` of a bench page.
pub(super) fn section(analysis: &Analysis, truth: &[bool]) -> Result<String, PlotError> {
    let mut curves = Vec::new();
    let mut add = |name: String, scores: &[f32]| {
        if let (Some(curve), Some(area)) = (roc_curve(scores, truth), auroc(scores, truth)) {
            curves.push((format!("{name} (AUROC {area:.3})"), thin(&curve, STEP)));
        }
    };
    for run in &analysis.runs {
        let d = &run.detection;
        add(format!("{}/{}", d.detector, d.view.name()), &d.scores);
    }
    add("fused".into(), &analysis.verdict.scores);
    let mut out = String::from("<section id=\"roc\">\n<h2>ROC curves</h2>\n");
    if curves.is_empty() {
        out.push_str(
            "<p>No ROC curve: a curve needs both planted and clean samples (the clean twin \
             has no planted one).</p>\n</section>\n",
        );
        return Ok(out);
    }
    let svg = super::svg(SIZE, |root| draw(root, &curves))?;
    out.push_str(&format!(
        "<figure class=\"roc\">{svg}<figcaption>True positive rate against false positive \
         rate as each method's threshold falls, over all samples (the scores of spectral and \
         clustering are per class, so their curves pool scores that are not comparable across \
         classes). Points closer than {STEP} in both rates to the previous one are left \
         out.</figcaption></figure>\n</section>\n"
    ));
    Ok(out)
}

/// `curve` without the points closer than `step` (in both rates) to the last kept one; the
/// first and last points are always kept.
pub(super) fn thin(curve: &[(f64, f64)], step: f64) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (i, &p) in curve.iter().enumerate() {
        let far = out
            .last()
            .is_none_or(|l| (p.0 - l.0).abs() >= step || (p.1 - l.1).abs() >= step);
        if far || i + 1 == curve.len() {
            out.push(p);
        }
    }
    out
}

fn draw(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    curves: &[(String, Vec<(f64, f64)>)],
) -> Result<(), PlotError> {
    let mut chart = ChartBuilder::on(root)
        .caption("ROC per method", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(44)
        .build_cartesian_2d(0.0..1.0, 0.0..1.0)?;
    chart
        .configure_mesh()
        .max_light_lines(0)
        .x_desc("false positive rate")
        .y_desc("true positive rate")
        .x_label_formatter(&super::tick)
        .y_label_formatter(&super::tick)
        .label_style(("sans-serif", 14))
        .draw()?;
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(0.0, 0.0), (1.0, 1.0)],
        BLACK.mix(0.3).stroke_width(1),
    )))?;
    for (i, (name, points)) in curves.iter().enumerate() {
        let style = colour::SERIES[i % colour::SERIES.len()].stroke_width(2);
        chart
            .draw_series(std::iter::once(PathElement::new(points.clone(), style)))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 14))
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_the_ends_and_drops_only_near_points() {
        let curve: Vec<(f64, f64)> = (0..=1000).map(|i| (i as f64 / 1000.0, 1.0)).collect();
        let kept = thin(&curve, 0.01);
        assert_eq!(kept.first(), Some(&(0.0, 1.0)));
        assert_eq!(kept.last(), Some(&(1.0, 1.0)));
        assert!(kept.len() <= 102, "{}", kept.len());
        // A kept point is the first at least one step from the previous: at most one
        // spacing (0.001) further.
        assert!(kept.windows(2).all(|w| w[1].0 - w[0].0 < 0.0111));
        let steps = [(0.0, 0.0), (0.0, 0.5), (0.5, 0.5), (1.0, 1.0)];
        assert_eq!(thin(&steps, 0.01), steps);
    }
}
