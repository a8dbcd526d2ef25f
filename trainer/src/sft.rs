//! Supervised fine-tuning (the warm start and the RAP-style baseline): cross-entropy on the assistant tokens
//! only — the record's answer followed by the chat template's end of turn (Qwen: `<|im_end|>`) — averaged over every target token of the optimizer
//! step (or per record, then over records: `[sft] loss_average`), with the same adapters, optimizer, schedule
//! and checkpoints as GRPO.

use std::time::Instant;

use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::ElementConversion;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use repic_data::Record;
use repic_models::{Engine, QwenVl, ScoreOptions, VlInput};
use repic_rewards::GroundTruth;

use crate::config::SftAverage;
use crate::rollout::prepare;
use crate::state::Trainer;
use crate::{Metrics, TrainError};

/// The assistant's answer SFT teaches for a record: its `answer` field when it has one, else the ground truth
/// written out (`yes`/`no`, the name, `[x1, y1, x2, y2]`, the names joined by ", ").
pub fn sft_answer(record: &Record) -> String {
    if let Some(a) = record.extra.get("answer").and_then(|v| v.as_str()) {
        return a.to_string();
    }
    match &record.solution {
        GroundTruth::Text(t) => t.clone(),
        GroundTruth::Names(n) => n.join(", "),
        GroundTruth::Box(b) => {
            format!("[{}]", b.iter().map(i64::to_string).collect::<Vec<_>>().join(", "))
        }
    }
}

/// The SFT loss of one micro-batch: target-token log-probs `logprobs` `[rows, T]` (zero where `mask` is 0),
/// negated and averaged as `average` says over the whole step, which holds `tokens` target tokens in `records`
/// records (so that accumulating the micro-batches gives the step's mean).
pub fn sft_loss<B: Backend>(
    logprobs: Tensor<B, 2>,
    mask: Tensor<B, 2>,
    average: SftAverage,
    tokens: usize,
    records: usize,
) -> Tensor<B, 1> {
    let picked = logprobs * mask.clone();
    match average {
        SftAverage::Tokens => picked.sum().neg().div_scalar(tokens.max(1) as f64),
        SftAverage::Sequences => {
            let per_record = picked.sum_dim(1) / mask.sum_dim(1).clamp_min(1.0);
            per_record.sum().neg().div_scalar(records.max(1) as f64)
        }
    }
}

impl<B: AutodiffBackend> Trainer<B> {
    /// One SFT optimizer step over `(record index, prompt key)` prompts, in micro-batches of
    /// `prompts_per_step`.
    pub fn sft_step(&mut self, batch: &[(usize, u64)]) -> Result<Metrics, TrainError> {
        let t0 = Instant::now();
        let mut pairs: Vec<(VlInput, Vec<u32>)> = Vec::with_capacity(batch.len());
        let end = self.ckpt.tokenizer.end_of_turn()?;
        for &(index, key) in batch {
            let prompt = prepare(&self.ckpt, &self.records, index, key, &self.builder, &self.image_root)?;
            let answer = format!("{}{end}", sft_answer(&self.records[index]));
            pairs.push((prompt.input, self.ckpt.tokenizer.encode(&answer)?));
        }
        let tokens: usize = pairs.iter().map(|(_, t)| t.len()).sum();
        let opts = ScoreOptions { temperature: 1.0, chunk: self.cfg.grpo.logprob_chunk, entropy: false };
        self.seed_step();
        let mut acc = GradientsAccumulator::<QwenVl<B>>::new();
        let mut nll = 0.0;
        let per_micro = self.cfg.train.prompts_per_step;
        let average = self.cfg.sft.loss_average;
        for micro in pairs.chunks(per_micro) {
            let scored = Engine::new(&self.ckpt.model, &self.device).score(micro, opts)?;
            let loss = sft_loss(scored.logprobs, scored.mask, average, tokens, pairs.len());
            nll += f64::from(loss.clone().into_scalar().elem::<f32>());
            acc.accumulate(&self.ckpt.model, GradientsParams::from_grads(loss.backward(), &self.ckpt.model));
        }
        let (grad_norm, lr) = self.apply(nll, acc.grads())?;
        let mut m = Metrics::new();
        m.insert("loss".into(), nll);
        m.insert("grad_norm".into(), grad_norm);
        m.insert("learning_rate".into(), lr);
        m.insert("num_tokens".into(), tokens as f64);
        m.insert("timing/update".into(), t0.elapsed().as_secs_f64());
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use repic_rewards::Method;

    #[test]
    fn loss_averages_over_tokens_or_over_records() {
        type F = repic_models::DefaultBackend;
        let dev = Default::default();
        // Record 0 has one target token (log-prob -3), record 1 three (-1 each); the third column of record 0
        // is padding and must not count.
        let lp = Tensor::<F, 2>::from_floats([[-3.0, 0.0, -9.0], [-1.0, -1.0, -1.0]], &dev);
        let mask = Tensor::<F, 2>::from_floats([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]], &dev);
        let value = |avg, tokens, records| sft_loss(lp.clone(), mask.clone(), avg, tokens, records).into_scalar();
        // Tokens: (3 + 1 + 1 + 1) / 4 = 1.5; records: (3 / 1 + 3 / 3) / 2 = 2.
        assert!((value(SftAverage::Tokens, 4, 2) - 1.5).abs() < 1e-6);
        assert!((value(SftAverage::Sequences, 4, 2) - 2.0).abs() < 1e-6);
        // As one micro-batch of a step of 8 tokens in 4 records, the step's totals divide.
        assert!((value(SftAverage::Tokens, 8, 4) - 0.75).abs() < 1e-6);
        assert!((value(SftAverage::Sequences, 8, 4) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn answers_come_from_the_answer_field_or_the_ground_truth() {
        let rec = |solution, extra: serde_json::Value| Record {
            images: vec![],
            problem: String::new(),
            solution,
            method: Method::Iou,
            extra: extra.as_object().cloned().unwrap_or_default(),
        };
        assert_eq!(sft_answer(&rec(GroundTruth::Box(vec![1, 2, 30, 40]), serde_json::json!({}))), "[1, 2, 30, 40]");
        let names = GroundTruth::Names(vec!["<a>".into(), "<b>".into()]);
        assert_eq!(sft_answer(&rec(names, serde_json::json!({}))), "<a>, <b>");
        let with = rec(GroundTruth::Text("yes".into()), serde_json::json!({"answer": "Yes, it is <a>."}));
        assert_eq!(sft_answer(&with), "Yes, it is <a>.");
    }
}
