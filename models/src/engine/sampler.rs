//! Choosing the next token from one row of logits: repetition penalty, temperature, top-k, top-p (in
//! transformers' order), greedy when the temperature is 0, seeded sampling otherwise.

use rand::Rng;

/// How the next token is chosen.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingOptions {
    /// 0 = greedy; otherwise logits are divided by it before sampling.
    pub temperature: f64,
    /// Keep only the k most likely tokens (`None`: off).
    pub top_k: Option<usize>,
    /// Keep the smallest set of most likely tokens whose probability reaches `top_p` (1.0: off).
    pub top_p: f64,
    /// transformers' repetition penalty on every token already in the sequence (1.0: off): positive logits are
    /// divided by it, negative ones multiplied.
    pub repetition_penalty: f64,
}

impl Default for SamplingOptions {
    fn default() -> Self {
        SamplingOptions { temperature: 0.0, top_k: None, top_p: 1.0, repetition_penalty: 1.0 }
    }
}

impl SamplingOptions {
    /// Check ranges; the message names the option.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err("temperature must be a finite number >= 0".into());
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err("top_p must be in (0, 1]".into());
        }
        if self.top_k == Some(0) {
            return Err("top_k must be at least 1".into());
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return Err("repetition_penalty must be > 0".into());
        }
        Ok(())
    }
}

fn log_softmax(x: &[f64]) -> Vec<f64> {
    let m = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let lse = m + x.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
    x.iter().map(|v| v - lse).collect()
}

/// Pick the next token from `logits` given the tokens so far (`history`, prompt included). Returns the token
/// and its log-probability under the penalised, temperature-scaled distribution before top-k/top-p
/// truncation (the distribution a teacher-forced pass with the same temperature computes).
pub fn choose(logits: &[f32], history: &[u32], opts: &SamplingOptions, rng: &mut impl Rng) -> (u32, f32) {
    let mut x: Vec<f64> = logits.iter().map(|&v| f64::from(v)).collect();
    if opts.repetition_penalty != 1.0 {
        let mut seen = vec![false; x.len()];
        for &t in history {
            if let Some(s) = seen.get_mut(t as usize) {
                *s = true;
            }
        }
        for (v, s) in x.iter_mut().zip(seen) {
            if s {
                *v = if *v < 0.0 { *v * opts.repetition_penalty } else { *v / opts.repetition_penalty };
            }
        }
    }
    if opts.temperature > 0.0 {
        x.iter_mut().for_each(|v| *v /= opts.temperature);
    }
    let lp = log_softmax(&x);
    let argmax = lp.iter().enumerate().fold(0, |best, (i, v)| if *v > lp[best] { i } else { best });
    if opts.temperature == 0.0 {
        return (argmax as u32, lp[argmax] as f32);
    }
    let truncated = opts.top_k.is_some_and(|k| k < lp.len()) || opts.top_p < 1.0;
    let mut order: Vec<usize> = (0..lp.len()).collect();
    if truncated {
        // Candidates by decreasing probability (stable: ties keep the lower id first).
        order.sort_by(|&a, &b| lp[b].total_cmp(&lp[a]).then(a.cmp(&b)));
    }
    let mut keep = opts.top_k.map_or(order.len(), |k| k.min(order.len()));
    if opts.top_p < 1.0 {
        let mut acc = 0.0;
        for (n, &i) in order.iter().take(keep).enumerate() {
            acc += lp[i].exp();
            if acc >= opts.top_p {
                keep = n + 1;
                break;
            }
        }
    }
    let kept = &order[..keep.max(1)];
    let total: f64 = kept.iter().map(|&i| lp[i].exp()).sum();
    let mut u = rng.random::<f64>() * total;
    for &i in kept {
        u -= lp[i].exp();
        if u < 0.0 {
            return (i as u32, lp[i] as f32);
        }
    }
    let last = kept[kept.len() - 1];
    (last as u32, lp[last] as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn greedy_and_penalty_hand_computed() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let logits = [2.0f32, 1.5, -1.0];
        let (t, lp) = choose(&logits, &[], &SamplingOptions::default(), &mut rng);
        let want = 2.0 - (2f64.exp() + 1.5f64.exp() + (-1f64).exp()).ln();
        assert_eq!(t, 0);
        assert!((f64::from(lp) - want).abs() < 1e-6);
        // Penalty 2 on token 0 (seen): 2.0 -> 1.0, so token 1 (1.5) wins; -1.0 would become -2.0.
        let pen = SamplingOptions { repetition_penalty: 2.0, ..Default::default() };
        assert_eq!(choose(&logits, &[0, 0, 2], &pen, &mut rng).0, 1);
        let want = 1.5 - (1f64.exp() + 1.5f64.exp() + (-2f64).exp()).ln();
        assert!((f64::from(choose(&logits, &[0, 2], &pen, &mut rng).1) - want).abs() < 1e-6);
    }

    #[test]
    fn top_k_one_and_tiny_top_p_are_greedy_and_sampling_follows_probabilities() {
        let logits = [0.1f32, 3.0, 2.9, -5.0];
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for opts in [
            SamplingOptions { temperature: 1.0, top_k: Some(1), ..Default::default() },
            SamplingOptions { temperature: 1.0, top_p: 1e-6, ..Default::default() },
        ] {
            assert!((0..50).all(|_| choose(&logits, &[], &opts, &mut rng).0 == 1));
        }
        // top_k = 2 never picks tokens 0 or 3; the two kept tokens come out near 52% / 48%.
        let two = SamplingOptions { temperature: 1.0, top_k: Some(2), ..Default::default() };
        let n = 20_000;
        let ones = (0..n).filter(|_| {
            let t = choose(&logits, &[], &two, &mut rng).0;
            assert!(t == 1 || t == 2);
            t == 1
        });
        let share = ones.count() as f64 / f64::from(n);
        let p1 = 3f64.exp() / (3f64.exp() + 2.9f64.exp());
        assert!((share - p1).abs() < 0.015, "{share} vs {p1}");
    }

    #[test]
    fn options_are_validated() {
        assert!(SamplingOptions { top_p: 0.0, ..Default::default() }.validate().is_err());
        assert!(SamplingOptions { top_k: Some(0), ..Default::default() }.validate().is_err());
        assert!(SamplingOptions { temperature: -1.0, ..Default::default() }.validate().is_err());
        assert!(SamplingOptions { repetition_penalty: 0.0, ..Default::default() }.validate().is_err());
        assert!(SamplingOptions::default().validate().is_ok());
    }
}
