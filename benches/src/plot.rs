//! Recall-vs-QPS curves as SVG, the standard ANN trade-off chart.

use std::path::Path;

use anyhow::{bail, Context};
use plotters::prelude::*;

/// One labelled curve: `(recall, qps, ef)` points in measurement order.
#[derive(Debug, Clone)]
pub struct Curve {
    /// Legend label, e.g. the engine name.
    pub label: String,
    /// `(recall, qps, ef)` triples; `ef` is shown next to the marker when known.
    pub points: Vec<(f64, f64, Option<usize>)>,
}

/// Colour-blind-friendly, well separated colours (matplotlib's tab10).
const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Draws `curves` into an SVG at `path`: recall on x (linear), QPS on y
/// (log, because ef sweeps span orders of magnitude of throughput).
///
/// `annotate_ef` writes `ef=…` next to each marker; useful for one or two
/// curves, clutter for more.
pub fn plot_curves(
    path: &Path,
    title: &str,
    x_label: &str,
    curves: &[Curve],
    annotate_ef: bool,
) -> anyhow::Result<()> {
    let all = || curves.iter().flat_map(|c| c.points.iter());
    if all().next().is_none() {
        bail!("nothing to plot: no curve has any points");
    }
    if let Some(bad) = all().find(|p| !(p.1 > 0.0 && p.1.is_finite() && p.0.is_finite())) {
        bail!(
            "cannot plot point recall={} qps={}: QPS must be positive",
            bad.0,
            bad.1
        );
    }
    let min_recall = all().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let (min_qps, max_qps) = all().fold((f64::INFINITY, 0.0f64), |(lo, hi), p| {
        (lo.min(p.1), hi.max(p.1))
    });
    // Snap the left edge down to a multiple of 0.05 so tick labels are round;
    // the small right margin keeps recall = 1.0 markers off the frame.
    let x_lo = (((min_recall - 0.02) * 20.0).floor() / 20.0).clamp(0.0, 0.95);
    let x_range = x_lo..1.005;
    let (y_lo, y_hi) = (min_qps / 1.5, max_qps * 1.5);
    let (major, minor) = log_ticks(y_lo, y_hi);

    let root = SVGBackend::new(path, (960, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        // Extra room on the right for ef labels of points at recall 1.0.
        .margin_right(56)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(
            x_range,
            // plotters' own log ticks are powers of ten only, which leaves a
            // typical one-decade QPS range with a single label.
            (y_lo..y_hi)
                .log_scale()
                .with_key_points(major)
                .with_light_points(minor),
        )?;
    chart
        .configure_mesh()
        .x_labels(12)
        .x_desc(x_label)
        .y_desc("queries/s, 1 thread (log scale)")
        .x_label_formatter(&|x| format!("{x:.2}"))
        .y_label_formatter(&|y| format_qps(*y))
        .draw()?;

    for (i, curve) in curves.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let line: Vec<(f64, f64)> = curve.points.iter().map(|p| (p.0, p.1)).collect();
        chart
            .draw_series(LineSeries::new(line, color.stroke_width(2)))?
            .label(curve.label.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(2))
            });
        chart.draw_series(curve.points.iter().map(|&(recall, qps, ef)| {
            let text = match (annotate_ef, ef) {
                (true, Some(ef)) => format!("ef={ef}"),
                _ => String::new(),
            };
            EmptyElement::at((recall, qps))
                + Circle::new((0, 0), 4, color.filled())
                + Text::new(text, (6, -14), ("sans-serif", 12).into_font())
        }))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Tick values for a log axis over `[lo, hi]`: labelled ticks at 1, 2, 5
/// times powers of ten (every 1..9 multiple when that gives fewer than three
/// labels, only powers of ten when it gives too many), and grid lines at every
/// 1..9 multiple.
fn log_ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    let mut major = Vec::new();
    let mut minor = Vec::new();
    for exp in (lo.log10().floor() as i32)..=(hi.log10().ceil() as i32) {
        let power = 10f64.powi(exp);
        for mult in 1..=9 {
            let value = f64::from(mult) * power;
            if value < lo || value > hi {
                continue;
            }
            minor.push(value);
            if matches!(mult, 1 | 2 | 5) {
                major.push(value);
            }
        }
    }
    if major.len() < 3 {
        major.clone_from(&minor);
    } else if major.len() > 12 {
        major.retain(|v| (v.log10() - v.log10().round()).abs() < 1e-9);
    }
    (major, minor)
}

/// Compact axis labels: 950, 2k, 12k, 1.5M.
fn format_qps(qps: f64) -> String {
    let (value, suffix) = if qps >= 1e6 {
        (qps / 1e6, "M")
    } else if qps >= 1e3 {
        (qps / 1e3, "k")
    } else {
        (qps, "")
    };
    let text = if value >= 10.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    };
    format!("{}{suffix}", text.strip_suffix(".0").unwrap_or(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_svg_with_legend() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.svg");
        let curves = vec![
            Curve {
                label: "kyrodb".into(),
                points: vec![(0.8, 20_000.0, Some(10)), (0.99, 3_000.0, Some(80))],
            },
            Curve {
                label: "hnswlib".into(),
                points: vec![(0.82, 15_000.0, Some(10)), (0.995, 2_000.0, Some(80))],
            },
        ];
        plot_curves(&path, "test", "recall@10", &curves, true).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("kyrodb") && svg.contains("hnswlib") && svg.contains("ef=80"));
    }

    #[test]
    fn rejects_empty_and_non_positive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.svg");
        assert!(plot_curves(&path, "t", "x", &[], false).is_err());
        let zero = Curve {
            label: "x".into(),
            points: vec![(0.5, 0.0, None)],
        };
        assert!(plot_curves(&path, "t", "x", &[zero], false).is_err());
    }

    #[test]
    fn log_ticks_label_one_decade_densely() {
        let (major, minor) = log_ticks(15_000.0, 160_000.0);
        assert_eq!(major, vec![20_000.0, 50_000.0, 100_000.0]);
        assert_eq!(minor.len(), 9);
        // A narrow range falls back to every multiple.
        let (major, _) = log_ticks(25_000.0, 70_000.0);
        assert_eq!(
            major,
            vec![30_000.0, 40_000.0, 50_000.0, 60_000.0, 70_000.0]
        );
    }

    #[test]
    fn qps_labels_are_compact() {
        assert_eq!(format_qps(950.0), "950");
        assert_eq!(format_qps(2000.0), "2k");
        assert_eq!(format_qps(1500.0), "1.5k");
        assert_eq!(format_qps(25_000.0), "25k");
        assert_eq!(format_qps(2_500_000.0), "2.5M");
    }
}
