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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moving_average_by_hand() {
        let p = [(1.0, 1.0), (2.0, 3.0), (3.0, 5.0), (4.0, 7.0)];
        assert_eq!(moving_average(&p, 2), [(1.0, 1.0), (2.0, 2.0), (3.0, 4.0), (4.0, 6.0)]);
        assert_eq!(moving_average(&p, 1), p);
    }
}
