//! The two calls personalization makes of the VLM through the shared engine: a greedy answer to a chat, and
//! the probabilities of a few one-token options at the point where an answer begins (R2P's option letters and
//! yes/no, read from the logits after an assistant prefix such as `{"Answer": "`). [`Vlm`] is the two calls as
//! a trait, so that R2P runs on a checkpoint here ([`LocalVlm`]) or through a server's continuous batch.

use std::path::Path;

use burn::tensor::backend::Backend;
use repic_data::Message;
use repic_models::{Checkpoint, GenerateOptions, PreparedPrompt, SamplingOptions};

use crate::{PersonalizeError, Result};

/// A greedy answer to `messages` (image paths absolute or relative to the working directory).
pub fn greedy<B: Backend>(
    ckpt: &Checkpoint<B>,
    messages: &[Message],
    max_new_tokens: usize,
    repetition_penalty: f64,
    device: &B::Device,
) -> Result<(String, PreparedPrompt)> {
    let prepared = ckpt.prepare(messages, Path::new(""))?;
    let opts = GenerateOptions {
        max_new_tokens,
        sampling: SamplingOptions { temperature: 0.0, repetition_penalty, ..Default::default() },
        stop_tokens: ckpt.stop_tokens.clone(),
        ..Default::default()
    };
    let out = ckpt.engine(device).generate(&prepared.input, &opts)?;
    Ok((out.text, prepared))
}

/// Probabilities of `options` (renormalised over them) as the next token after the prompt of `prepared`
/// followed by the assistant text `prefix`. Each option is scored by its first token; options whose first
/// tokens coincide cannot be told apart and are refused.
pub fn option_probs<B: Backend>(
    ckpt: &Checkpoint<B>,
    prepared: &PreparedPrompt,
    prefix: &str,
    options: &[&str],
    device: &B::Device,
) -> Result<Vec<f32>> {
    let mut tokens = Vec::new();
    for o in options {
        let ids = ckpt.tokenizer.encode(o)?;
        let first = *ids.first().ok_or_else(|| PersonalizeError::invalid("option", format!("{o:?} is empty")))?;
        if tokens.contains(&first) {
            return Err(PersonalizeError::invalid(
                "options",
                format!("{options:?} share a first token; the tokenizer cannot tell them apart"),
            ));
        }
        tokens.push(first);
    }
    let mut input = prepared.input.clone();
    input.ids.extend(ckpt.tokenizer.encode(prefix)?);
    let last = input.ids.len() - 1;
    let scores = ckpt.engine(device).candidates(&input, &[last], &tokens)?;
    Ok(scores.into_iter().next().map(|s| s.probs).unwrap_or_default())
}

/// The VLM as R2P calls it.
pub trait Vlm {
    /// A greedy answer to `messages` (image paths absolute or relative to the working directory).
    fn greedy(&self, messages: &[Message], max_new_tokens: usize, repetition_penalty: f64) -> Result<String>;
    /// Probabilities of `options` (renormalised over them) as the next token after the prompt of `messages`
    /// followed by the assistant text `prefix` (see [`option_probs`]).
    fn option_probs(&self, messages: &[Message], prefix: &str, options: &[&str]) -> Result<Vec<f32>>;
}

/// A checkpoint on a device, called on this thread.
pub struct LocalVlm<'a, B: Backend> {
    /// The model.
    pub ckpt: &'a Checkpoint<B>,
    /// Where it runs.
    pub device: &'a B::Device,
}

impl<B: Backend> Vlm for LocalVlm<'_, B> {
    fn greedy(&self, messages: &[Message], max_new_tokens: usize, repetition_penalty: f64) -> Result<String> {
        Ok(greedy(self.ckpt, messages, max_new_tokens, repetition_penalty, self.device)?.0)
    }

    fn option_probs(&self, messages: &[Message], prefix: &str, options: &[&str]) -> Result<Vec<f32>> {
        let prepared = self.ckpt.prepare(messages, Path::new(""))?;
        option_probs(self.ckpt, &prepared, prefix, options, self.device)
    }
}
