//! One GRPO step (grpo.md): roll out a group per prompt with the engine, score, compute advantages, then
//! `num_iterations` optimizer updates of the clipped objective with the k3 KL to the reference, accumulated over
//! micro-batches of `prompts_per_step` groups.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use burn::module::{AutodiffModule, Module};
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use repic_data::{PromptBuilder, Record};
use repic_models::{Checkpoint, Engine, QwenVl, ScoreOptions};
use repic_rewards::RewardSet;

use crate::TrainError;
use crate::checkpoint::{Adam, TrainerState, checkpoint_dir, load_optimizer, param_ids, read_state, save_optimizer};
use crate::clip::clip_global_norm;
use crate::config::{Finetune, OptimConfig, TrainConfig};
use crate::loss::{Normaliser, Objective, advantages, aggregate, std_unbiased, token_terms};
use crate::rollout::{Group, mix, prepare, roll_out, rollout_options};
use crate::schedule::learning_rate;

/// Metrics of one step, by TRL's names.
pub type Metrics = BTreeMap<String, f64>;

/// The policy, its optimizer and everything a GRPO step needs.
pub struct Grpo<B: AutodiffBackend> {
    /// The resolved config.
    pub cfg: TrainConfig,
    /// The policy with its tokenizer and processor.
    pub ckpt: Checkpoint<B>,
    /// A frozen copy of the starting weights (full fine-tuning); with LoRA the reference is the policy with its
    /// adapters off.
    reference: Option<QwenVl<B::InnerBackend>>,
    optim: Adam<B>,
    /// The reward functions.
    pub rewards: RewardSet,
    /// Training records (after the ablation's filter).
    pub records: Vec<Record>,
    builder: PromptBuilder,
    image_root: PathBuf,
    /// Optimizer steps taken.
    pub step: usize,
    /// Optimizer steps of the whole run (for the schedule).
    pub total_steps: usize,
    warmup: usize,
    device: B::Device,
}

impl<B: AutodiffBackend> Grpo<B> {
    /// Set up from a loaded checkpoint: attach adapters (or unfreeze the language model), build the optimizer.
    pub fn new(
        cfg: TrainConfig,
        mut ckpt: Checkpoint<B>,
        records: Vec<Record>,
        total_steps: usize,
        device: B::Device,
    ) -> Result<Self, TrainError> {
        let reference = match cfg.finetune {
            Finetune::Lora => {
                let names = ckpt.model.attach_lora(&cfg.lora, &ckpt.cfg, &device)?;
                tracing::info!("LoRA r={} alpha={} on {} layers", cfg.lora.r, cfg.lora.alpha, names.len());
                None
            }
            Finetune::Full => {
                ckpt.model.visual = ckpt.model.visual.clone().no_grad();
                Some(ckpt.model.valid())
            }
        };
        let o = &cfg.optim;
        let optim = adam(o);
        let rewards = RewardSet::from_config(&cfg.rewards)?;
        let warmup = crate::schedule::warmup_steps(o.warmup_steps, o.warmup_ratio, total_steps);
        let image_root = cfg
            .data
            .image_root
            .clone()
            .unwrap_or_else(|| cfg.data.train.parent().map(PathBuf::from).unwrap_or_default());
        Ok(Grpo {
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

    /// Roll out one group per `(record index, prompt key)` and score them, with the current policy.
    pub fn roll_out(&self, batch: &[(usize, u64)]) -> Result<Vec<Group>, TrainError> {
        let g = &self.cfg.grpo;
        let inner = self.ckpt.model.valid();
        let engine = Engine::new(&inner, &self.ckpt.cfg, &self.device).with_tokenizer(&self.ckpt.tokenizer);
        let mut groups = Vec::with_capacity(batch.len());
        for (gi, &(index, key)) in batch.iter().enumerate() {
            let prompt = prepare(&self.ckpt, &self.records, index, key, &self.builder, &self.image_root)?;
            let seed = mix(self.cfg.seed, ((self.step as u64) << 20) | gi as u64);
            let opts = rollout_options(g, &self.ckpt.stop_tokens, seed);
            groups.push(roll_out(&engine, prompt, &self.records[index], &self.rewards, g.num_generations, &opts)?);
        }
        Ok(groups)
    }

    /// One rollout phase and `num_iterations` optimizer updates on its groups. Returns the metrics of the
    /// last update and the groups (for sample logs).
    pub fn train_step(&mut self, batch: &[(usize, u64)]) -> Result<(Metrics, Vec<Group>), TrainError> {
        let g = self.cfg.grpo.clone();
        let t0 = Instant::now();
        let groups = self.roll_out(batch)?;
        let t_generate = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let rewards: Vec<f32> = groups.iter().flat_map(|gr| gr.rewards.iter().copied()).collect();
        let adv = advantages(&rewards, g.num_generations, g.scale_rewards);
        // Completion masks on the host: tokens up to and including EOS; truncated ones dropped when asked.
        let masks: Vec<(Vec<f32>, usize)> =
            groups.iter().map(|gr| completion_mask(gr, g.mask_truncated_completions)).collect();
        let global_tokens: f64 = masks.iter().map(|(m, _)| m.iter().map(|&x| f64::from(x)).sum::<f64>()).sum();
        let score = ScoreOptions { temperature: g.temperature, chunk: g.logprob_chunk };
        let inner = self.ckpt.model.valid();
        let old: Vec<Option<Tensor<B::InnerBackend, 2>>> = if g.num_iterations > 1 {
            let e = Engine::new(&inner, &self.ckpt.cfg, &self.device);
            groups
                .iter()
                .map(|gr| e.score_group(&gr.prompt.input, &completions(gr), score).map(|s| Some(s.logprobs)))
                .collect::<Result<_, _>>()?
        } else {
            vec![None; groups.len()]
        };
        let refs: Vec<Option<Tensor<B::InnerBackend, 2>>> = if g.beta > 0.0 {
            let base = match &self.reference {
                Some(r) => r.clone(),
                None => inner.without_lora(),
            };
            let e = Engine::new(&base, &self.ckpt.cfg, &self.device);
            groups
                .iter()
                .map(|gr| e.score_group(&gr.prompt.input, &completions(gr), score).map(|s| Some(s.logprobs)))
                .collect::<Result<_, _>>()?
        } else {
            vec![None; groups.len()]
        };
        drop(inner);
        let t_logprobs_ref = t1.elapsed().as_secs_f64();
        let obj = Objective { beta: g.beta, epsilon: g.epsilon, epsilon_high: self.cfg.epsilon_high() };
        let accumulation = self.cfg.train.gradient_accumulation_steps;
        let per_micro = batch.len().div_ceil(accumulation).max(1);
        let mut metrics = Metrics::new();
        let t2 = Instant::now();
        for _ in 0..g.num_iterations {
            // Dropout draws from the backend's generator: seeding it per step makes a resumed run identical.
            B::seed(&self.device, mix(self.cfg.seed ^ 0xD409, self.step as u64));
            let mut acc = GradientsAccumulator::<QwenVl<B>>::new();
            let mut loss_sum = 0.0;
            let mut token_stats = TokenStats::default();
            let micros: Vec<std::ops::Range<usize>> =
                (0..groups.len()).step_by(per_micro).map(|s| s..(s + per_micro).min(groups.len())).collect();
            for range in &micros {
                let seqs = range.len() * g.num_generations;
                let tokens: f64 =
                    masks[range.clone()].iter().map(|(m, _)| m.iter().map(|&x| f64::from(x)).sum::<f64>()).sum();
                let norm = Normaliser {
                    loss_type: g.loss_type,
                    seqs,
                    tokens,
                    global_tokens,
                    max_completion_length: g.max_completion_length,
                    accumulation: micros.len(),
                };
                let engine = Engine::new(&self.ckpt.model, &self.ckpt.cfg, &self.device);
                let mut total: Option<Tensor<B, 1>> = None;
                for gi in range.clone() {
                    let gr = &groups[gi];
                    let scored = engine.score_group(&gr.prompt.input, &completions(gr), score)?;
                    let (mask, width) = &masks[gi];
                    let dims = [g.num_generations, *width];
                    let mask = Tensor::<B, 2>::from_data(TensorData::new(mask.clone(), dims), &self.device);
                    let a = &adv[gi * g.num_generations..(gi + 1) * g.num_generations];
                    let a_t = Tensor::<B, 1>::from_data(TensorData::new(a.to_vec(), [a.len()]), &self.device);
                    let terms = token_terms(
                        scored.logprobs,
                        old[gi].clone().map(Tensor::from_inner),
                        refs[gi].clone().map(Tensor::from_inner),
                        a_t,
                        obj,
                    );
                    token_stats.add(&terms, &masks[gi].0, a, obj)?;
                    let part = aggregate(terms.loss, mask, &norm);
                    total = Some(match total {
                        Some(t) => t + part,
                        None => part,
                    });
                }
                let total = total.ok_or_else(|| TrainError::Run("an empty micro-batch".into()))?;
                loss_sum += f64::from(total.clone().into_scalar().elem::<f32>());
                let grads = GradientsParams::from_grads(total.backward(), &self.ckpt.model);
                acc.accumulate(&self.ckpt.model, grads);
            }
            let mut grads = acc.grads();
            let grad_norm = clip_global_norm(&self.ckpt.model, &mut grads, self.cfg.optim.max_grad_norm);
            let o = &self.cfg.optim;
            let lr = learning_rate(o.lr_scheduler_type, o.learning_rate, self.step, self.total_steps, self.warmup);
            self.ckpt.model = self.optim.step(lr, self.ckpt.model.clone(), grads);
            self.step += 1;
            metrics = token_stats.into_metrics();
            metrics.insert("loss".into(), loss_sum);
            metrics.insert("grad_norm".into(), grad_norm);
            metrics.insert("learning_rate".into(), lr);
        }
        let t_update = t2.elapsed().as_secs_f64();
        reward_metrics(&mut metrics, &groups, &rewards, &self.rewards.names(), g.num_generations);
        let new_tokens: usize = groups.iter().flat_map(|gr| gr.samples.iter().map(|s| s.tokens.len())).sum();
        metrics.insert("timing/generate".into(), t_generate);
        metrics.insert("timing/logprobs".into(), t_logprobs_ref);
        metrics.insert("timing/update".into(), t_update);
        metrics.insert("perf/tokens_per_second".into(), new_tokens as f64 / t_generate.max(1e-9));
        Ok((metrics, groups))
    }
}

use burn::tensor::ElementConversion;

/// AdamW with the config's betas, epsilon and decoupled weight decay.
fn adam<B: AutodiffBackend>(o: &OptimConfig) -> Adam<B> {
    AdamWConfig::new()
        .with_beta_1(o.adam_beta1 as f32)
        .with_beta_2(o.adam_beta2 as f32)
        .with_epsilon(o.adam_epsilon as f32)
        .with_weight_decay(o.weight_decay as f32)
        .init::<B, QwenVl<B>>()
}

impl<B: AutodiffBackend> Grpo<B> {
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
        repic_models::save::write_dir_atomically(&dir, true, |stage| -> Result<(), TrainError> {
            let base = self.cfg.model.to_string_lossy();
            match self.cfg.finetune {
                Finetune::Lora => {
                    repic_models::save_peft(&self.ckpt.model, &self.cfg.lora, &base, &stage.join("adapter"), false)?
                }
                Finetune::Full => repic_models::save_qwen_vl(
                    &self.ckpt.model,
                    &self.ckpt.cfg,
                    &self.cfg.model,
                    &stage.join("model"),
                    false,
                )?,
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
                let (mut model, _) = repic_models::load_qwen_vl::<B>(&dir.join("model"), &self.device)?;
                model.visual = model.visual.clone().no_grad();
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

/// The completion token ids of a group.
fn completions(gr: &Group) -> Vec<Vec<u32>> {
    gr.samples.iter().map(|s| s.tokens.clone()).collect()
}

/// Row-major `[G, C]` mask of a group's completions (C its longest), and C.
fn completion_mask(gr: &Group, drop_truncated: bool) -> (Vec<f32>, usize) {
    let width = gr.samples.iter().map(|s| s.tokens.len()).max().unwrap_or(0);
    let mut m = Vec::with_capacity(gr.samples.len() * width);
    for (i, s) in gr.samples.iter().enumerate() {
        let on = !(drop_truncated && gr.truncated(i));
        m.extend((0..width).map(|j| if on && j < s.tokens.len() { 1.0 } else { 0.0 }));
    }
    (m, width)
}

/// Masked token statistics of one update: KL and clip ratios (TRL's `clip_ratio/*`).
#[derive(Default)]
struct TokenStats {
    tokens: f64,
    kl: f64,
    has_kl: bool,
    low: f64,
    high: f64,
}

impl TokenStats {
    fn add<B: burn::tensor::backend::Backend>(
        &mut self,
        t: &crate::loss::TokenTerms<B>,
        mask: &[f32],
        adv: &[f32],
        obj: Objective,
    ) -> Result<(), TrainError> {
        let host = |x: Tensor<B, 2>| -> Result<Vec<f32>, TrainError> {
            x.into_data().convert::<f32>().to_vec::<f32>().map_err(|e| TrainError::Run(format!("{e:?}")))
        };
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

    fn into_metrics(self) -> Metrics {
        let n = self.tokens.max(1.0);
        let mut m = Metrics::new();
        m.insert("kl".into(), if self.has_kl { self.kl / n } else { 0.0 });
        m.insert("clip_ratio/low_mean".into(), self.low / n);
        m.insert("clip_ratio/high_mean".into(), self.high / n);
        m.insert("clip_ratio/region_mean".into(), (self.low + self.high) / n);
        m
    }
}

/// Reward and completion-length metrics of a step.
fn reward_metrics(m: &mut Metrics, groups: &[Group], rewards: &[f32], names: &[&str], group: usize) {
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
    let zero_std = rewards.chunks(group).filter(|g| std_unbiased(g) == 0.0).count();
    m.insert("frac_reward_zero_std".into(), zero_std as f64 / groups.len().max(1) as f64);
    let lens: Vec<f32> = groups.iter().flat_map(|gr| gr.samples.iter().map(|s| s.tokens.len() as f32)).collect();
    m.insert("completions/mean_length".into(), mean(&lens));
    m.insert("completions/min_length".into(), lens.iter().copied().fold(f32::INFINITY, f32::min).into());
    m.insert("completions/max_length".into(), lens.iter().copied().fold(0.0, f32::max).into());
    let clipped = groups.iter().map(|gr| (0..gr.samples.len()).filter(|&i| gr.truncated(i)).count()).sum::<usize>();
    m.insert("completions/clipped_ratio".into(), clipped as f64 / lens.len().max(1) as f64);
}
