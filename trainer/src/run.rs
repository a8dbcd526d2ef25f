//! A whole GRPO run: records, data order per epoch, the step loop, metrics, samples, checkpoints, resume.

use std::path::PathBuf;

use burn::tensor::backend::AutodiffBackend;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use repic_data::{Record, load_records};
use repic_models::Checkpoint;
use repic_rewards::RewardSet;
use serde_json::json;

use crate::checkpoint::{list_checkpoints, prune};
use crate::config::{Finetune, Mode};
use crate::lock::RunLock;
use crate::log::{MetricsLog, truncate_after};
use crate::rollout::mix;
use crate::{Metrics, TrainConfig, TrainError, Trainer};

/// How many rollout phases a run has and how many prompts each takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Records kept for training.
    pub records: usize,
    /// Prompts per rollout phase (`prompts_per_step * gradient_accumulation_steps`).
    pub prompts: usize,
    /// Rollout phases per epoch (an incomplete last batch is dropped).
    pub per_epoch: usize,
    /// Rollout phases of the run.
    pub rollouts: usize,
    /// Optimizer steps of the run (`rollouts * num_iterations`).
    pub steps: usize,
}

impl Plan {
    /// The plan of `cfg` over `records` records.
    pub fn new(cfg: &TrainConfig, records: usize) -> Result<Self, TrainError> {
        let prompts = cfg.train.prompts_per_step * cfg.train.gradient_accumulation_steps;
        let per_epoch = records / prompts;
        if per_epoch == 0 {
            return Err(TrainError::Run(format!(
                "{records} training records are fewer than the {prompts} prompts of one step \
                 (train.prompts_per_step x train.gradient_accumulation_steps)"
            )));
        }
        let mu = if cfg.mode == Mode::Grpo { cfg.grpo.num_iterations } else { 1 };
        let rollouts = if cfg.train.max_steps > 0 {
            cfg.train.max_steps.div_ceil(mu)
        } else {
            cfg.train.num_train_epochs * per_epoch
        };
        Ok(Plan { records, prompts, per_epoch, rollouts, steps: rollouts * mu })
    }

    /// `(record index, prompt key)` of the prompts of rollout phase `r`: records in a seeded shuffled order per
    /// epoch; the key `epoch * records + index` fixes each prompt's random suffix.
    pub fn batch(&self, r: usize, seed: u64, shuffle: bool) -> Vec<(usize, u64)> {
        let epoch = r / self.per_epoch;
        let mut order: Vec<usize> = (0..self.records).collect();
        if shuffle {
            order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix(seed, epoch as u64)));
        }
        let start = (r % self.per_epoch) * self.prompts;
        order[start..start + self.prompts].iter().map(|&i| (i, (epoch * self.records + i) as u64)).collect()
    }
}

/// Training records of `cfg`, without those of tasks the reward set drops (ablation `drop`).
pub fn training_records(cfg: &TrainConfig) -> Result<Vec<Record>, TrainError> {
    let set = RewardSet::from_config(&cfg.rewards)?;
    let all = load_records(&cfg.data.train)?;
    let n = all.len();
    let kept: Vec<Record> = all.into_iter().filter(|r| set.keeps(r.method)).collect();
    if kept.len() < n {
        tracing::info!("{} of {n} records dropped: their task is not in the reward set", n - kept.len());
    }
    repic_data::check_images(&kept, &cfg.image_root(), &cfg.data.train)?;
    Ok(kept)
}

/// What a finished run leaves.
#[derive(Clone, Debug)]
pub struct RunSummary {
    /// Optimizer steps taken in total.
    pub steps: usize,
    /// The last checkpoint written.
    pub checkpoint: PathBuf,
    /// Metrics of the last step.
    pub last: Metrics,
}

/// Train as configured (`mode`: GRPO or SFT), from scratch or (`resume`) from the newest complete checkpoint in
/// `output_dir`. `on_step(metrics, step, total)` is called after every optimizer step (progress display).
pub fn train<B: AutodiffBackend>(
    cfg: TrainConfig,
    resume: bool,
    device: B::Device,
    on_step: &mut dyn FnMut(&Metrics, usize, usize),
) -> Result<RunSummary, TrainError> {
    let out = cfg.output_dir.clone();
    // Held until this function returns: a second run into the same folder is refused, naming this one.
    let _lock = RunLock::acquire(&out)?;
    let existing = list_checkpoints(&out);
    if !resume && (out.join("metrics.jsonl").exists() || !existing.is_empty()) {
        return Err(TrainError::Run(format!(
            "{} already holds a run; pass --resume to continue it, or choose another output_dir",
            out.display()
        )));
    }
    std::fs::create_dir_all(&out).map_err(|e| TrainError::Io { path: out.clone(), source: e })?;
    repic_data::write_atomic(&out.join("config.toml"), cfg.to_toml().as_bytes())?;
    let records = training_records(&cfg)?;
    let plan = Plan::new(&cfg, records.len())?;
    let ckpt = Checkpoint::<B>::load(&cfg.model, &device)?;
    let mut trainer = Trainer::new(cfg, ckpt, records, plan.steps, device)?;
    let mut first = 0;
    if resume {
        match existing.last() {
            Some((_, dir)) => {
                let state = trainer.resume_from(dir)?;
                first = state.rollouts;
                tracing::info!("resumed from {} (step {})", dir.display(), state.step);
                truncate_after(&out.join("metrics.jsonl"), state.step)?;
                truncate_after(&out.join("samples.jsonl"), state.step)?;
            }
            None => {
                tracing::warn!("--resume: no checkpoint in {}; starting from scratch", out.display());
                // Logs of steps that no checkpoint holds would otherwise be followed by the same steps again.
                truncate_after(&out.join("metrics.jsonl"), 0)?;
                truncate_after(&out.join("samples.jsonl"), 0)?;
            }
        }
    }
    let mut log = MetricsLog::open(&out)?;
    let cfg = trainer.cfg.clone();
    let mu = plan.steps / plan.rollouts.max(1);
    let mut last = Metrics::new();
    let mut checkpoint = None;
    for r in first..plan.rollouts {
        let batch = plan.batch(r, cfg.seed, cfg.data.shuffle);
        let (m, groups) = match cfg.mode {
            Mode::Grpo => trainer.grpo_step(&batch)?,
            Mode::Sft => (trainer.sft_step(&batch)?, Vec::new()),
        };
        log.step(trainer.step, &m)?;
        let log_now = trainer.step.is_multiple_of(cfg.train.logging_steps.max(1)) || trainer.step == mu;
        if let Some(g) = groups.first().filter(|_| log_now) {
            let names = trainer.rewards.names();
            let samples: Vec<_> = g
                .samples
                .iter()
                .zip(&g.per_fn)
                .zip(&g.rewards)
                .map(|((s, per), total)| {
                    let per: serde_json::Map<String, serde_json::Value> =
                        names.iter().zip(per).map(|(n, v)| (n.to_string(), json!(v))).collect();
                    json!({"completion": s.text, "reward": total, "rewards": per, "finish": s.finish})
                })
                .collect();
            log.sample(json!({"step": trainer.step, "prompt": g.prompt.text, "samples": samples}))?;
        }
        on_step(&m, trainer.step, plan.steps);
        let save_now = cfg.train.save_steps > 0 && (r + 1) * mu % cfg.train.save_steps < mu;
        if save_now || r + 1 == plan.rollouts {
            checkpoint = Some(trainer.save_checkpoint(r + 1)?);
            prune(&out, cfg.train.save_total_limit)?;
        }
        last = m;
    }
    let checkpoint = match checkpoint {
        Some(c) => c,
        None => trainer.save_checkpoint(plan.rollouts)?,
    };
    let png = out.join("training.png");
    crate::plot::plot_run(&out.join("metrics.jsonl"), &png)?;
    tracing::info!("plot: {}", png.display());
    if cfg.finetune == Finetune::Lora {
        tracing::info!("adapter (PEFT layout): {}", checkpoint.join("adapter").display());
    }
    Ok(RunSummary { steps: trainer.step, checkpoint, last })
}
