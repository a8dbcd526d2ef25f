//! The end-of-run PNG (plotters): mean reward and each reward function's mean per step, and the KL to the
//! reference per step, read back from `metrics.jsonl`. Labels need a TrueType font: a few usual system paths
//! are tried (DejaVu Sans on Debian); without one the curves are drawn without text and a warning says so.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::TrainError;

const FONTS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
];

/// Register a label font once; whether one is available.
fn font() -> bool {
    static FOUND: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FOUND.get_or_init(|| {
        FONTS.iter().any(|p| {
            std::fs::read(p).ok().is_some_and(|bytes| {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
            })
        })
    })
}

/// Series `name -> [(step, value)]` of the metrics in a `metrics.jsonl`.
pub fn read_series(path: &Path) -> Result<BTreeMap<String, Vec<(f64, f64)>>, TrainError> {
    let src = std::fs::read_to_string(path).map_err(|e| TrainError::Io { path: path.into(), source: e })?;
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for (n, line) in src.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| TrainError::Config { path: path.into(), msg: format!("line {}: {e}", n + 1) })?;
        let Some(step) = v.get("step").and_then(serde_json::Value::as_f64) else { continue };
        for (k, x) in v.as_object().into_iter().flatten() {
            if let (true, Some(x)) = (k != "step", x.as_f64()) {
                series.entry(k.clone()).or_default().push((step, x));
            }
        }
    }
    Ok(series)
}

type DrawResult<T> = Result<T, Box<dyn std::error::Error>>;

fn panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    title: &str,
    lines: &[(&str, &[(f64, f64)])],
    labels: bool,
) -> DrawResult<()> {
    let xs = lines.iter().flat_map(|(_, p)| p.iter().map(|q| q.0));
    let ys = lines.iter().flat_map(|(_, p)| p.iter().map(|q| q.1));
    let (x0, x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
    let (y0, y1) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| (a.min(y), b.max(y)));
    if !x0.is_finite() {
        return Ok(());
    }
    let pad = ((y1 - y0) * 0.05).max(1e-6);
    let mut builder = ChartBuilder::on(area);
    builder.margin(12).x_label_area_size(if labels { 30 } else { 5 }).y_label_area_size(if labels { 55 } else { 5 });
    if labels {
        builder.caption(title, ("sans-serif", 20));
    }
    let mut chart = builder.build_cartesian_2d(x0..x1.max(x0 + 1.0), (y0 - pad)..(y1 + pad))?;
    let small = (y1 - y0).abs() < 0.05;
    let fmt = move |v: &f64| if small { format!("{v:.1e}") } else { format!("{v:.2}") };
    let mut mesh = chart.configure_mesh();
    if labels {
        mesh.x_desc("step").y_label_formatter(&fmt);
    } else {
        mesh.disable_x_axis().disable_y_axis();
    }
    mesh.draw()?;
    for (i, (name, points)) in lines.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let s = chart.draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))?;
        if labels {
            s.label(*name).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        }
    }
    if labels {
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    }
    Ok(())
}

/// Trailing moving average over `window` points (per-step GRPO metrics of a few prompts are noisy).
pub fn moving_average(points: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    let w = window.max(1);
    (0..points.len())
        .map(|i| {
            let from = (i + 1).saturating_sub(w);
            let slice = &points[from..=i];
            (points[i].0, slice.iter().map(|p| p.1).sum::<f64>() / slice.len() as f64)
        })
        .collect()
}

/// Draw reward (total and per function) and KL over steps from `metrics` into the PNG `out`, each curve a
/// moving average over a twentieth of the run. Returns whether labels could be drawn.
pub fn plot_run(metrics: &Path, out: &Path) -> Result<bool, TrainError> {
    let raw = read_series(metrics)?;
    let steps = raw.values().map(Vec::len).max().unwrap_or(0);
    let window = (steps / 20).max(1);
    let series: BTreeMap<String, Vec<(f64, f64)>> =
        raw.into_iter().map(|(k, v)| (k, moving_average(&v, window))).collect();
    let labels = font();
    if !labels {
        tracing::warn!("no TrueType font found ({}); {} has no labels", FONTS.join(", "), out.display());
    }
    let rewards: Vec<(&str, &[(f64, f64)])> = series
        .iter()
        .filter(|(k, _)| *k == "reward" || (k.starts_with("rewards/") && k.ends_with("/mean")))
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    let kl: Vec<(&str, &[(f64, f64)])> =
        series.iter().filter(|(k, _)| *k == "kl" || *k == "loss").map(|(k, v)| (k.as_str(), v.as_slice())).collect();
    let draw = || -> DrawResult<()> {
        let root = BitMapBackend::new(out, (1200, 450)).into_drawing_area();
        root.fill(&WHITE)?;
        let (left, right) = root.split_horizontally(600);
        let avg = if window > 1 { format!(" (moving average of {window} steps)") } else { String::new() };
        panel(&left, &format!("reward{avg}"), &rewards, labels)?;
        panel(&right, &format!("kl and loss{avg}"), &kl, labels)?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| TrainError::Run(format!("{}: {e}", out.display())))?;
    Ok(labels)
}

/// One bar of a bar chart: label, height and the half-length of its error bar.
pub type Bar = (String, f64, f64);

/// A bar chart with error bars (an ablation metric: mean ± std per variant) into the PNG `out`. Bars with a
/// non-finite height are left out. Returns whether labels could be drawn.
pub fn bar_chart(out: &Path, title: &str, bars: &[Bar]) -> Result<bool, TrainError> {
    let labels = font();
    let bars: Vec<&Bar> = bars.iter().filter(|b| b.1.is_finite()).collect();
    let top = bars.iter().map(|b| b.1 + b.2.max(0.0)).fold(0.0f64, f64::max).max(1e-6) * 1.1;
    let bottom = bars.iter().map(|b| b.1 - b.2.max(0.0)).fold(0.0f64, f64::min);
    let draw = || -> DrawResult<()> {
        let root = BitMapBackend::new(out, (120 + 110 * bars.len().max(1) as u32, 420)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut builder = ChartBuilder::on(&root);
        builder.margin(14).x_label_area_size(if labels { 40 } else { 5 }).y_label_area_size(if labels {
            50
        } else {
            5
        });
        if labels {
            builder.caption(title, ("sans-serif", 20));
        }
        let n = bars.len().max(1);
        let mut chart = builder.build_cartesian_2d((0..n - 1).into_segmented(), bottom..top)?;
        let name = |x: &SegmentValue<usize>| match x {
            SegmentValue::CenterOf(i) => bars.get(*i).map(|b| b.0.clone()).unwrap_or_default(),
            _ => String::new(),
        };
        let mut mesh = chart.configure_mesh();
        mesh.disable_x_mesh();
        if labels {
            mesh.x_label_formatter(&name);
        } else {
            mesh.disable_x_axis().disable_y_axis();
        }
        mesh.draw()?;
        for (i, b) in bars.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let (x0, x1) = (SegmentValue::Exact(i), SegmentValue::Exact(i + 1));
            let mut bar = Rectangle::new([(x0, 0.0), (x1, b.1)], color.filled());
            bar.set_margin(0, 0, 12, 12);
            chart.draw_series(std::iter::once(bar))?;
            let whisker = vec![(SegmentValue::CenterOf(i), b.1 - b.2), (SegmentValue::CenterOf(i), b.1 + b.2)];
            chart.draw_series(std::iter::once(PathElement::new(whisker, BLACK.stroke_width(2))))?;
        }
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| TrainError::Run(format!("{}: {e}", out.display())))?;
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moving_average_by_hand() {
        let p = [(1.0, 1.0), (2.0, 3.0), (3.0, 5.0), (4.0, 7.0)];
        assert_eq!(moving_average(&p, 2), [(1.0, 1.0), (2.0, 2.0), (3.0, 4.0), (4.0, 6.0)]);
        assert_eq!(moving_average(&p, 1), p);
    }

    #[test]
    fn bar_charts_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("recall.png");
        let bars = [("full".to_string(), 55.0, 7.1), ("no_ict".into(), 37.0, 9.9), ("failed".into(), f64::NAN, 0.0)];
        bar_chart(&png, "caption recall", &bars).unwrap();
        let img = image::open(&png).unwrap();
        assert!(img.width() > 200 && img.height() == 420);
        bar_chart(&png, "one", &bars[..1]).unwrap();
        bar_chart(&png, "none", &[]).unwrap();
    }
}
