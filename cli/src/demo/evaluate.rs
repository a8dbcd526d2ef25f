//! The demo's held-out evaluation of one model: multi-concept captioning (RePIC's inference prompt; official and
//! name-aware precision / recall / F1), OCT accuracy and VLT accuracy at IoU >= 0.5 on held-out records, and the
//! mean caption length.

use std::path::Path;

use anyhow::Context;
use burn::tensor::backend::Backend;
use repic_data::{CaptionResult, ConceptDb, Record, load_query_list, load_records};
use repic_eval::runner::{RecordAccuracy, caption_prompt, generate_greedy, record_correct};
use repic_eval::{official_recalled, score_name_aware, score_official};
use repic_models::{Checkpoint, VlInput};
use serde::Serialize;

/// Captioning question of the evaluation (one of RePIC's detailed prompts).
pub const QUESTION: &str = "Give a personalized caption of this image.";

/// The figures of the demo's table, for one model.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DemoMetrics {
    /// Official scorer, percent.
    pub precision: f64,
    /// Official scorer, percent (name recall).
    pub recall: f64,
    /// Official scorer, percent.
    pub f1: f64,
    /// Name-aware scorer, percent.
    pub name_aware_precision: f64,
    /// Name-aware scorer, percent.
    pub name_aware_recall: f64,
    /// Name-aware scorer, percent.
    pub name_aware_f1: f64,
    /// OCT accuracy on held-out records, percent.
    pub oct_accuracy: f64,
    /// VLT accuracy (IoU >= 0.5) on held-out records, percent.
    pub vlt_accuracy: f64,
    /// Mean caption length in tokens.
    pub mean_length: f64,
}

/// The demo's metric rows: (key in `summary.json`, label in the table).
pub const ROWS: [(&str, &str); 9] = [
    ("precision", "caption precision (official)"),
    ("recall", "caption recall (official)"),
    ("f1", "caption F1 (official)"),
    ("name_aware_precision", "caption precision (name-aware)"),
    ("name_aware_recall", "caption recall (name-aware)"),
    ("name_aware_f1", "caption F1 (name-aware)"),
    ("oct_accuracy", "OCT accuracy"),
    ("vlt_accuracy", "VLT accuracy (IoU >= 0.5)"),
    ("mean_length", "mean caption length (tokens)"),
];

/// One model's evaluation: the table's figures and, for paired comparisons, whether each held-out OCT record
/// was answered right and each caption name recalled.
pub struct Evaluation {
    /// The figures of the table.
    pub metrics: DemoMetrics,
    /// Per held-out record evaluated (in `eval/records.jsonl` order), whether an OCT answer is right (`None`
    /// for the other tasks).
    pub oct_correct: Vec<Option<bool>>,
    /// Per ground-truth name of each held-out caption query, whether the official scorer finds it in the caption.
    pub names_recalled: Vec<Option<bool>>,
}

/// Evaluate `ckpt` on the held-out part of the synthetic data in `data`; its captions are written to `captions`
/// (RePIC's result format, for `repic score`).
pub fn evaluate<B: Backend>(
    ckpt: &Checkpoint<B>,
    data: &Path,
    captions: &Path,
    device: &B::Device,
) -> anyhow::Result<Evaluation> {
    let engine = ckpt.engine(device);
    let db = ConceptDb::load(&data.join("database_rap.json"))?;
    // Captioning over the 1-, 2- and 4-concept query lists together.
    let mut inputs: Vec<VlInput> = Vec::new();
    let mut meta: Vec<(String, Vec<String>)> = Vec::new();
    for split in ["1_concept", "2_concepts", "4_concepts"] {
        let list = load_query_list(&data.join(format!("eval/queries_{split}.json")))?;
        for (image, names) in list.queries() {
            let (chat, images) = caption_prompt(&db, names, image, QUESTION).map_err(anyhow::Error::msg)?;
            let paths: Vec<_> = images.iter().map(|p| data.join(p)).collect();
            inputs.push(ckpt.prepare(&chat, &paths).with_context(|| format!("query {image}"))?.input);
            meta.push((image.to_string(), names.to_vec()));
        }
    }
    let gens = generate_greedy(&engine, &inputs, &ckpt.stop_tokens, 96, 8)?;
    let results: Vec<CaptionResult> = meta
        .into_iter()
        .zip(&gens)
        .map(|((image, concepts), g)| CaptionResult {
            image,
            concepts,
            caption: g.text.clone(),
            question: QUESTION.into(),
        })
        .collect();
    let text = serde_json::to_string_pretty(&results)?;
    repic_data::write_atomic(captions, text.as_bytes()).with_context(|| format!("writing {}", captions.display()))?;
    let official = score_official(&results, true);
    let names_recalled = official_recalled(&results, true).into_iter().map(Some).collect();
    let aware = score_name_aware(&results, Some(&db), true);
    let mean_length = gens.iter().map(|g| g.tokens.len() as f64).sum::<f64>() / gens.len().max(1) as f64;
    // Held-out OCT and VLT records, with the training prompt (no ICT suffix draws matter here).
    let records: Vec<Record> = load_records(&data.join("eval/records.jsonl"))?
        .into_iter()
        .filter(|r| matches!(r.method, repic_rewards::Method::YesNo | repic_rewards::Method::Iou))
        .collect();
    // As long as GRPO's completions: OCT answers name what the scene shows before the verdict.
    let crate::eval_cmd::Answers { gens: answers, sizes } =
        crate::eval_cmd::answer_records(ckpt, &records, data, 0, 64, 8, device)?;
    let texts: Vec<String> = answers.into_iter().map(|g| g.text).collect();
    let correct = record_correct(&records, &texts, &sizes);
    let acc = RecordAccuracy::from_correct(&records, &correct);
    let oct_correct =
        records.iter().zip(correct).map(|(r, ok)| ok.filter(|_| r.method == repic_rewards::Method::YesNo)).collect();
    let (p, r, f) = official.rounded();
    let (ap, ar, af) = aware.rounded();
    let metrics = DemoMetrics {
        precision: p,
        recall: r,
        f1: f,
        name_aware_precision: ap,
        name_aware_recall: ar,
        name_aware_f1: af,
        oct_accuracy: acc.oct.percent(),
        vlt_accuracy: acc.vlt.percent(),
        mean_length,
    };
    Ok(Evaluation { metrics, oct_correct, names_recalled })
}

impl DemoMetrics {
    /// The value of a row key of [`ROWS`].
    pub fn get(&self, key: &str) -> f64 {
        serde_json::to_value(self).ok().and_then(|v| v.get(key).and_then(|x| x.as_f64())).unwrap_or(f64::NAN)
    }
}
