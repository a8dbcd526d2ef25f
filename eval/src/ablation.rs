//! Reward-ablation results: one line per (variant, seed) run in `results.jsonl`, and the Table-6-style report
//! built from them — per variant and metric the mean and sample standard deviation over seeds, and the paired
//! difference to the baseline variant with, where the metric is a share of per-item verdicts (OCT answers,
//! caption names recalled), the exact McNemar p over the items of every seed both runs share.

use std::collections::BTreeMap;
use std::path::Path;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::EvalError;
use crate::held_out::{HeldOutMetrics, ROWS};
use crate::paired::PairedChange;

/// One run of a sweep, as `results.jsonl` holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Variant name (its config file's stem).
    pub variant: String,
    /// Seed of data, warm start and training.
    pub seed: u64,
    /// `ok` or `failed`.
    pub status: String,
    /// Why it failed (`failed` runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The held-out figures (`ok` runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<HeldOutMetrics>,
    /// Per held-out OCT record, whether it was answered right (paired tests).
    #[serde(default)]
    pub oct_correct: Vec<Option<bool>>,
    /// Per ground-truth caption name, whether it was recalled (paired tests).
    #[serde(default)]
    pub names_recalled: Vec<Option<bool>>,
    /// Wall time of the run, seconds.
    pub seconds: f64,
    /// Hash of the run's resolved training config (which runs are comparable).
    pub config_hash: String,
    /// The machine it ran on (figures depend on it).
    #[serde(default)]
    pub machine: String,
    /// Captioning references retrieved, at least this many per query (`None`: each query's own concepts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<usize>,
}

impl RunResult {
    /// Whether the run finished.
    pub fn is_ok(&self) -> bool {
        self.status == "ok" && self.metrics.is_some()
    }
}

/// The runs of `results.jsonl` (none when the file does not exist yet); errors name the line.
pub fn read_results(path: &Path) -> Result<Vec<RunResult>, EvalError> {
    let src = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(EvalError::Input(format!("{}: {e}", path.display()))),
    };
    src.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            serde_json::from_str(l).map_err(|e| EvalError::Input(format!("{}:{}: {e}", path.display(), n + 1)))
        })
        .collect()
}

/// Record `run` in `results.jsonl`, replacing an earlier line of the same variant and seed; the file is
/// rewritten atomically, so a killed sweep never leaves half a line.
pub fn record_result(path: &Path, run: &RunResult) -> Result<(), EvalError> {
    // Parallel runs record in turn: read, add, rewrite under one lock.
    let _turn = repic_data::lock::FileLock::wait(&path.with_extension("lock"))
        .map_err(|e| EvalError::Write { path: path.into(), msg: e.to_string() })?;
    let mut all = read_results(path)?;
    all.retain(|r| !(r.variant == run.variant && r.seed == run.seed));
    all.push(run.clone());
    let mut text = String::new();
    for r in &all {
        text.push_str(&serde_json::to_string(r).map_err(|e| EvalError::Input(e.to_string()))?);
        text.push('\n');
    }
    repic_data::write_atomic(path, text.as_bytes())
        .map_err(|e| EvalError::Write { path: path.into(), msg: e.to_string() })
}

/// A p-value as reports print it: three decimals, or scientific below 0.001.
pub fn p_text(p: f64) -> String {
    if p < 1e-3 { format!("{p:.1e}") } else { format!("{p:.3}") }
}

/// Mean and sample standard deviation (n - 1; 0 for one value).
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 { values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

/// One cell of the report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cell {
    /// Mean over the variant's finished seeds.
    pub mean: f64,
    /// Sample standard deviation over them.
    pub std: f64,
    /// Mean over seeds of (variant - baseline) on the seeds both finished (`None` for the baseline itself).
    pub diff: Option<f64>,
    /// Exact McNemar p of the pooled per-item changes against the baseline (OCT and name recall only).
    pub p_value: Option<f64>,
}

/// The report of a sweep: variants in order, then per metric key a cell; failed runs listed apart.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Baseline variant the differences are to.
    pub baseline: String,
    /// Per variant: finished seeds and per metric key its cell.
    pub variants: IndexMap<String, (usize, IndexMap<String, Cell>)>,
    /// Failed runs: variant, seed, error.
    pub failed: Vec<(String, u64, String)>,
    /// The metric rows (key, label): [`ROWS`], and the retrieval hit rate when references were retrieved.
    pub rows: Vec<(&'static str, &'static str)>,
}

/// The row of the share of right references among retrieved ones.
pub const REFERENCES_ROW: (&str, &str) = ("references_right", "right references retrieved (%)");

/// Which per-item verdicts a metric's McNemar test uses.
fn verdicts<'a>(key: &str, r: &'a RunResult) -> Option<&'a [Option<bool>]> {
    match key {
        "oct_accuracy" => Some(&r.oct_correct),
        "recall" | "name_aware_recall" => Some(&r.names_recalled),
        _ => None,
    }
}

/// Build the report of `runs` (variants in order of first appearance) against `baseline`.
pub fn report(runs: &[RunResult], baseline: &str) -> Result<Report, EvalError> {
    let mut by_variant: IndexMap<String, BTreeMap<u64, &RunResult>> = IndexMap::new();
    let mut failed = Vec::new();
    for r in runs {
        if r.is_ok() {
            by_variant.entry(r.variant.clone()).or_default().insert(r.seed, r);
        } else {
            by_variant.entry(r.variant.clone()).or_default();
            failed.push((r.variant.clone(), r.seed, r.error.clone().unwrap_or_default()));
        }
    }
    let base = by_variant.get(baseline).cloned().unwrap_or_default();
    let mut rows = ROWS.to_vec();
    if runs.iter().any(|r| r.metrics.as_ref().is_some_and(|m| m.references_right.is_some())) {
        rows.push(REFERENCES_ROW);
    }
    let mut variants = IndexMap::new();
    for (name, seeds) in &by_variant {
        let mut cells = IndexMap::new();
        for &(key, _) in &rows {
            let value = |r: &RunResult| r.metrics.as_ref().map_or(f64::NAN, |m| m.get(key));
            let values: Vec<f64> = seeds.values().map(|r| value(r)).collect();
            let (mean, std) = mean_std(&values);
            let shared: Vec<(&RunResult, &RunResult)> =
                seeds.iter().filter_map(|(s, r)| base.get(s).map(|b| (*b, *r))).collect();
            let (diff, p_value) = if name == baseline || shared.is_empty() {
                (None, None)
            } else {
                let diffs: Vec<f64> = shared.iter().map(|(b, r)| value(r) - value(b)).collect();
                let p = match shared
                    .iter()
                    .map(|(b, r)| Some((verdicts(key, b)?, verdicts(key, r)?)))
                    .collect::<Option<Vec<_>>>()
                {
                    Some(pairs) => {
                        let (mut fixed, mut broken) = (0, 0);
                        for (b, r) in pairs {
                            let c = PairedChange::new(b, r)
                                .map_err(|e| EvalError::Input(format!("{name} vs {baseline}: {e}")))?;
                            fixed += c.fixed;
                            broken += c.broken;
                        }
                        Some(crate::paired::mcnemar_exact(fixed, broken))
                    }
                    None => None,
                };
                (Some(mean_std(&diffs).0), p)
            };
            cells.insert(key.to_string(), Cell { mean, std, diff, p_value });
        }
        variants.insert(name.clone(), (seeds.len(), cells));
    }
    Ok(Report { baseline: baseline.into(), variants, failed, rows })
}

impl Report {
    /// The report as a Markdown table: one row per variant, `mean ± std (diff, p)` per metric, the best mean of
    /// each metric in bold (the lowest for none: every reported metric is higher-is-better but caption length,
    /// which is not bolded); failed runs below the table.
    pub fn to_markdown(&self) -> String {
        let mut out = String::from("| variant | seeds |");
        for (_, label) in &self.rows {
            out.push_str(&format!(" {label} |"));
        }
        out.push_str("\n|---|---|");
        out.push_str(&"---|".repeat(self.rows.len()));
        out.push('\n');
        let best: Vec<f64> = self
            .rows
            .iter()
            .map(|(k, _)| {
                self.variants
                    .values()
                    .map(|(_, c)| c[*k].mean)
                    .filter(|m| m.is_finite())
                    .fold(f64::NEG_INFINITY, f64::max)
            })
            .collect();
        for (name, (n, cells)) in &self.variants {
            out.push_str(&format!("| {name} | {n} |"));
            for ((key, _), best) in self.rows.iter().zip(&best) {
                let c = &cells[*key];
                let mut text = if c.mean.is_finite() { format!("{:.1} ± {:.1}", c.mean, c.std) } else { "–".into() };
                if *key != "mean_length" && c.mean.is_finite() && c.mean == *best {
                    text = format!("**{text}**");
                }
                if let Some(d) = c.diff {
                    text.push_str(&format!(" ({d:+.1}"));
                    if let Some(p) = c.p_value {
                        text.push_str(&format!(", p {}", p_text(p)));
                    }
                    text.push(')');
                }
                out.push_str(&format!(" {text} |"));
            }
            out.push('\n');
        }
        out.push_str(&format!("\nDifferences (in parentheses) are to `{}` on the seeds both finished; p is the exact McNemar test of the per-item changes pooled over those seeds.\n", self.baseline));
        for (v, s, e) in &self.failed {
            out.push_str(&format!("\nFAILED: {v}, seed {s}: {e}\n"));
        }
        out
    }

    /// The report as CSV: variant, seeds, then per metric mean, std, diff and p.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("variant,seeds");
        for (key, _) in &self.rows {
            out.push_str(&format!(",{key}_mean,{key}_std,{key}_diff,{key}_p"));
        }
        out.push('\n');
        let num = |x: Option<f64>| x.filter(|v| v.is_finite()).map(|v| format!("{v}")).unwrap_or_default();
        for (name, (n, cells)) in &self.variants {
            let name = if name.contains([',', '"', '\n']) {
                format!("\"{}\"", name.replace('"', "\"\""))
            } else {
                name.clone()
            };
            out.push_str(&format!("{name},{n}"));
            for (key, _) in &self.rows {
                let c = &cells[*key];
                out.push_str(&format!(
                    ",{},{},{},{}",
                    num(Some(c.mean)),
                    num(Some(c.std)),
                    num(c.diff),
                    num(c.p_value)
                ));
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(variant: &str, seed: u64, recall: f64, names: &[bool]) -> RunResult {
        RunResult {
            variant: variant.into(),
            seed,
            status: "ok".into(),
            error: None,
            metrics: Some(HeldOutMetrics { recall, oct_accuracy: 80.0, ..Default::default() }),
            oct_correct: vec![Some(true), None],
            names_recalled: names.iter().map(|&b| Some(b)).collect(),
            seconds: 1.0,
            config_hash: "h".into(),
            machine: "m".into(),
            top_k: None,
        }
    }

    #[test]
    fn report_by_hand() {
        let mut failed = run("only_ict", 0, 0.0, &[]);
        failed.status = "failed".into();
        failed.metrics = None;
        failed.error = Some("loss not finite".into());
        let runs = [
            run("full", 0, 50.0, &[true, true, false]),
            run("full", 1, 60.0, &[true, false]),
            run("no_ict", 0, 30.0, &[false, true, false]),
            run("no_ict", 1, 44.0, &[false, false]),
            failed,
        ];
        let r = report(&runs, "full").unwrap();
        let full = &r.variants["full"].1["recall"];
        assert_eq!((full.mean, full.diff, full.p_value), (55.0, None, None));
        assert!((full.std - 50f64.sqrt()).abs() < 1e-12, "sample std of 50 and 60");
        let no_ict = &r.variants["no_ict"].1["recall"];
        assert_eq!((no_ict.mean, no_ict.diff), (37.0, Some(-18.0)));
        // Two names lost, none gained, over both seeds: p = 2 * 0.5^2.
        assert_eq!(no_ict.p_value, Some(0.5));
        assert_eq!(r.variants["no_ict"].1["precision"].p_value, None, "precision has no per-item verdicts");
        assert_eq!(r.variants["only_ict"].0, 0);
        assert_eq!(r.failed, [("only_ict".to_string(), 0, "loss not finite".to_string())]);
        let md = r.to_markdown();
        assert!(
            md.contains("| full | 2 |") && md.contains("**55.0 ± 7.1**") && md.contains("37.0 ± 9.9 (-18.0, p 0.500)"),
            "{md}"
        );
        assert!(md.contains("FAILED: only_ict, seed 0: loss not finite"), "{md}");
        let csv = r.to_csv();
        assert!(csv.lines().nth(2).unwrap().starts_with("no_ict,2,"), "{csv}");
        assert!(csv.contains(",37,9.899494936611665,-18,0.5,"), "{csv}");
        assert_eq!(mean_std(&[4.0]), (4.0, 0.0));
        assert_eq!(r.rows, ROWS, "no retrieval row when references were given");
        let mut retrieved = run("full", 0, 50.0, &[true]);
        retrieved.metrics.as_mut().unwrap().references_right = Some(75.0);
        retrieved.top_k = Some(2);
        let r = report(&[retrieved], "full").unwrap();
        assert_eq!(r.rows.last(), Some(&REFERENCES_ROW));
        assert!(r.to_markdown().contains("| right references retrieved (%) |"), "{}", r.to_markdown());
        assert!(r.to_csv().lines().nth(1).unwrap().ends_with(",75,0,,"), "{}", r.to_csv());
    }

    #[test]
    fn results_are_recorded_once_per_run_and_survive_a_rerun() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.jsonl");
        assert!(read_results(&path).unwrap().is_empty());
        record_result(&path, &run("full", 0, 50.0, &[true])).unwrap();
        record_result(&path, &run("full", 1, 60.0, &[true])).unwrap();
        record_result(&path, &run("full", 0, 52.0, &[true])).unwrap();
        let all = read_results(&path).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all.iter().find(|r| r.seed == 0).unwrap().metrics.as_ref().unwrap().recall, 52.0);
        std::fs::write(&path, "{\"variant\": 1}\n").unwrap();
        assert!(read_results(&path).unwrap_err().to_string().contains("results.jsonl:1:"));
    }
}
