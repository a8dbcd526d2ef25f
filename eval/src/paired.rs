//! Paired comparison of two models on the same held-out items (records, caption names): how many the second
//! fixes and breaks, and the exact McNemar test of whether that split is beyond chance.

use std::collections::BTreeMap;
use std::path::Path;

use indexmap::IndexMap;
use serde::Serialize;

use crate::EvalError;

/// Changes between two models' per-item correctness on the same items (held-out records, caption names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct PairedChange {
    /// Items both models were scored on.
    pub items: usize,
    /// Wrong before, right after.
    pub fixed: usize,
    /// Right before, wrong after.
    pub broken: usize,
    /// Exact two-sided McNemar p-value of `fixed` vs `broken`.
    pub p_value: f64,
}

impl PairedChange {
    /// Compare `before[i]` with `after[i]`; items scored by only one side (`None`) are skipped, and the two
    /// slices must have the same length (items in the same order).
    pub fn new(before: &[Option<bool>], after: &[Option<bool>]) -> Result<Self, String> {
        if before.len() != after.len() {
            return Err(format!("{} items before but {} after", before.len(), after.len()));
        }
        let mut c = PairedChange::default();
        for (b, a) in before.iter().zip(after) {
            if let (Some(b), Some(a)) = (b, a) {
                c.items += 1;
                c.fixed += usize::from(!b && *a);
                c.broken += usize::from(*b && !a);
            }
        }
        c.p_value = mcnemar_exact(c.fixed, c.broken);
        Ok(c)
    }
}

/// Exact two-sided McNemar p-value: the probability, with each of the `fixed + broken` discordant items equally
/// likely to go either way, of a split at least as uneven as this one (1 when there are none).
pub fn mcnemar_exact(fixed: usize, broken: usize) -> f64 {
    let n = fixed + broken;
    let k = fixed.min(broken);
    // P(X <= k) for X ~ Binomial(n, 1/2), each term from ln C(n, i) - n ln 2 (no overflow for large n).
    let mut ln_choose = 0.0f64;
    let mut tail = 0.0f64;
    for i in 0..=k {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        tail += (ln_choose - n as f64 * std::f64::consts::LN_2).exp();
    }
    (2.0 * tail).min(1.0)
}

/// One task's comparison of two answer files: accuracies before and after, and the paired change.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TaskComparison {
    /// Share correct before, percent.
    pub before: f64,
    /// Share correct after, percent.
    pub after: f64,
    /// What changed on the same records.
    pub change: PairedChange,
}

/// The verdicts of a `repic eval --out` file: record index -> (task, correct); records without a verdict are left
/// out. Errors name the file and line.
pub fn read_answer_verdicts(path: &Path) -> Result<BTreeMap<usize, (String, bool)>, EvalError> {
    #[derive(serde::Deserialize)]
    struct Row {
        index: usize,
        method: String,
        correct: Option<bool>,
    }
    let src = std::fs::read_to_string(path).map_err(|e| EvalError::Input(format!("{}: {e}", path.display())))?;
    let mut out = BTreeMap::new();
    for (n, line) in src.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let row: Row = serde_json::from_str(line).map_err(|e| {
            EvalError::Input(format!("{}:{}: not a `repic eval --out` answer ({e})", path.display(), n + 1))
        })?;
        if let Some(ok) = row.correct
            && out.insert(row.index, (row.method, ok)).is_some()
        {
            return Err(EvalError::Input(format!("{}:{}: record {} twice", path.display(), n + 1, row.index)));
        }
    }
    Ok(out)
}

/// Compare two models' verdicts on the same records, per task (and `all`): the `repic compare` of two
/// `repic eval --out` files.
pub fn compare_verdicts(
    before: &BTreeMap<usize, (String, bool)>,
    after: &BTreeMap<usize, (String, bool)>,
) -> Result<IndexMap<String, TaskComparison>, EvalError> {
    if before.keys().ne(after.keys()) {
        return Err(EvalError::Input(format!(
            "the files answer different records ({} and {} judged)",
            before.len(),
            after.len()
        )));
    }
    // Per task: the verdicts before and after, in record order.
    type Sides = (Vec<Option<bool>>, Vec<Option<bool>>);
    let mut by_task: IndexMap<String, Sides> = IndexMap::new();
    for (i, (task, ok)) in before {
        let (task_after, ok_after) = &after[i];
        if task != task_after {
            return Err(EvalError::Input(format!("record {i} is {task} in one file and {task_after} in the other")));
        }
        for key in [task.as_str(), "all"] {
            let (b, a) = by_task.entry(key.to_string()).or_default();
            b.push(Some(*ok));
            a.push(Some(*ok_after));
        }
    }
    by_task.sort_keys();
    let percent = |v: &[Option<bool>]| {
        crate::Accuracy { correct: v.iter().filter(|x| **x == Some(true)).count(), total: v.len() }.percent()
    };
    by_task
        .into_iter()
        .map(|(task, (b, a))| {
            let change = PairedChange::new(&b, &a).map_err(EvalError::Input)?;
            Ok((task, TaskComparison { before: percent(&b), after: percent(&a), change }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcnemar_by_hand() {
        // 2 * (C(12,0) + C(12,1) + C(12,2)) / 2^12 = 2 * 79 / 4096.
        assert!((mcnemar_exact(10, 2) - 158.0 / 4096.0).abs() < 1e-12);
        assert!((mcnemar_exact(2, 10) - 158.0 / 4096.0).abs() < 1e-12);
        // All ten discordant items one way: 2 / 2^10.
        assert!((mcnemar_exact(0, 10) - 2.0 / 1024.0).abs() < 1e-12);
        assert_eq!(mcnemar_exact(5, 5), 1.0);
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        // Large n stays finite: 2 * P(X <= 400) for n = 1000 is about 2.7e-10 (normal approx. z = 6.3).
        let p = mcnemar_exact(600, 400);
        assert!(p > 1e-11 && p < 1e-9, "{p}");
    }

    #[test]
    fn paired_change_counts_only_items_both_scored() {
        let before = [Some(true), Some(false), Some(false), Some(true), None, Some(true)];
        let after = [Some(true), Some(true), Some(false), Some(false), Some(true), None];
        let c = PairedChange::new(&before, &after).unwrap();
        assert_eq!((c.items, c.fixed, c.broken), (4, 1, 1));
        assert_eq!(c.p_value, 1.0);
        assert!(PairedChange::new(&before, &after[..5]).unwrap_err().contains("6 items before but 5 after"));
    }

    #[test]
    fn answer_files_compare_per_task_by_hand() {
        let dir = tempfile::tempdir().unwrap();
        let row = |i: usize, m: &str, ok: &str| format!("{{\"index\": {i}, \"method\": \"{m}\", \"correct\": {ok}}}\n");
        let before = [
            row(0, "yes_no", "true"),
            row(1, "yes_no", "false"),
            row(2, "yes_no", "false"),
            row(3, "iou", "true"),
            row(4, "yes_no_name", "null"),
        ]
        .concat();
        let after = [
            row(0, "yes_no", "false"),
            row(1, "yes_no", "true"),
            row(2, "yes_no", "true"),
            row(3, "iou", "true"),
            row(4, "yes_no_name", "true"),
        ]
        .concat();
        std::fs::write(dir.path().join("b.jsonl"), before).unwrap();
        std::fs::write(dir.path().join("a.jsonl"), &after).unwrap();
        let b = read_answer_verdicts(&dir.path().join("b.jsonl")).unwrap();
        let a = read_answer_verdicts(&dir.path().join("a.jsonl")).unwrap();
        assert_eq!(b.len(), 4, "the unjudged record is left out");
        let a4: BTreeMap<_, _> = a.iter().filter(|(i, _)| **i < 4).map(|(i, v)| (*i, v.clone())).collect();
        let c = compare_verdicts(&b, &a4).unwrap();
        assert_eq!(c.keys().collect::<Vec<_>>(), ["all", "iou", "yes_no"]);
        let oct = c["yes_no"];
        assert_eq!((oct.change.items, oct.change.fixed, oct.change.broken), (3, 2, 1));
        assert!((oct.before - 100.0 / 3.0).abs() < 1e-9 && (oct.after - 200.0 / 3.0).abs() < 1e-9);
        assert_eq!(oct.change.p_value, 1.0);
        assert_eq!((c["all"].change.items, c["iou"].change.fixed), (4, 0));
        assert!(compare_verdicts(&b, &a).unwrap_err().to_string().contains("different records"));
        std::fs::write(dir.path().join("bad.jsonl"), "{\"index\": 1}\n").unwrap();
        let e = read_answer_verdicts(&dir.path().join("bad.jsonl")).unwrap_err().to_string();
        assert!(e.contains("bad.jsonl:1: not a `repic eval --out` answer"), "{e}");
    }
}
