//! Running a model for evaluation: greedy generation in batches through the inference engine, and the answers
//! of a checkpoint to RePIC-format records with their training prompts.

use std::path::Path;

use burn::tensor::backend::Backend;
use repic_data::{PromptBuilder, Record};
use repic_models::{Checkpoint, Engine, GenerateOptions, Generation, ModelError, SamplingOptions, VlInput};

use crate::EvalError;

/// Greedy completions of `inputs`, `batch` prompts at a time (left-padded batches; each row stops on its own).
pub fn generate_greedy<B: Backend>(
    engine: &Engine<'_, B>,
    inputs: &[VlInput],
    stop_tokens: &[u32],
    max_new_tokens: usize,
    batch: usize,
) -> Result<Vec<Generation>, ModelError> {
    generate_greedy_with(engine, inputs, stop_tokens, max_new_tokens, batch, 1.0)
}

/// [`generate_greedy`] with a repetition penalty.
pub fn generate_greedy_with<B: Backend>(
    engine: &Engine<'_, B>,
    inputs: &[VlInput],
    stop_tokens: &[u32],
    max_new_tokens: usize,
    batch: usize,
    repetition_penalty: f64,
) -> Result<Vec<Generation>, ModelError> {
    let sampling = SamplingOptions { temperature: 0.0, repetition_penalty, ..Default::default() };
    let opts = GenerateOptions { max_new_tokens, stop_tokens: stop_tokens.to_vec(), sampling, ..Default::default() };
    let mut out = Vec::with_capacity(inputs.len());
    for chunk in inputs.chunks(batch.max(1)) {
        out.extend(engine.generate_batch(chunk, &opts)?);
    }
    Ok(out)
}

/// A checkpoint's greedy answers to records, one entry per record.
#[derive(Clone, Debug)]
pub struct Answers {
    /// The greedy generations.
    pub gens: Vec<Generation>,
    /// Width and height of each record's query (last) image as the model saw it (the frame of its boxes).
    pub sizes: Vec<Option<(u32, u32)>>,
}

impl Answers {
    /// The answers' texts.
    pub fn texts(&self) -> Vec<String> {
        self.gens.iter().map(|g| g.text.clone()).collect()
    }
}

/// How records are answered.
#[derive(Clone, Copy, Debug)]
pub struct AnswerOptions {
    /// Seed of the prompts' random task suffixes (with the record's index as the prompt key, as in training).
    pub seed: u64,
    /// Most tokens per answer.
    pub max_new_tokens: usize,
    /// Prompts decoded together.
    pub batch: usize,
    /// Repetition penalty (1: none; PreferThinker decodes with 1.15).
    pub repetition_penalty: f64,
}

/// Greedy answers of `ckpt` to every record, each with its training prompt (RePIC's task suffix drawn from
/// `opts.seed` and the record's index; images under `image_root`).
pub fn answer_records<B: Backend>(
    ckpt: &Checkpoint<B>,
    records: &[Record],
    image_root: &Path,
    opts: AnswerOptions,
    device: &B::Device,
) -> Result<Answers, EvalError> {
    let builder = PromptBuilder::new(opts.seed);
    let mut inputs = Vec::with_capacity(records.len());
    let mut sizes = Vec::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        let prepared = ckpt
            .prepare(&builder.build(record, i as u64), image_root)
            .map_err(|e| EvalError::from(e).of(format!("record {i}")))?;
        sizes.push(prepared.sizes.last().copied());
        inputs.push(prepared.input);
    }
    let engine = ckpt.engine(device);
    let (stop, n, batch) = (&ckpt.stop_tokens, opts.max_new_tokens, opts.batch);
    let gens = generate_greedy_with(&engine, &inputs, stop, n, batch, opts.repetition_penalty)?;
    Ok(Answers { gens, sizes })
}
