//! The metrics of a training step, computed apart from the loop that trains and the writers that log them
//! (`log`): token statistics of an update (KL, clip ratios, entropy), reward and completion-length figures of
//! the groups, and memory. Names follow TRL's.

use std::collections::BTreeMap;

use burn::tensor::Tensor;

use crate::TrainError;
use crate::loss::{Objective, std_unbiased};
use crate::rollout::Group;

/// Metrics of one step, by TRL's names.
pub type Metrics = BTreeMap<String, f64>;

/// Peak resident memory of this process in MiB (Linux `VmHWM`; `None` elsewhere). GPU memory is not included.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The values of a small tensor, on the host.
fn host<B: burn::tensor::backend::Backend>(x: Tensor<B, 2>) -> Result<Vec<f32>, TrainError> {
    x.into_data().convert::<f32>().to_vec::<f32>().map_err(|e| TrainError::Run(format!("{e:?}")))
}

/// Masked token statistics of one update: KL and clip ratios (TRL's `clip_ratio/*`).
#[derive(Default)]
pub(crate) struct TokenStats {
    tokens: f64,
    kl: f64,
    has_kl: bool,
    low: f64,
    high: f64,
    entropy: f64,
}

impl TokenStats {
    pub(crate) fn add<B: burn::tensor::backend::Backend>(
        &mut self,
        t: &crate::loss::TokenTerms<B>,
        mask: &[f32],
        adv: &[f32],
        obj: Objective,
    ) -> Result<(), TrainError> {
        let ratio = host(t.ratio.clone())?;
        let width = mask.len() / adv.len().max(1);
        let kl = t.kl.as_ref().map(|k| host(k.clone())).transpose()?;
        for (i, (&m, &r)) in mask.iter().zip(&ratio).enumerate() {
            if m == 0.0 {
                continue;
            }
            let a = adv[i / width.max(1)];
            self.tokens += 1.0;
            if let Some(k) = &kl {
                self.kl += f64::from(k[i]);
                self.has_kl = true;
            }
            if a < 0.0 && f64::from(r) < 1.0 - obj.epsilon {
                self.low += 1.0;
            }
            if a > 0.0 && f64::from(r) > 1.0 + obj.epsilon_high {
                self.high += 1.0;
            }
        }
        Ok(())
    }

    pub(crate) fn add_entropy<B: burn::tensor::backend::Backend>(
        &mut self,
        e: Tensor<B, 2>,
        mask: &[f32],
    ) -> Result<(), TrainError> {
        let e = host(e)?;
        self.entropy += e.iter().zip(mask).map(|(x, m)| f64::from(x * m)).sum::<f64>();
        Ok(())
    }

    pub(crate) fn into_metrics(self) -> Metrics {
        let n = self.tokens.max(1.0);
        let mut m = Metrics::new();
        m.insert("kl".into(), if self.has_kl { self.kl / n } else { 0.0 });
        m.insert("clip_ratio/low_mean".into(), self.low / n);
        m.insert("clip_ratio/high_mean".into(), self.high / n);
        m.insert("clip_ratio/region_mean".into(), (self.low + self.high) / n);
        m.insert("entropy".into(), self.entropy / n);
        m
    }
}

/// Reward and completion-length metrics of a step.
pub(crate) fn reward_metrics(m: &mut Metrics, groups: &[Group], rewards: &[f32], names: &[&str]) {
    let mean =
        |x: &[f32]| if x.is_empty() { 0.0 } else { x.iter().map(|&v| f64::from(v)).sum::<f64>() / x.len() as f64 };
    m.insert("reward".into(), mean(rewards));
    m.insert("reward_std".into(), f64::from(std_unbiased(rewards)));
    for (k, name) in names.iter().enumerate() {
        let vals: Vec<f32> = groups.iter().flat_map(|gr| gr.per_fn.iter().filter_map(move |p| p[k])).collect();
        if !vals.is_empty() {
            m.insert(format!("rewards/{name}/mean"), mean(&vals));
            m.insert(format!("rewards/{name}/std"), f64::from(std_unbiased(&vals)));
        }
    }
    let zero_std = groups.iter().filter(|gr| std_unbiased(&gr.rewards) == 0.0).count();
    m.insert("frac_reward_zero_std".into(), zero_std as f64 / groups.len().max(1) as f64);
    let lens: Vec<f32> = groups.iter().flat_map(|gr| gr.samples.iter().map(|s| s.tokens.len() as f32)).collect();
    m.insert("completions/mean_length".into(), mean(&lens));
    m.insert("completions/min_length".into(), lens.iter().copied().fold(f32::INFINITY, f32::min).into());
    m.insert("completions/max_length".into(), lens.iter().copied().fold(0.0, f32::max).into());
    let clipped = groups.iter().map(|gr| (0..gr.samples.len()).filter(|&i| gr.truncated(i)).count()).sum::<usize>();
    m.insert("completions/clipped_ratio".into(), clipped as f64 / lens.len().max(1) as f64);
}
