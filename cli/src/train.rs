//! `repic train`: GRPO (or SFT) on a Hugging Face checkpoint folder and RePIC-format records, from a TOML
//! config, with a progress bar (step, reward, KL, ETA); metrics, samples, TensorBoard events and checkpoints go
//! to the config's `output_dir`.

use std::path::PathBuf;

use anyhow::Context;
use burn::backend::Autodiff;
use indicatif::{ProgressBar, ProgressStyle};
use repic_models::{DefaultBackend, default_device};
use repic_trainer::{Metrics, TrainConfig};

/// Arguments of `repic train`.
#[derive(clap::Args)]
pub struct Args {
    /// Training config (TOML; see configs/).
    #[arg(long)]
    config: PathBuf,
    /// Continue from the newest complete checkpoint in the config's output_dir.
    #[arg(long)]
    resume: bool,
    /// Override a config key, e.g. `--set grpo.beta=0.0 --set model=/data/Qwen2.5-VL-7B-Instruct` (repeatable;
    /// the value is read as TOML, else as a string).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
}

/// A progress bar that appears with the first step (when the total is known).
pub struct StepBar(Option<ProgressBar>);

impl StepBar {
    /// No bar yet.
    pub fn new() -> Self {
        StepBar(None)
    }

    /// Show step `step` of `total` with the step's reward and KL.
    pub fn update(&mut self, m: &Metrics, step: usize, total: usize) {
        let bar = self.0.get_or_insert_with(|| {
            let b = ProgressBar::new(total as u64);
            b.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b
        });
        let get = |k: &str| m.get(k).copied().unwrap_or(f64::NAN);
        bar.set_position(step as u64);
        bar.set_message(format!("reward {:.3} kl {:.4} loss {:.4}", get("reward"), get("kl"), get("loss")));
    }

    /// Remove the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

/// Run `repic train`.
pub fn run(a: Args) -> anyhow::Result<()> {
    let cfg = TrainConfig::load(&a.config, &a.sets)?;
    let mut bar = StepBar::new();
    let out = cfg.output_dir.clone();
    let summary = repic_trainer::train::<Autodiff<DefaultBackend>>(cfg, a.resume, default_device(), &mut |m, s, t| {
        bar.update(m, s, t)
    })
    .with_context(|| format!("training into {}", out.display()))?;
    bar.finish();
    println!("{} steps; last checkpoint {}", summary.steps, summary.checkpoint.display());
    println!("metrics: {} (TensorBoard: {})", out.join("metrics.jsonl").display(), out.join("tensorboard").display());
    Ok(())
}
