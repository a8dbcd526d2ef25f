//! Paired comparison of two models on the same held-out items (records, caption names): how many the second
//! fixes and breaks, and the exact McNemar test of whether that split is beyond chance.

use serde::Serialize;

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
}
