//! One GRPO step (grpo.md): roll out a group per prompt with the engine, score, compute advantages, then
//! `num_iterations` optimizer updates of the clipped objective with the k3 KL to the reference, accumulated over
//! micro-batches of `prompts_per_step` groups.

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Tensor, TensorData};
use repic_models::{Engine, QwenVl, ScoreOptions};

use crate::TrainError;
use crate::loss::{Normaliser, Objective, advantages, aggregate, token_terms};
use crate::metrics::{Metrics, TokenStats, peak_rss_mb, reward_metrics};
use crate::rollout::{Group, mix, prepare, roll_out, rollout_options};
use crate::state::Trainer;

impl<B: AutodiffBackend> Trainer<B> {
    /// Roll out one group per `(record index, prompt key)` and score them, with the current policy.
    pub fn roll_out(&self, batch: &[(usize, u64)]) -> Result<Vec<Group>, TrainError> {
        let g = &self.cfg.grpo;
        let inner = self.ckpt.model.valid();
        let engine = Engine::new(&inner, &self.device).with_tokenizer(&self.ckpt.tokenizer);
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
    pub fn grpo_step(&mut self, batch: &[(usize, u64)]) -> Result<(Metrics, Vec<Group>), TrainError> {
        let g = self.cfg.grpo.clone();
        let t0 = Instant::now();
        let groups = self.roll_out(batch)?;
        let t_generate = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let rewards: Vec<f32> = groups.iter().flat_map(|gr| gr.rewards.iter().copied()).collect();
        // Advantages are normalised over the whole batch's layout (TRL's), then read per group.
        let adv = advantages(&rewards, g.num_generations, g.scale_rewards);
        let adv: Vec<&[f32]> = adv.chunks(g.num_generations).collect();
        // Completion masks on the host: tokens up to and including EOS; truncated ones dropped when asked.
        let masks: Vec<(Vec<f32>, usize)> =
            groups.iter().map(|gr| completion_mask(gr, g.mask_truncated_completions)).collect();
        let tokens_of: Vec<f64> = masks.iter().map(|(m, _)| m.iter().map(|&x| f64::from(x)).sum()).collect();
        let global_tokens: f64 = tokens_of.iter().sum();
        let comps: Vec<Vec<Vec<u32>>> = groups.iter().map(completions).collect();
        let score = ScoreOptions { temperature: g.temperature, chunk: g.logprob_chunk, entropy: false };
        let inner = self.ckpt.model.valid();
        // Detached log-probs of every group under `model` (the sampling policy, or the reference).
        let detached =
            |model: &QwenVl<B::InnerBackend>| -> Result<Vec<Option<Tensor<B::InnerBackend, 2>>>, TrainError> {
                let e = Engine::new(model, &self.device);
                let scored = groups.iter().zip(&comps).map(|(gr, c)| e.score_group(&gr.prompt.input, c, score));
                Ok(scored.map(|s| s.map(|s| Some(s.logprobs))).collect::<Result<_, _>>()?)
            };
        let old = if g.num_iterations > 1 { detached(&inner)? } else { vec![None; groups.len()] };
        let refs = if g.beta > 0.0 {
            match &self.reference {
                Some(r) => detached(r)?,
                None => detached(&inner.without_lora())?,
            }
        } else {
            vec![None; groups.len()]
        };
        drop(inner);
        let t_logprobs_ref = t1.elapsed().as_secs_f64();
        let obj = Objective { beta: g.beta, epsilon: g.epsilon, epsilon_high: self.cfg.epsilon_high() };
        let accumulation = self.cfg.train.gradient_accumulation_steps;
        let per_micro = batch.len().div_ceil(accumulation).max(1);
        let micros: Vec<std::ops::Range<usize>> =
            (0..groups.len()).step_by(per_micro).map(|s| s..(s + per_micro).min(groups.len())).collect();
        let mut metrics = Metrics::new();
        let t2 = Instant::now();
        for _ in 0..g.num_iterations {
            self.seed_step();
            let mut acc = GradientsAccumulator::<QwenVl<B>>::new();
            let mut loss_sum = 0.0;
            let mut token_stats = TokenStats::default();
            for range in &micros {
                let seqs = range.len() * g.num_generations;
                let tokens: f64 = tokens_of[range.clone()].iter().sum();
                let norm = Normaliser {
                    loss_type: g.loss_type,
                    seqs,
                    tokens,
                    global_tokens,
                    max_completion_length: g.max_completion_length,
                    accumulation: micros.len(),
                };
                let engine = Engine::new(&self.ckpt.model, &self.device);
                let mut total: Option<Tensor<B, 1>> = None;
                for gi in range.clone() {
                    let gr = &groups[gi];
                    let with_entropy = ScoreOptions { entropy: true, ..score };
                    let scored = engine.score_group(&gr.prompt.input, &comps[gi], with_entropy)?;
                    if let Some(e) = scored.entropy.clone() {
                        token_stats.add_entropy(e, &masks[gi].0)?;
                    }
                    let (mask, width) = &masks[gi];
                    let dims = [g.num_generations, *width];
                    let mask = Tensor::<B, 2>::from_data(TensorData::new(mask.clone(), dims), &self.device);
                    let a = adv[gi];
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
            let (grad_norm, lr) = self.apply(loss_sum, acc.grads())?;
            metrics = token_stats.into_metrics();
            metrics.insert("loss".into(), loss_sum);
            metrics.insert("grad_norm".into(), grad_norm);
            metrics.insert("learning_rate".into(), lr);
        }
        let t_update = t2.elapsed().as_secs_f64();
        reward_metrics(&mut metrics, &groups, &rewards, &self.rewards.names());
        let new_tokens: usize = groups.iter().flat_map(|gr| gr.samples.iter().map(|s| s.tokens.len())).sum();
        metrics.insert("timing/generate".into(), t_generate);
        metrics.insert("timing/logprobs".into(), t_logprobs_ref);
        metrics.insert("timing/update".into(), t_update);
        metrics.insert("perf/tokens_per_second".into(), new_tokens as f64 / t_generate.max(1e-9));
        if let Some(mb) = peak_rss_mb() {
            metrics.insert("memory/peak_rss_mb".into(), mb);
        }
        Ok((metrics, groups))
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
