//! The held-out evaluation of a synthetic data folder (`repic synth`, the demo): multi-concept captioning over
//! the 1-, 2- and 4-concept query lists (official and name-aware precision / recall / F1, mean caption length)
//! and OCT / VLT accuracy on the held-out records, with the per-item verdicts paired comparisons need. The
//! captioning references are the queries' own concepts (RePIC's skip-retrieval) or retrieved from a store.

use std::path::Path;

use burn::tensor::backend::Backend;
use repic_data::{ConceptDb, Method, Record, load_query_list, load_records};
use repic_models::Checkpoint;
use repic_personalize::Retriever;
use serde::Serialize;

use crate::EvalError;
use crate::answers::{RecordAccuracy, record_correct, vlt_iou};
use crate::caption_scorer::{official_recalled, score_name_aware, score_official};
use crate::captioning::{CaptionOptions, caption_queries};
use crate::personalized::{References, caption_with_store};
use crate::runner::{AnswerOptions, answer_records};

/// Captioning question of the held-out evaluation (one of RePIC's detailed prompts).
pub const QUESTION: &str = "Give a personalized caption of this image.";

/// The query lists of a synthetic data folder.
pub const QUERY_SPLITS: [&str; 3] = ["1_concept", "2_concepts", "4_concepts"];

/// The figures of one model, in percent (lengths in tokens).
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct HeldOutMetrics {
    /// Official scorer.
    pub precision: f64,
    /// Official scorer (name recall).
    pub recall: f64,
    /// Official scorer.
    pub f1: f64,
    /// Name-aware scorer.
    pub name_aware_precision: f64,
    /// Name-aware scorer.
    pub name_aware_recall: f64,
    /// Name-aware scorer.
    pub name_aware_f1: f64,
    /// OCT accuracy on held-out records.
    pub oct_accuracy: f64,
    /// VLT accuracy (IoU >= 0.5) on held-out records.
    pub vlt_accuracy: f64,
    /// Mean IoU of the VLT answers' first boxes (0 for an answer without one), percent.
    #[serde(default)]
    pub vlt_mean_iou: f64,
    /// Mean caption length in tokens.
    pub mean_length: f64,
    /// With retrieved references: the share of the queries' concepts among them, percent (absent when the
    /// references were given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references_right: Option<f64>,
}

/// The metric rows of a report: (key in [`HeldOutMetrics`] and `summary.json`, label in a table).
pub const ROWS: [(&str, &str); 10] = [
    ("precision", "caption precision (official)"),
    ("recall", "caption recall (official)"),
    ("f1", "caption F1 (official)"),
    ("name_aware_precision", "caption precision (name-aware)"),
    ("name_aware_recall", "caption recall (name-aware)"),
    ("name_aware_f1", "caption F1 (name-aware)"),
    ("oct_accuracy", "OCT accuracy"),
    ("vlt_accuracy", "VLT accuracy (IoU >= 0.5)"),
    ("vlt_mean_iou", "VLT mean IoU (%)"),
    ("mean_length", "mean caption length (tokens)"),
];

impl HeldOutMetrics {
    /// The value of a row key of [`ROWS`] (NaN for an unknown key).
    pub fn get(&self, key: &str) -> f64 {
        serde_json::to_value(self).ok().and_then(|v| v.get(key).and_then(|x| x.as_f64())).unwrap_or(f64::NAN)
    }
}

/// One model's held-out evaluation: the figures and, for paired comparisons, whether each held-out OCT record
/// was answered right and each caption name recalled.
#[derive(Clone, Debug)]
pub struct HeldOut {
    /// The figures.
    pub metrics: HeldOutMetrics,
    /// Per held-out OCT / VLT record (in `eval/records.jsonl` order), whether an OCT answer is right (`None`
    /// for VLT records).
    pub oct_correct: Vec<Option<bool>>,
    /// Per ground-truth name of each caption query, whether the official scorer finds it in the caption.
    pub names_recalled: Vec<Option<bool>>,
}

/// Where the held-out captioning queries' references come from.
pub enum CaptionReferences<'a, B: Backend> {
    /// Each query's own concepts (RePIC's skip-retrieval setting).
    Given,
    /// RAP retrieval by the query image from a store of the data folder's concepts: `max(top_k, n)` references
    /// for a query of `n` concepts (RePIC retrieves 2, and 4 for its 4-concept list).
    Retrieved {
        /// The store's retriever.
        retriever: &'a Retriever<B>,
        /// References per query at least.
        top_k: usize,
    },
}

/// Evaluate `ckpt` on the held-out part of the synthetic data folder `data` with the queries' own concepts as
/// references; its captions are written to `captions` (RePIC's result format, for `repic score`).
pub fn evaluate_held_out<B: Backend>(
    ckpt: &Checkpoint<B>,
    data: &Path,
    captions: &Path,
    device: &B::Device,
) -> Result<HeldOut, EvalError> {
    evaluate_held_out_with(ckpt, data, captions, &CaptionReferences::Given, device)
}

/// [`evaluate_held_out`] with the captioning references from `refs`.
pub fn evaluate_held_out_with<B: Backend>(
    ckpt: &Checkpoint<B>,
    data: &Path,
    captions: &Path,
    refs: &CaptionReferences<'_, B>,
    device: &B::Device,
) -> Result<HeldOut, EvalError> {
    let db = ConceptDb::load(&data.join("database_rap.json"))?;
    let mut queries = Vec::new();
    for split in QUERY_SPLITS {
        let list = load_query_list(&data.join(format!("eval/queries_{split}.json")))?;
        queries.extend(list.queries().map(|(image, names)| (image.to_string(), names.to_vec())));
    }
    let opts = CaptionOptions { question: QUESTION.into(), max_new_tokens: 96, batch: 8 };
    let (caps, references_right) = match refs {
        CaptionReferences::Given => (caption_queries(ckpt, &db, &queries, data, &opts, device)?, None),
        CaptionReferences::Retrieved { retriever, top_k } => {
            let found = References::RetrievedCovering { top_k: *top_k };
            let got = caption_with_store(ckpt, retriever, &queries, data, found, &opts, device)?;
            (got.captions, Some(got.retrieval.percent()))
        }
    };
    let text = serde_json::to_string_pretty(&caps.results).map_err(|e| EvalError::Input(e.to_string()))?;
    repic_data::write_atomic(captions, text.as_bytes())
        .map_err(|e| EvalError::Write { path: captions.into(), msg: e.to_string() })?;
    let official = score_official(&caps.results, true);
    let names_recalled = official_recalled(&caps.results, true).into_iter().map(Some).collect();
    let aware = score_name_aware(&caps.results, Some(&db), true);
    // Held-out OCT and VLT records with their training prompts, answered as long as GRPO's completions (OCT
    // answers name what the scene shows before the verdict).
    let records: Vec<Record> = load_records(&data.join("eval/records.jsonl"))?
        .into_iter()
        .filter(|r| matches!(r.method, Method::YesNo | Method::Iou))
        .collect();
    let answers = answer_records(
        ckpt,
        &records,
        data,
        AnswerOptions { seed: 0, max_new_tokens: 64, batch: 8, repetition_penalty: 1.0 },
        device,
    )?;
    let texts = answers.texts();
    let correct = record_correct(&records, &texts, &answers.sizes);
    let ious: Vec<f64> =
        records.iter().zip(&texts).zip(&answers.sizes).filter_map(|((r, t), s)| vlt_iou(r, t, *s)).collect();
    let vlt_mean_iou = 100.0 * ious.iter().sum::<f64>() / ious.len().max(1) as f64;
    let acc = RecordAccuracy::from_correct(&records, &correct);
    let oct_correct = records.iter().zip(correct).map(|(r, ok)| ok.filter(|_| r.method == Method::YesNo)).collect();
    let (precision, recall, f1) = official.rounded();
    let (name_aware_precision, name_aware_recall, name_aware_f1) = aware.rounded();
    let metrics = HeldOutMetrics {
        precision,
        recall,
        f1,
        name_aware_precision,
        name_aware_recall,
        name_aware_f1,
        oct_accuracy: acc.oct.percent(),
        vlt_accuracy: acc.vlt.percent(),
        vlt_mean_iou,
        mean_length: caps.mean_length(),
        references_right,
    };
    Ok(HeldOut { metrics, oct_correct, names_recalled })
}
