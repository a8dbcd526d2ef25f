//! Evaluation with a concept store: RePIC's multi-concept captioning with the references given
//! (skip-retrieval) or retrieved (RAP retrieval, top-K), and recognition as Yo'LLaVA / MyVLM measure it
//! (positives and negatives, weighted accuracy), both through the same prompt builder as `repic ask`.

use std::path::Path;

use burn::tensor::backend::Backend;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use repic_data::{CAPTION_SYSTEM, Message, Method, PromptReference, reference_turn, task_suffix};
use repic_models::Checkpoint;
use repic_personalize::{CropSource, Reference, RetrieveOptions, Retriever, Via, open_rgb};
use repic_rewards::first_yes_no;
use serde::Serialize;

use crate::captioning::{CaptionOptions, Captions, caption_inputs};
use crate::runner::generate_greedy;
use crate::{Accuracy, EvalError};

/// Where a query's references come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum References {
    /// The query's ground-truth concepts (RePIC's skip-retrieval).
    GroundTruth,
    /// RAP retrieval on the query image (the whole image as the crop), the `top_k` best.
    Retrieved {
        /// References per query (RePIC: 2; 4 for the 4-concept list).
        top_k: usize,
    },
    /// As `Retrieved`, with `max(top_k, n)` references for a query of `n` concepts (RePIC retrieves 2, and 4 for
    /// its 4-concept list).
    RetrievedCovering {
        /// References per query at least.
        top_k: usize,
    },
}

/// Captions with the references each query got.
#[derive(Clone, Debug, Default)]
pub struct StoreCaptions {
    /// Captions in RePIC's result format.
    pub captions: Captions,
    /// The references of each query, in prompt order.
    pub references: Vec<Vec<String>>,
    /// Ground-truth concepts among the references / ground-truth concepts (retrieval recall; 1 without retrieval).
    pub retrieval: Accuracy,
}

fn references_for<B: Backend>(
    retriever: &Retriever<B>,
    image: &Path,
    gt: &[String],
    refs: References,
) -> Result<Vec<Reference>, EvalError> {
    match refs {
        References::GroundTruth => gt
            .iter()
            .map(|k| {
                let c = retriever
                    .index()
                    .concepts()
                    .iter()
                    .find(|c| &c.key == k)
                    .ok_or_else(|| EvalError::Input(format!("concept {k} is not in the store")))?;
                let image = c.images.first().map(|i| i.path.clone()).unwrap_or_default();
                Ok(Reference { key: k.clone(), image, score: None, via: Via::Name })
            })
            .collect(),
        References::Retrieved { top_k } => rap(retriever, image, top_k),
        References::RetrievedCovering { top_k } => rap(retriever, image, top_k.max(gt.len())),
    }
}

/// The `top_k` concepts RAP retrieves for the image file `image` (the whole image as the crop).
fn rap<B: Backend>(retriever: &Retriever<B>, image: &Path, top_k: usize) -> Result<Vec<Reference>, EvalError> {
    let img = open_rgb(image)?;
    let opts = RetrieveOptions { top_k, ..Default::default() };
    Ok(retriever.rap(Some(&img), "", &CropSource::Whole, &opts)?.results)
}

/// Caption every `(query image, ground-truth keys)` with references from the store (`CAPTION_SYSTEM`, then
/// RePIC's reference turn); query paths are relative to `image_root`.
pub fn caption_with_store<B: Backend>(
    ckpt: &Checkpoint<B>,
    retriever: &Retriever<B>,
    queries: &[(String, Vec<String>)],
    image_root: &Path,
    refs: References,
    opts: &CaptionOptions,
    device: &B::Device,
) -> Result<StoreCaptions, EvalError> {
    let mut inputs = Vec::with_capacity(queries.len());
    let mut out = StoreCaptions::default();
    for (image, gt) in queries {
        let path = image_root.join(image);
        let found = references_for(retriever, &path, gt, refs).map_err(|e| e.of(format!("query {image}")))?;
        let keys: Vec<String> = found.iter().map(|r| r.key.clone()).collect();
        out.retrieval.total += gt.len();
        out.retrieval.correct += gt.iter().filter(|k| keys.contains(k)).count();
        let turn = reference_turn(&retriever.prompt_references(&found), Some(&path.to_string_lossy()), &opts.question);
        let chat = [Message::system(CAPTION_SYSTEM), turn];
        let prepared =
            ckpt.prepare(&chat, Path::new("")).map_err(|e| EvalError::from(e).of(format!("query {image}")))?;
        inputs.push(prepared.input);
        out.references.push(keys);
    }
    out.captions = caption_inputs(ckpt, queries, &inputs, opts, device)?;
    Ok(out)
}

/// The recognition question of Yo'LLaVA / MyVLM.
pub fn recognition_question(key: &str) -> String {
    format!("Is {key} in this image? Answer with a single word, either yes or no.")
}

/// How a recognition item is asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecognitionPrompt {
    /// Yo'LLaVA / MyVLM's question after the concept as a reference (RePIC's reference turn, as `repic ask`).
    YoLlava,
    /// RePIC's OCT instruction (reference image, then the query; "Answer with yes or no.") with its yes/no
    /// suffix: the form a RePIC-trained model has seen.
    Oct,
}

fn recognition_turn(prompt: RecognitionPrompt, reference: &PromptReference, query: &str) -> Message {
    let key = &reference.key;
    match prompt {
        RecognitionPrompt::YoLlava => {
            reference_turn(std::slice::from_ref(reference), Some(query), &recognition_question(key))
        }
        RecognitionPrompt::Oct => {
            let text = format!(
                "As an evaluation expert, your task is to verify whether the object identified as {key} in the \
                 first image is also present in the second image. Answer with yes or no. Is {key} in this image?{}",
                task_suffix(Method::YesNo, &mut ChaCha8Rng::seed_from_u64(0))
            );
            let mut images: Vec<String> = reference.image.iter().cloned().collect();
            images.push(query.to_string());
            Message::user_with_images(images, text)
        }
    }
}

/// One recognition item: is `key` in `image`?
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecognitionItem {
    /// Query image, relative to the image root.
    pub image: String,
    /// The concept asked about.
    pub key: String,
    /// Whether it is there.
    pub positive: bool,
}

/// Positives (every concept of every query) and, per query image, `negatives` concepts of `keys` that are not in
/// it, drawn with `seed` (all of them when fewer).
pub fn recognition_items(
    queries: &[(String, Vec<String>)],
    keys: &[String],
    negatives: usize,
    seed: u64,
) -> Vec<RecognitionItem> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    for (image, gt) in queries {
        for k in gt {
            out.push(RecognitionItem { image: image.clone(), key: k.clone(), positive: true });
        }
        let mut others: Vec<&String> = keys.iter().filter(|k| !gt.contains(k)).collect();
        others.shuffle(&mut rng);
        for k in others.into_iter().take(negatives) {
            out.push(RecognitionItem { image: image.clone(), key: k.clone(), positive: false });
        }
    }
    out
}

/// How recognition items are asked and answered.
#[derive(Clone, Copy, Debug)]
pub struct RecognitionOptions {
    /// The question's form.
    pub prompt: RecognitionPrompt,
    /// Most tokens per answer (a model that reasons before its yes or no needs room).
    pub max_new_tokens: usize,
    /// Prompts decoded together.
    pub batch: usize,
}

/// Recognition accuracy as RAP and R2P report it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct RecognitionScores {
    /// Accuracy on items whose concept is in the image.
    pub positives: Accuracy,
    /// Accuracy on items whose concept is not.
    pub negatives: Accuracy,
}

impl RecognitionScores {
    /// The mean of the positive and negative accuracies, in percent (the "weighted" accuracy).
    pub fn weighted(&self) -> f64 {
        0.5 * (self.positives.percent() + self.negatives.percent())
    }
}

/// Ask the model about every item in the form `opts.prompt`, with the asked concept as the reference (its image, and
/// for Yo'LLaVA's form its info, as RAP puts a name-matched concept in the prompt); an answer is correct when its
/// first yes/no (whole words) within `opts.max_new_tokens` matches (a model that reasons before it answers needs
/// room). Returns the scores and each item's answer.
pub fn recognition<B: Backend>(
    ckpt: &Checkpoint<B>,
    retriever: &Retriever<B>,
    items: &[RecognitionItem],
    image_root: &Path,
    opts: &RecognitionOptions,
    device: &B::Device,
) -> Result<(RecognitionScores, Vec<String>), EvalError> {
    let mut inputs = Vec::with_capacity(items.len());
    for it in items {
        let path = image_root.join(&it.image);
        let refs = references_for(retriever, &path, std::slice::from_ref(&it.key), References::GroundTruth)?;
        let reference = retriever.prompt_references(&refs).pop().expect("one reference per item");
        let turn = recognition_turn(opts.prompt, &reference, &path.to_string_lossy());
        let prepared =
            ckpt.prepare(&[turn], Path::new("")).map_err(|e| EvalError::from(e).of(format!("query {}", it.image)))?;
        inputs.push(prepared.input);
    }
    let gens = generate_greedy(&ckpt.engine(device), &inputs, &ckpt.stop_tokens, opts.max_new_tokens, opts.batch)?;
    let mut s = RecognitionScores::default();
    for (it, g) in items.iter().zip(&gens) {
        let said_yes = first_yes_no(&g.text, true) == Some("yes");
        let acc = if it.positive { &mut s.positives } else { &mut s.negatives };
        acc.total += 1;
        acc.correct += usize::from(said_yes == it.positive);
    }
    Ok((s, gens.into_iter().map(|g| g.text).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_positives_and_seeded_negatives() {
        let q = vec![("a.png".to_string(), vec!["<x>".to_string()]), ("b.png".to_string(), vec![])];
        let keys: Vec<String> = ["<x>", "<y>", "<z>"].iter().map(|s| s.to_string()).collect();
        let items = recognition_items(&q, &keys, 1, 3);
        assert_eq!(items.len(), 3);
        assert!(items[0].positive && items[0].key == "<x>");
        assert!(!items[1].positive && items[1].key != "<x>");
        assert_eq!(items, recognition_items(&q, &keys, 1, 3));
        assert_eq!(recognition_items(&q, &keys, 9, 3).len(), 1 + 2 + 3);
        let s = RecognitionScores {
            positives: Accuracy { correct: 9, total: 10 },
            negatives: Accuracy { correct: 1, total: 2 },
        };
        assert!((s.weighted() - 70.0).abs() < 1e-9);
    }
}
