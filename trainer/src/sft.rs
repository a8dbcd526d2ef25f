//! Supervised fine-tuning (the warm start and the RAP-style baseline): cross-entropy on the assistant tokens
//! only — the record's answer followed by `<|im_end|>` — averaged over every target token of the optimizer
//! step, with the same adapters, optimizer, schedule and checkpoints as GRPO.

use std::time::Instant;

use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::ElementConversion;
use burn::tensor::backend::AutodiffBackend;
use repic_data::Record;
use repic_models::{Engine, QwenVl, ScoreOptions, VlInput};
use repic_rewards::GroundTruth;

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

impl<B: AutodiffBackend> Trainer<B> {
    /// One SFT optimizer step over `(record index, prompt key)` prompts, in micro-batches of
    /// `prompts_per_step`.
    pub fn sft_step(&mut self, batch: &[(usize, u64)]) -> Result<Metrics, TrainError> {
        let t0 = Instant::now();
        let mut pairs: Vec<(VlInput, Vec<u32>)> = Vec::with_capacity(batch.len());
        for &(index, key) in batch {
            let prompt = prepare(&self.ckpt, &self.records, index, key, &self.builder, &self.image_root)?;
            let answer = format!("{}<|im_end|>", sft_answer(&self.records[index]));
            pairs.push((prompt.input, self.ckpt.tokenizer.encode(&answer)?));
        }
        let tokens: usize = pairs.iter().map(|(_, t)| t.len()).sum();
        let opts = ScoreOptions { temperature: 1.0, chunk: self.cfg.grpo.logprob_chunk, entropy: false };
        self.seed_step();
        let mut acc = GradientsAccumulator::<QwenVl<B>>::new();
        let mut nll = 0.0;
        let per_micro = self.cfg.train.prompts_per_step;
        for micro in pairs.chunks(per_micro) {
            let scored = Engine::new(&self.ckpt.model, &self.ckpt.cfg, &self.device).score(micro, opts)?;
            let loss = (scored.logprobs * scored.mask).sum().neg().div_scalar(tokens.max(1) as f64);
            nll += f64::from(loss.clone().into_scalar().elem::<f32>());
            acc.accumulate(&self.ckpt.model, GradientsParams::from_grads(loss.backward(), &self.ckpt.model));
        }
        let (grad_norm, lr) = self.apply(acc.grads());
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
