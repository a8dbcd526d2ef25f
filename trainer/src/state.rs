//! The training state shared by GRPO and SFT: the policy (LoRA adapters on a frozen base, or full weights),
//! AdamW, the learning-rate schedule, global-norm clipping, and checkpoint save / resume.

use std::path::PathBuf;

use burn::module::{AutodiffModule, Module};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use repic_data::{PromptBuilder, Record};
use repic_models::{Checkpoint, QwenVl};
use repic_rewards::RewardSet;

use crate::TrainError;
use crate::checkpoint::{Adam, TrainerState, checkpoint_dir, load_optimizer, param_ids, read_state, save_optimizer};
use crate::config::{Finetune, OptimConfig, TrainConfig};
use crate::grad_clip::clip_global_norm;
use crate::rollout::mix;
use crate::schedule::learning_rate;

/// The policy, its optimizer, the data and the schedule: what GRPO and SFT steps share.
pub struct Trainer<B: AutodiffBackend> {
    /// The resolved config.
    pub cfg: TrainConfig,
    /// The policy with its tokenizer and processor.
    pub ckpt: Checkpoint<B>,
    /// A frozen copy of the starting weights (full fine-tuning); with LoRA the reference is the policy with its
    /// adapters off.
    pub(crate) reference: Option<QwenVl<B::InnerBackend>>,
    pub(crate) optim: Adam<B>,
    /// The reward functions.
    pub rewards: RewardSet,
    /// Training records (after the ablation's filter).
    pub records: Vec<Record>,
    pub(crate) builder: PromptBuilder,
    pub(crate) image_root: PathBuf,
    /// Optimizer steps taken.
    pub step: usize,
    /// Optimizer steps of the whole run (for the schedule).
    pub total_steps: usize,
    pub(crate) warmup: usize,
    pub(crate) device: B::Device,
}

impl<B: AutodiffBackend> Trainer<B> {
    /// Set up from a loaded checkpoint: attach adapters (or unfreeze the language model), build the optimizer.
    pub fn new(
        cfg: TrainConfig,
        mut ckpt: Checkpoint<B>,
        records: Vec<Record>,
        total_steps: usize,
        device: B::Device,
    ) -> Result<Self, TrainError> {
        if let Some(p) = cfg.data.min_pixels {
            ckpt.processor.min_pixels = p;
        }
        if let Some(p) = cfg.data.max_pixels {
            ckpt.processor.max_pixels = p;
        }
        ckpt.processor.validate().map_err(|m| TrainError::Run(format!("data.min_pixels / data.max_pixels: {m}")))?;
        let reference = match cfg.finetune {
            Finetune::Lora => {
                // Fresh adapters draw from the backend's generator: seed it, so that one seed gives one run.
                B::seed(&device, mix(cfg.seed ^ 0x10AA, 0));
                let names = ckpt.model.attach_lora(&cfg.lora, &device)?;
                tracing::info!("LoRA r={} alpha={} on {} layers", cfg.lora.r, cfg.lora.alpha, names.len());
                None
            }
            Finetune::Full => {
                freeze_vision_if_asked(&mut ckpt.model, &cfg);
                let needs_reference = cfg.mode == crate::config::Mode::Grpo && cfg.grpo.beta > 0.0;
                needs_reference.then(|| ckpt.model.valid())
            }
        };
        let o = &cfg.optim;
        let optim = adam(o);
        let rewards = RewardSet::from_config(&cfg.rewards)?;
        let warmup = crate::schedule::warmup_steps(o.warmup_steps, o.warmup_ratio, total_steps);
        let image_root = cfg.image_root();
        Ok(Trainer {
            builder: PromptBuilder::new(cfg.seed),
            cfg,
            ckpt,
            reference,
            optim,
            rewards,
            records,
            image_root,
            step: 0,
            total_steps,
            warmup,
            device,
        })
    }
}

/// Full fine-tuning: stop the vision tower's gradients when the config keeps it frozen.
fn freeze_vision_if_asked<B: AutodiffBackend>(model: &mut QwenVl<B>, cfg: &TrainConfig) {
    if cfg.freeze_vision {
        model.visual = model.visual.clone().no_grad();
    }
}

/// AdamW with the config's betas, epsilon and decoupled weight decay.
fn adam<B: AutodiffBackend>(o: &OptimConfig) -> Adam<B> {
    AdamWConfig::new()
        .with_beta_1(o.adam_beta1 as f32)
        .with_beta_2(o.adam_beta2 as f32)
        .with_epsilon(o.adam_epsilon as f32)
        .with_weight_decay(o.weight_decay as f32)
        .init::<B, QwenVl<B>>()
}

impl<B: AutodiffBackend> Trainer<B> {
    /// Write `output_dir/checkpoint-<step>/` (adapter or model, optimizer, state, config) atomically; `rollouts`
    /// is the number of rollout phases done.
    pub fn save_checkpoint(&self, rollouts: usize) -> Result<PathBuf, TrainError> {
        let dir = checkpoint_dir(&self.cfg.output_dir, self.step);
        let state = TrainerState {
            step: self.step,
            rollouts,
            total_steps: self.total_steps,
            param_order: param_ids::<B, QwenVl<B>>(&self.ckpt.model).iter().map(|p| p.val()).collect(),
        };
        repic_models::hf::save::write_dir_atomically(&dir, true, |stage| -> Result<(), TrainError> {
            let base = self.cfg.model.to_string_lossy();
            match self.cfg.finetune {
                Finetune::Lora => {
                    repic_models::save_peft(&self.ckpt.model, &self.cfg.lora, &base, &stage.join("adapter"), false)?
                }
                Finetune::Full => {
                    repic_models::save_qwen_vl(&self.ckpt.model, &self.cfg.model, &stage.join("model"), false)?
                }
            }
            let cfg_path = stage.join("config.toml");
            std::fs::write(&cfg_path, self.cfg.to_toml()).map_err(|e| TrainError::Io { path: cfg_path, source: e })?;
            save_optimizer(&self.optim, &state, stage)
        })?;
        Ok(dir)
    }

    /// Continue from a checkpoint folder: its weights, optimizer state and step. Returns its state.
    pub fn resume_from(&mut self, dir: &std::path::Path) -> Result<TrainerState, TrainError> {
        let state = read_state(dir)?;
        match self.cfg.finetune {
            Finetune::Lora => {
                repic_models::load_peft(&mut self.ckpt.model, &dir.join("adapter"), &self.device)?;
            }
            Finetune::Full => {
                let mut model = QwenVl::<B>::load(&dir.join("model"), &self.device)?;
                freeze_vision_if_asked(&mut model, &self.cfg);
                self.ckpt.model = model;
            }
        }
        let fresh = adam(&self.cfg.optim);
        let optim = std::mem::replace(&mut self.optim, fresh);
        self.optim = load_optimizer(optim, &self.ckpt.model, dir, &state, &self.device)?;
        self.step = state.step;
        Ok(state)
    }
}

impl<B: AutodiffBackend> Trainer<B> {
    /// Seed the backend's generator for this optimizer step (dropout), so that a resumed run repeats an
    /// uninterrupted one.
    pub(crate) fn seed_step(&self) {
        B::seed(&self.device, mix(self.cfg.seed ^ 0xD409, self.step as u64));
    }

    /// Clip the accumulated gradients to the global norm, take an AdamW step at the scheduled learning rate and
    /// count it. Returns (gradient norm before clipping, learning rate). A non-finite `loss` or gradient norm
    /// stops training with an error naming the step, before the weights change (so no checkpoint holds them).
    pub(crate) fn apply(&mut self, loss: f64, mut grads: GradientsParams) -> Result<(f64, f64), TrainError> {
        let grad_norm = clip_global_norm(&self.ckpt.model, &mut grads, self.cfg.optim.max_grad_norm);
        if !loss.is_finite() || !grad_norm.is_finite() {
            return Err(TrainError::Run(format!(
                "step {}: the loss is {loss} and the gradient norm {grad_norm}; stopping before the update (check \
                 optim.learning_rate, optim.adam_epsilon and the data)",
                self.step + 1
            )));
        }
        let o = &self.cfg.optim;
        let lr = learning_rate(o.lr_scheduler_type, o.learning_rate, self.step, self.total_steps, self.warmup);
        self.ckpt.model = self.optim.step(lr, self.ckpt.model.clone(), grads);
        self.step += 1;
        Ok((grad_norm, lr))
    }
}
