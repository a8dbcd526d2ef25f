//! The multi-concept captioning benchmark of RePIC (skip-retrieval): each query image with its concepts'
//! reference images and infos in RePIC's captioning prompt, answered greedily; results in RePIC's format.

use std::path::Path;

use burn::tensor::backend::Backend;
use repic_data::{CaptionResult, ConceptDb, caption_prompt};
use repic_models::{Checkpoint, VlInput};

use crate::EvalError;
use crate::runner::generate_greedy;

/// How captions are generated.
#[derive(Clone, Debug)]
pub struct CaptionOptions {
    /// The question after the query image (one of RePIC's captioning prompts).
    pub question: String,
    /// Most tokens per caption.
    pub max_new_tokens: usize,
    /// Prompts decoded together.
    pub batch: usize,
}

/// Captions of a checkpoint for query images, in RePIC's result format, and each caption's length in tokens.
#[derive(Clone, Debug, Default)]
pub struct Captions {
    /// One result per query.
    pub results: Vec<CaptionResult>,
    /// Generated tokens per caption.
    pub lengths: Vec<usize>,
}

impl Captions {
    /// Mean caption length in tokens (0 without captions).
    pub fn mean_length(&self) -> f64 {
        self.lengths.iter().sum::<usize>() as f64 / self.lengths.len().max(1) as f64
    }
}

/// Caption every `(query image, concept keys)` of `queries` with the concepts of `db` as references; image paths
/// of the database and the queries are relative to `image_root`.
pub fn caption_queries<B: Backend>(
    ckpt: &Checkpoint<B>,
    db: &ConceptDb,
    queries: &[(String, Vec<String>)],
    image_root: &Path,
    opts: &CaptionOptions,
    device: &B::Device,
) -> Result<Captions, EvalError> {
    let mut inputs = Vec::with_capacity(queries.len());
    for (image, names) in queries {
        let chat = caption_prompt(db, names, image, &opts.question)
            .map_err(|e| EvalError::Input(format!("query {image}: {e}")))?;
        let prepared = ckpt.prepare(&chat, image_root).map_err(|e| EvalError::from(e).of(format!("query {image}")))?;
        inputs.push(prepared.input);
    }
    caption_inputs(ckpt, queries, &inputs, opts, device)
}

/// Greedy captions of prepared `inputs` (one per query, in order) as RePIC's results: the generation half of
/// [`caption_queries`], shared with captioning over a concept store.
pub fn caption_inputs<B: Backend>(
    ckpt: &Checkpoint<B>,
    queries: &[(String, Vec<String>)],
    inputs: &[VlInput],
    opts: &CaptionOptions,
    device: &B::Device,
) -> Result<Captions, EvalError> {
    let gens = generate_greedy(&ckpt.engine(device), inputs, &ckpt.stop_tokens, opts.max_new_tokens, opts.batch)?;
    let lengths = gens.iter().map(|g| g.tokens.len()).collect();
    let results = queries
        .iter()
        .zip(gens)
        .map(|((image, concepts), g)| CaptionResult {
            image: image.clone(),
            concepts: concepts.clone(),
            caption: g.text,
            question: opts.question.clone(),
        })
        .collect();
    Ok(Captions { results, lengths })
}
