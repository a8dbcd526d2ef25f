//! The inference engine, used for GRPO rollouts, evaluation and serving: one model with its tokenizer on a
//! device. `cache` holds keys and values per sequence, `sampler` picks tokens, `generate` decodes (one prompt, a
//! batch, a GRPO group with one shared prefill), `score` gives teacher-forced log-probabilities.

mod cache;
mod generate;
pub mod sampler;
mod score;
mod stop;

use burn::tensor::backend::Backend;

pub use cache::{KvCache, SeqId};
pub use sampler::SamplingOptions;
pub use score::{CandidateScores, ScoreOptions, Scored};

use crate::{ChatTokenizer, QwenVl};

/// How to generate.
#[derive(Clone, Debug, Default)]
pub struct GenerateOptions {
    /// Most tokens to generate.
    pub max_new_tokens: usize,
    /// How each token is chosen.
    pub sampling: SamplingOptions,
    /// Seed of the sampler (row `i` of a batch or group uses `seed + i`).
    pub seed: u64,
    /// Tokens that end generation (kept in the output).
    pub stop_tokens: Vec<u32>,
    /// Strings that end generation once the decoded output contains one (the tokens that complete it are kept;
    /// needs an engine with a tokenizer).
    pub stop_strings: Vec<String>,
    /// Stop tokens cannot be sampled before this many new tokens (transformers' `min_new_tokens`: their logits
    /// are set to -inf), so `min_new_tokens = max_new_tokens` gives completions of exactly that length.
    pub min_new_tokens: usize,
}

/// Why a sequence stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// It produced a stop token (end of sequence).
    Stop,
    /// Its text came to contain a stop string.
    StopString,
    /// It reached `max_new_tokens`.
    #[default]
    Length,
}

/// What came out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Generation {
    /// Generated token ids (including a final stop token, if one was produced).
    pub tokens: Vec<u32>,
    /// Log-probability of each generated token under the penalised, temperature-scaled distribution before
    /// top-k/top-p truncation (the model's own distribution for plain greedy decoding).
    pub logprobs: Vec<f32>,
    /// Why generation ended.
    pub finish: Finish,
    /// The decoded tokens, special tokens removed (empty when the engine has no tokenizer).
    pub text: String,
}

/// The inference engine: one model with its tokenizer and device, used for GRPO rollouts and for serving.
/// Prompts (image features included) are prefilled once into a key/value cache; every new token costs one
/// model step per row.
pub struct Engine<'a, B: Backend> {
    /// The model (it owns its configuration).
    pub model: &'a QwenVl<B>,
    /// Decodes outputs and checks stop strings; without it `text` stays empty and stop strings are refused.
    pub tokenizer: Option<&'a ChatTokenizer>,
    /// Where tensors live.
    pub device: &'a B::Device,
}

impl<'a, B: Backend> Engine<'a, B> {
    /// An engine without a tokenizer (token ids in, token ids out).
    pub fn new(model: &'a QwenVl<B>, device: &'a B::Device) -> Self {
        Engine { model, tokenizer: None, device }
    }

    /// The same engine decoding text and checking stop strings with `tokenizer`.
    pub fn with_tokenizer(self, tokenizer: &'a ChatTokenizer) -> Self {
        Engine { tokenizer: Some(tokenizer), ..self }
    }
}
