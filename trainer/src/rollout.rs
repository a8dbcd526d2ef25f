//! Rollouts: a record becomes one prompt (images resolved, RePIC's suffix drawn once), the engine samples its
//! G completions from one shared prefill, and the reward set scores each completion.

use std::path::Path;

use burn::tensor::backend::Backend;
use repic_data::{PromptBuilder, Record};
use repic_models::{Checkpoint, Engine, Finish, GenerateOptions, Generation, SamplingOptions, VlInput};
use repic_rewards::{RewardSet, Sample};

use crate::TrainError;
use crate::config::GrpoConfig;

/// One training prompt, identical for every sample of its group.
#[derive(Clone, Debug)]
pub struct Prompt {
    /// Index of its record.
    pub record: usize,
    /// The rendered chat prompt (for logs).
    pub text: String,
    /// Model input.
    pub input: VlInput,
    /// Size of the query (last) image as the model sees it.
    pub image_size: Option<(u32, u32)>,
}

/// Turn `records[index]` into a prompt; `key` picks its random suffix (the same key, the same prompt).
pub fn prepare<B: Backend>(
    ckpt: &Checkpoint<B>,
    records: &[Record],
    index: usize,
    key: u64,
    builder: &PromptBuilder,
    image_root: &Path,
) -> Result<Prompt, TrainError> {
    let messages = builder.build(&records[index], key);
    let prepared = ckpt.prepare(&messages, image_root).map_err(|e| TrainError::Run(format!("record {index}: {e}")))?;
    Ok(Prompt {
        record: index,
        text: prepared.prompt,
        input: prepared.input,
        image_size: prepared.sizes.last().copied(),
    })
}

/// The G completions of one prompt with their rewards.
#[derive(Clone, Debug)]
pub struct Group {
    /// The prompt.
    pub prompt: Prompt,
    /// The sampled completions.
    pub samples: Vec<Generation>,
    /// Weighted total reward of each sample.
    pub rewards: Vec<f32>,
    /// Each function's reward of each sample (`None`: did not apply), in the set's order.
    pub per_fn: Vec<Vec<Option<f32>>>,
}

impl Group {
    /// Whether sample `i` ended without EOS (hit `max_completion_length`).
    pub fn truncated(&self, i: usize) -> bool {
        self.samples[i].finish == Finish::Length
    }
}

/// Generation options of the rollouts.
pub fn rollout_options(g: &GrpoConfig, stop_tokens: &[u32], seed: u64) -> GenerateOptions {
    GenerateOptions {
        max_new_tokens: g.max_completion_length,
        sampling: SamplingOptions {
            temperature: g.temperature,
            top_k: (g.top_k > 0).then_some(g.top_k),
            top_p: g.top_p,
            repetition_penalty: g.repetition_penalty,
        },
        seed,
        stop_tokens: stop_tokens.to_vec(),
        stop_strings: g.stop_strings.clone(),
        min_new_tokens: g.min_completion_length,
    }
}

/// Sample a group for `prompt` and score it.
pub fn roll_out<B: Backend>(
    engine: &Engine<'_, B>,
    prompt: Prompt,
    record: &Record,
    rewards: &RewardSet,
    group: usize,
    opts: &GenerateOptions,
) -> Result<Group, TrainError> {
    let samples = engine.generate_group(&prompt.input, group, opts)?;
    let (mut totals, mut per_fn) = (Vec::with_capacity(group), Vec::with_capacity(group));
    for s in &samples {
        let sample = Sample {
            method: record.method,
            solution: &record.solution,
            image_size: prompt.image_size,
            completion_tokens: Some(s.tokens.len()),
        };
        let score = rewards.score(&s.text, &sample)?;
        totals.push(score.total);
        per_fn.push(score.per_fn);
    }
    Ok(Group { prompt, samples, rewards: totals, per_fn })
}

/// A 64-bit mix of a seed and a counter (SplitMix64), for per-step and per-group seeds.
pub fn mix(seed: u64, n: u64) -> u64 {
    let mut z = seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
