//! The inference engine's scoring: teacher-forced log-probabilities of given completions (the policy and
//! reference passes of GRPO, differentiable on autodiff backends), computed a chunk of rows of the output
//! projection at a time, and logits of chosen tokens at chosen positions.

use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use super::Engine;
use crate::qwen2_vl::Step;
use crate::{ModelError, VlInput};

/// How completions are scored.
#[derive(Clone, Copy, Debug)]
pub struct ScoreOptions {
    /// Logits are divided by it before the softmax (the sampling temperature of the rollouts; 1.0: the model's
    /// own distribution).
    pub temperature: f64,
    /// Most completion rows sent through the output projection at once: at most `[chunk, vocab]` logits exist
    /// at a time in a forward pass (an autodiff backend keeps each chunk's softmax for the backward pass).
    pub chunk: usize,
    /// Also return the entropy of each position's (temperature-scaled) distribution, without gradient.
    pub entropy: bool,
}

impl Default for ScoreOptions {
    fn default() -> Self {
        ScoreOptions { temperature: 1.0, chunk: 1024, entropy: false }
    }
}

/// Log-probabilities of a batch of completions, right-padded.
#[derive(Clone, Debug)]
pub struct Scored<B: Backend> {
    /// `[N, C]` log-probability of each completion token (0 in padded slots), `C` the longest completion.
    pub logprobs: Tensor<B, 2>,
    /// `[N, C]` 1.0 at real tokens, 0.0 at padding.
    pub mask: Tensor<B, 2>,
    /// `[N, C]` entropy of the distribution at each completion position (0 in padded slots), detached; when
    /// asked for.
    pub entropy: Option<Tensor<B, 2>>,
}

impl<B: Backend> Engine<'_, B> {
    /// Log-probabilities of each `completions[i]` following `prompt` (a GRPO group: one prompt, the vision tower
    /// and prompt embedding run once), teacher-forced in one batched pass.
    pub fn score_group(
        &self,
        prompt: &VlInput,
        completions: &[Vec<u32>],
        opts: ScoreOptions,
    ) -> Result<Scored<B>, ModelError> {
        let x = self.model.embed(prompt, self.device)?;
        let rows: Vec<_> = completions.iter().map(|c| (prompt, x.clone(), c.as_slice())).collect();
        self.score_rows(rows, opts)
    }

    /// Log-probabilities of each completion following its own prompt, teacher-forced in one batched pass
    /// (right padding: a real token never attends to padding, so rows do not disturb one another).
    pub fn score(&self, pairs: &[(VlInput, Vec<u32>)], opts: ScoreOptions) -> Result<Scored<B>, ModelError> {
        let mut rows = Vec::with_capacity(pairs.len());
        for (prompt, completion) in pairs {
            rows.push((prompt, self.model.embed(prompt, self.device)?, completion.as_slice()));
        }
        self.score_rows(rows, opts)
    }

    fn score_rows(
        &self,
        rows: Vec<(&VlInput, Tensor<B, 3>, &[u32])>,
        opts: ScoreOptions,
    ) -> Result<Scored<B>, ModelError> {
        let (model, device) = (self.model, self.device);
        if opts.temperature.is_nan() || opts.temperature <= 0.0 || opts.chunk == 0 {
            return Err(ModelError::Input("scoring needs a temperature > 0 and a chunk of at least 1 row".into()));
        }
        if rows.is_empty() || rows.iter().all(|(_, _, c)| c.is_empty()) {
            return Err(ModelError::Input("nothing to score: every completion is empty".into()));
        }
        let n = rows.len();
        let width = rows.iter().map(|(p, _, c)| p.ids.len() + c.len()).max().unwrap_or(0);
        let cmax = rows.iter().map(|(_, _, c)| c.len()).max().unwrap_or(0);
        let (mut xs, mut positions) = (Vec::new(), Vec::new());
        // Flat indices of the hidden states that predict each completion token, the tokens, their output slots.
        let (mut at, mut targets, mut slots) = (Vec::new(), Vec::new(), Vec::new());
        for (row, (prompt, x, completion)) in rows.into_iter().enumerate() {
            let (p, c) = (prompt.ids.len(), completion.len());
            if p == 0 {
                return Err(ModelError::Input("an empty prompt".into()));
            }
            // Completion tokens are text whatever their id (a sampled `<|image_pad|>` included), at the positions
            // generation gave them: prompt length + j + the prompt's rope delta on all three axes.
            let (mut pos, delta) = model.positions(prompt)?;
            for axis in pos.iter_mut() {
                axis.extend((0..c).map(|j| (p + j) as i64 + delta));
                axis.resize(width, 0);
            }
            positions.push(pos);
            let d = x.dims()[2];
            let mut parts = vec![x];
            if c > 0 {
                parts.push(model.embed_tokens(completion, device));
            }
            if width > p + c {
                parts.push(Tensor::zeros([1, width - p - c, d], device));
            }
            xs.push(Tensor::cat(parts, 1));
            for (j, &tok) in completion.iter().enumerate() {
                at.push((row * width + p - 1 + j) as i64);
                targets.push(i64::from(tok));
                slots.push((row * cmax + j) as i64);
            }
        }
        // Right padding: causal attention alone keeps every real token from seeing padding.
        let h = model.forward(Step { embeds: Tensor::cat(xs, 0), positions }, &mut model.new_cache())?;
        let d = h.dims()[2];
        let h = h.reshape([n * width, d]);
        let total = at.len();
        let mut pieces = Vec::with_capacity(total.div_ceil(opts.chunk));
        let mut entropies = Vec::new();
        for start in (0..total).step_by(opts.chunk) {
            let len = opts.chunk.min(total - start);
            let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(at[start..start + len].to_vec(), [len]), device);
            let tgt = TensorData::new(targets[start..start + len].to_vec(), [len, 1]);
            let logits = model.project(h.clone().select(0, idx)) / opts.temperature;
            let lsm = log_softmax(logits, 1);
            if opts.entropy {
                let l = lsm.clone().detach();
                entropies.push((l.clone().exp() * l).sum_dim(1).neg().reshape([len]));
            }
            pieces.push(lsm.gather(1, Tensor::from_data(tgt, device)).reshape([len]));
        }
        let flat = Tensor::cat(pieces, 0);
        let slots = Tensor::<B, 1, Int>::from_data(TensorData::new(slots, [total]), device);
        let spread = |values: Tensor<B, 1>| {
            Tensor::<B, 1>::zeros([n * cmax], device)
                .select_assign(0, slots.clone(), values, burn::tensor::IndexingUpdateOp::Add)
                .reshape([n, cmax])
        };
        let logprobs = spread(flat);
        let entropy = opts.entropy.then(|| spread(Tensor::cat(entropies, 0)));
        let mask = spread(Tensor::<B, 1>::ones([total], device));
        Ok(Scored { logprobs, mask, entropy })
    }
}

/// How likely each candidate token is at one position (R2P's option letters, recognition's yes/no).
#[derive(Clone, Debug, PartialEq)]
pub struct CandidateScores {
    /// Log-probability of each candidate under the full-vocabulary distribution.
    pub logprobs: Vec<f32>,
    /// Probabilities renormalised over the candidates only (they sum to 1).
    pub probs: Vec<f32>,
}

impl<B: Backend> Engine<'_, B> {
    /// Scores of `candidates` as the next token after position `position` of `input` (e.g. the last prompt
    /// position for a one-token answer), one entry per position.
    pub fn candidates(
        &self,
        input: &VlInput,
        positions: &[usize],
        candidates: &[u32],
    ) -> Result<Vec<CandidateScores>, ModelError> {
        if candidates.is_empty() {
            return Err(ModelError::Input("no candidate tokens".into()));
        }
        let vocab = self.model.config().text.vocab_size;
        if let Some(bad) = candidates.iter().find(|&&c| c as usize >= vocab) {
            return Err(ModelError::Input(format!("candidate token {bad} is outside the {vocab}-token vocabulary")));
        }
        let logits = self.model.logits_at(input, positions, self.device)?;
        let lsm: Vec<f32> =
            log_softmax(logits, 1).into_data().to_vec().map_err(|e| ModelError::Input(format!("{e:?}")))?;
        let v = lsm.len() / positions.len().max(1);
        Ok(lsm
            .chunks(v)
            .map(|row| {
                let logprobs: Vec<f32> = candidates.iter().map(|&c| row[c as usize]).collect();
                let m = logprobs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let z: f32 = logprobs.iter().map(|l| (l - m).exp()).sum();
                let probs = logprobs.iter().map(|l| (l - m).exp() / z).collect();
                CandidateScores { logprobs, probs }
            })
            .collect())
    }
}
