//! The training config: TOML with TRL's names for the GRPO knobs; every section rejects unknown keys by name.
//! `--set key=value` overrides are applied to the TOML tree before it is checked.

use std::path::{Path, PathBuf};

use repic_models::LoraConfig;
use repic_rewards::RewardConfig;
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::loss::{LossType, ScaleRewards};

/// What a run trains.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Group Relative Policy Optimization with the reward set.
    #[default]
    Grpo,
    /// Supervised fine-tuning on the records' reference answers (cross-entropy on the assistant tokens).
    Sft,
}

/// Which weights train.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finetune {
    /// LoRA adapters from `[lora]` on a frozen base; the reference policy is the base (adapters off).
    #[default]
    Lora,
    /// Every weight of the language model (and of the vision tower unless `freeze_vision`); the reference is a
    /// frozen copy.
    Full,
}

/// A whole training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// `grpo` or `sft`.
    #[serde(default)]
    pub mode: Mode,
    /// Hugging Face checkpoint folder of the starting model.
    pub model: PathBuf,
    /// Where checkpoints, metrics and logs go.
    pub output_dir: PathBuf,
    /// Seed of data order, prompts, sampling and adapter initialisation.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// `lora` or `full`.
    #[serde(default)]
    pub finetune: Finetune,
    /// Keep the vision tower (patch embedding, blocks, merger) fixed, as RePIC does. `false` trains it too
    /// (full fine-tuning only: adapters go on the language model), e.g. for a model trained from scratch.
    #[serde(default = "default_true")]
    pub freeze_vision: bool,
    /// LoRA settings (used with `finetune = "lora"`).
    #[serde(default)]
    pub lora: LoraConfig,
    /// Training data.
    pub data: DataConfig,
    /// Reward set, weights and options (rewards.md).
    #[serde(default)]
    pub rewards: RewardConfig,
    /// GRPO knobs.
    #[serde(default)]
    pub grpo: GrpoConfig,
    /// SFT knobs.
    #[serde(default)]
    pub sft: SftConfig,
    /// Optimizer and schedule.
    #[serde(default)]
    pub optim: OptimConfig,
    /// Batch shape, length and logging / checkpoint intervals.
    #[serde(default)]
    pub train: LoopConfig,
}

fn default_seed() -> u64 {
    42
}

fn default_true() -> bool {
    true
}

/// Training records and their images.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// RePIC records (JSON array or JSONL).
    pub train: PathBuf,
    /// Folder the records' relative image paths start from (default: the records file's folder).
    #[serde(default)]
    pub image_root: Option<PathBuf>,
    /// Shuffle the records every epoch (seeded).
    #[serde(default = "yes")]
    pub shuffle: bool,
    /// Override the checkpoint processor's `min_pixels`.
    #[serde(default)]
    pub min_pixels: Option<usize>,
    /// Override the checkpoint processor's `max_pixels`.
    #[serde(default)]
    pub max_pixels: Option<usize>,
}

fn yes() -> bool {
    true
}

/// How SFT turns per-token cross-entropies into the loss of an optimizer step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SftAverage {
    /// Mean over every target token of the step (TRL's SFTTrainer): long answers weigh more.
    #[default]
    Tokens,
    /// Mean over each record's target tokens, then over records: a one-word answer (OCT's yes/no) weighs as
    /// much as a long caption.
    Sequences,
}

/// SFT settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SftConfig {
    /// `tokens` or `sequences`.
    pub loss_average: SftAverage,
}

/// GRPO settings, TRL's names (grpo.md).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpoConfig {
    /// Completions per prompt (G).
    pub num_generations: usize,
    /// Sampling temperature of the rollouts (log-probs use the same).
    pub temperature: f64,
    /// Nucleus sampling (1.0: off).
    pub top_p: f64,
    /// Top-k sampling (0: off).
    pub top_k: usize,
    /// Repetition penalty (1.0: off).
    pub repetition_penalty: f64,
    /// Most tokens per completion.
    pub max_completion_length: usize,
    /// End-of-sequence cannot be sampled before this many tokens (TRL: `generation_kwargs = {"min_new_tokens":
    /// N}`); equal to `max_completion_length` it makes every completion that long (benchmarks).
    pub min_completion_length: usize,
    /// KL coefficient (0: no reference pass).
    pub beta: f64,
    /// Lower clip range.
    pub epsilon: f64,
    /// Upper clip range (default: `epsilon`).
    pub epsilon_high: Option<f64>,
    /// `grpo`, `bnpo`, `dr_grpo` or `dapo`.
    pub loss_type: LossType,
    /// `group`, `batch` or `none`.
    pub scale_rewards: ScaleRewards,
    /// Updates per batch of rollouts (mu).
    pub num_iterations: usize,
    /// Completions without EOS get zero loss weight.
    pub mask_truncated_completions: bool,
    /// Completion rows per output-projection chunk when computing log-probs.
    pub logprob_chunk: usize,
    /// Stop strings besides the checkpoint's EOS tokens.
    pub stop_strings: Vec<String>,
}

impl Default for GrpoConfig {
    /// RePIC's settings.
    fn default() -> Self {
        GrpoConfig {
            num_generations: 8,
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            repetition_penalty: 1.0,
            max_completion_length: 256,
            min_completion_length: 0,
            beta: 0.04,
            epsilon: 0.2,
            epsilon_high: None,
            loss_type: LossType::Grpo,
            scale_rewards: ScaleRewards::Group,
            num_iterations: 1,
            mask_truncated_completions: false,
            logprob_chunk: 1024,
            stop_strings: Vec::new(),
        }
    }
}

/// How the learning rate moves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Linear warmup, then linear decay to 0 at the last step (transformers' `linear`).
    #[default]
    Linear,
    /// Linear warmup, then constant.
    Constant,
}

/// AdamW and the schedule (transformers' names).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// Peak learning rate.
    pub learning_rate: f64,
    /// AdamW beta1.
    pub adam_beta1: f64,
    /// AdamW beta2.
    pub adam_beta2: f64,
    /// AdamW epsilon.
    pub adam_epsilon: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Clip the global gradient norm to this (0: no clipping).
    pub max_grad_norm: f64,
    /// `linear` or `constant`.
    pub lr_scheduler_type: Schedule,
    /// Warmup steps (overrides `warmup_ratio` when > 0).
    pub warmup_steps: usize,
    /// Warmup as a share of all steps.
    pub warmup_ratio: f64,
}

impl Default for OptimConfig {
    /// RePIC's settings: lr 1e-5, linear decay, no warmup, clip 1.0, no weight decay.
    fn default() -> Self {
        OptimConfig {
            learning_rate: 1e-5,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_epsilon: 1e-8,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            lr_scheduler_type: Schedule::Linear,
            warmup_steps: 0,
            warmup_ratio: 0.0,
        }
    }
}

/// Batch shape, length of the run, logging and checkpoints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoopConfig {
    /// Prompts (groups) per micro-batch.
    pub prompts_per_step: usize,
    /// Micro-batches per optimizer step.
    pub gradient_accumulation_steps: usize,
    /// Passes over the records.
    pub num_train_epochs: usize,
    /// Stop after this many optimizer steps (0: run the epochs).
    pub max_steps: usize,
    /// Metrics every this many steps (a sample table too).
    pub logging_steps: usize,
    /// Checkpoint every this many steps (0: only at the end).
    pub save_steps: usize,
    /// Checkpoints kept (oldest removed first; 0: all).
    pub save_total_limit: usize,
}

impl Default for LoopConfig {
    /// RePIC's shape: 2 prompts x 8 completions per optimizer step, 2 epochs.
    fn default() -> Self {
        LoopConfig {
            prompts_per_step: 2,
            gradient_accumulation_steps: 1,
            num_train_epochs: 2,
            max_steps: 0,
            logging_steps: 1,
            save_steps: 0,
            save_total_limit: 2,
        }
    }
}

impl TrainConfig {
    /// Parse TOML text (`origin` names it in errors), applying `overrides` (`key.path=value`, the value read
    /// as TOML, or as a string when it is not valid TOML) first; then check ranges.
    pub fn parse(src: &str, origin: &Path, overrides: &[String]) -> Result<Self, TrainError> {
        let err = |msg: String| TrainError::Config { path: origin.into(), msg };
        let mut tree: toml::Table = toml::from_str(src).map_err(|e| err(e.to_string()))?;
        for o in overrides {
            let (key, value) = o.split_once('=').ok_or_else(|| err(format!("override `{o}` is not key=value")))?;
            let value = toml::from_str::<toml::Table>(&format!("v = {value}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or_else(|| toml::Value::String(value.to_string()));
            set_path(&mut tree, key.trim(), value).map_err(|m| err(format!("override `{o}`: {m}")))?;
        }
        let cfg: TrainConfig = tree.try_into().map_err(|e: toml::de::Error| err(e.to_string()))?;
        cfg.validate().map_err(err)?;
        Ok(cfg)
    }

    /// Read and parse a config file; relative `model`, `output_dir` and data paths stay relative to the
    /// current directory (as the user typed them).
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self, TrainError> {
        let src = std::fs::read_to_string(path).map_err(|e| TrainError::Io { path: path.into(), source: e })?;
        Self::parse(&src, path, overrides)
    }

    /// The resolved config as TOML (written next to checkpoints).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Check ranges; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        let (g, o) = (&self.grpo, &self.optim);
        let finite = |x: f64| x.is_finite();
        let grpo = self.mode == Mode::Grpo;
        let checks: [(bool, &str); 22] = [
            // TRL refuses groups of one: the group-normalised advantage of a single sample is always 0.
            (!grpo || g.num_generations >= 2, "grpo.num_generations must be at least 2 (advantages compare samples)"),
            (finite(g.temperature) && g.temperature > 0.0, "grpo.temperature must be a finite number > 0"),
            (g.top_p > 0.0 && g.top_p <= 1.0, "grpo.top_p must be in (0, 1]"),
            (finite(g.repetition_penalty) && g.repetition_penalty > 0.0, "grpo.repetition_penalty must be > 0"),
            (g.max_completion_length >= 1, "grpo.max_completion_length must be at least 1"),
            (
                g.min_completion_length <= g.max_completion_length,
                "grpo.min_completion_length must be at most grpo.max_completion_length",
            ),
            (finite(g.beta) && g.beta >= 0.0, "grpo.beta must be a finite number >= 0"),
            (
                finite(g.epsilon) && g.epsilon >= 0.0 && g.epsilon_high.is_none_or(|e| finite(e) && e >= 0.0),
                "grpo.epsilon(_high) must be finite and >= 0",
            ),
            (g.num_iterations >= 1, "grpo.num_iterations must be at least 1"),
            (g.logprob_chunk >= 1, "grpo.logprob_chunk must be at least 1"),
            (finite(o.learning_rate) && o.learning_rate > 0.0, "optim.learning_rate must be a finite number > 0"),
            ((0.0..1.0).contains(&o.adam_beta1), "optim.adam_beta1 must be in [0, 1)"),
            ((0.0..1.0).contains(&o.adam_beta2), "optim.adam_beta2 must be in [0, 1)"),
            (finite(o.adam_epsilon) && o.adam_epsilon > 0.0, "optim.adam_epsilon must be a finite number > 0"),
            (finite(o.weight_decay) && o.weight_decay >= 0.0, "optim.weight_decay must be a finite number >= 0"),
            (finite(o.max_grad_norm) && o.max_grad_norm >= 0.0, "optim.max_grad_norm must be finite and >= 0 (0: off)"),
            ((0.0..1.0).contains(&o.warmup_ratio), "optim.warmup_ratio must be in [0, 1)"),
            (self.train.prompts_per_step >= 1, "train.prompts_per_step must be at least 1"),
            (self.train.gradient_accumulation_steps >= 1, "train.gradient_accumulation_steps must be at least 1"),
            (!self.output_dir.as_os_str().is_empty(), "output_dir must not be empty"),
            (self.data.min_pixels.is_none_or(|p| p >= 1), "data.min_pixels must be at least 1"),
            (
                self.data.min_pixels.zip(self.data.max_pixels).is_none_or(|(lo, hi)| lo <= hi),
                "data.min_pixels must be at most data.max_pixels",
            ),
        ];
        if let Some((_, msg)) = checks.iter().find(|(ok, _)| !ok) {
            return Err((*msg).into());
        }
        if self.train.num_train_epochs == 0 && self.train.max_steps == 0 {
            return Err("train.num_train_epochs and train.max_steps are both 0".into());
        }
        if self.finetune == Finetune::Lora {
            self.lora.matcher().map(drop)?;
            if !self.freeze_vision {
                return Err(
                    "freeze_vision = false needs finetune = \"full\" (LoRA adapters go on the language model only)"
                        .into(),
                );
            }
        }
        Ok(())
    }

    /// The folder the records' image paths start from: `data.image_root`, else the records file's folder.
    pub fn image_root(&self) -> PathBuf {
        self.data.image_root.clone().unwrap_or_else(|| self.data.train.parent().map(PathBuf::from).unwrap_or_default())
    }

    /// The upper clip range.
    pub fn epsilon_high(&self) -> f64 {
        self.grpo.epsilon_high.unwrap_or(self.grpo.epsilon)
    }
}

/// Set `a.b.c` in a TOML table, creating tables on the way.
fn set_path(tree: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), String> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().filter(|k| !k.is_empty()).ok_or("empty key")?;
    let mut table = tree;
    for p in parts {
        let entry = table.entry(p.to_string()).or_insert_with(|| toml::Value::Table(Default::default()));
        table = entry.as_table_mut().ok_or_else(|| format!("`{p}` is not a table"))?;
    }
    table.insert(last.to_string(), value);
    Ok(())
}
