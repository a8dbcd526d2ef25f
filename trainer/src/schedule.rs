//! Learning-rate schedules (transformers' `get_linear_schedule_with_warmup` and `..._constant_...`).

use crate::config::Schedule;

/// The learning rate of optimizer step `step` (0-based) of `total`, peaking at `peak` after `warmup` steps.
pub fn learning_rate(kind: Schedule, peak: f64, step: usize, total: usize, warmup: usize) -> f64 {
    if step < warmup {
        return peak * step as f64 / warmup.max(1) as f64;
    }
    match kind {
        Schedule::Constant => peak,
        Schedule::Linear => {
            let left = total.saturating_sub(step) as f64 / total.saturating_sub(warmup).max(1) as f64;
            peak * left.max(0.0)
        }
    }
}

/// Warmup steps: `warmup_steps` when set, else `ceil(warmup_ratio * total)` (transformers).
pub fn warmup_steps(steps: usize, ratio: f64, total: usize) -> usize {
    if steps > 0 { steps } else { (ratio * total as f64).ceil() as usize }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_decay_with_and_without_warmup_by_hand() {
        // No warmup, 4 steps: 1, 0.75, 0.5, 0.25 of the peak.
        let lr: Vec<f64> = (0..4).map(|s| learning_rate(Schedule::Linear, 1.0, s, 4, 0)).collect();
        assert_eq!(lr, [1.0, 0.75, 0.5, 0.25]);
        // Warmup 2 of 6: 0, 0.5, then 1, 0.75, 0.5, 0.25.
        let lr: Vec<f64> = (0..6).map(|s| learning_rate(Schedule::Linear, 1.0, s, 6, 2)).collect();
        assert_eq!(lr, [0.0, 0.5, 1.0, 0.75, 0.5, 0.25]);
        assert_eq!(learning_rate(Schedule::Constant, 2.0, 5, 6, 2), 2.0);
        assert_eq!(warmup_steps(0, 0.1, 25), 3);
        assert_eq!(warmup_steps(4, 0.1, 25), 4);
    }
}
