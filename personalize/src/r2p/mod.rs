//! R2P (training-free recognition on fingerprints): fingerprint extraction when a concept is added, then for a
//! query image the retrieval shortlist, stage 1 (attribute-focused reasoning over the shortlist as options,
//! confidence from the option letters' logits), stage 2 (CLIP verification of the shared attributes) and, when
//! the two disagree, stage 3 (pairwise yes/no probabilities). The result says which stage decided and why; an
//! answer that cannot be read falls back to the retrieval ranking, by that named rule.

pub mod parse;

use std::path::Path;

use burn::tensor::backend::Backend;
use repic_data::{Fingerprint, Message, Part, Role};
use repic_models::Checkpoint;
use serde::Serialize;

use crate::encoder::to_vec;
use crate::retrieve::Reference;
use crate::store::StoredConcept;
use crate::vlm::{Vlm, greedy};
use crate::{PersonalizeError, Result, Retriever};
use parse::{LETTERS, Stage1Answer, parse_fingerprint, parse_stage1};

/// R2P's settings.
#[derive(Clone, Copy, Debug)]
pub struct R2pOptions {
    /// Shortlist size (R2P: 3; at most 5 option letters).
    pub shortlist: usize,
    /// Token limit of stage 1's reasoning.
    pub max_new_tokens: usize,
    /// CLIP prompts per candidate in stage 2 (R2P: 10).
    pub max_attributes: usize,
}

impl Default for R2pOptions {
    fn default() -> Self {
        R2pOptions { shortlist: 3, max_new_tokens: 256, max_attributes: 10 }
    }
}

/// The VLM prompt that extracts a concept's fingerprint.
pub fn fingerprint_prompt(category: &str, name: &str) -> String {
    format!(
        "Describe the {category} in the image identified by the concept-identifier {name} and highlight what makes \
         it unique. Answer in JSON: {{\"general\": \"<one sentence>\", \"category\": \"{category}\", \
         \"distinct features\": [\"<feature>\", ...]}}"
    )
}

/// Ask the VLM for the fingerprint of the concept `name` (a `category`) shown in `image`; an answer that is not
/// a valid fingerprint is an error that quotes it.
pub fn extract_fingerprint<B: Backend>(
    ckpt: &Checkpoint<B>,
    image: &Path,
    category: &str,
    name: &str,
    device: &B::Device,
) -> Result<Fingerprint> {
    let turn = Message::user_with_images([image.to_string_lossy().into_owned()], fingerprint_prompt(category, name));
    let (text, _) = greedy(ckpt, &[turn], 256, 1.0, device)?;
    parse_fingerprint(&text).map_err(|why| {
        let shown: String = text.chars().take(300).collect();
        PersonalizeError::invalid(format!("fingerprint of {name}"), format!("{why}; the model answered {shown:?}"))
    })
}

/// A concept's description for R2P's prompts: its fingerprint, else its info text.
fn describe(c: &StoredConcept) -> String {
    match &c.fingerprint {
        Some(f) => format!("{} Distinct features: {}.", f.general, f.distinct_features.join(", ")),
        None => c.info_text(),
    }
}

fn category(c: &StoredConcept) -> String {
    c.category.clone().or_else(|| c.fingerprint.as_ref().map(|f| f.category.clone())).unwrap_or_else(|| "object".into())
}

/// Stage 1's prompt text for the shortlisted concepts.
pub fn stage1_prompt(candidates: &[&StoredConcept]) -> String {
    let mut s = format!("The image shows an object. Here are {} candidate descriptions:\n", candidates.len());
    for (l, c) in LETTERS.iter().zip(candidates) {
        s.push_str(&format!("{l}. {}: {}\n", c.key, describe(c)));
    }
    let keys: Vec<String> = LETTERS[..candidates.len()].iter().map(|l| format!("\"{l}\": ...")).collect();
    let choice = LETTERS[..candidates.len()].join("|");
    s.push_str(&format!(
        "For each option, list the attributes it shares with the object in the image (at most 5 words, \"None\" if \
         none), then choose the option that is the object in the image. Answer in JSON: {{{}, \"Reasoning\": ..., \
         \"Answer\": \"{choice}\"}}",
        keys.join(", ")
    ));
    s
}

/// Stage 3's prompt text for one candidate.
pub fn pairwise_prompt(c: &StoredConcept) -> String {
    format!(
        "The second image shows {key}. Name: {key}, Info: {}\nIs {key} in the first image? Answer in JSON: \
         {{\"Answer\": \"yes\"|\"no\"}}",
        describe(c),
        key = c.key
    )
}

/// Which stage decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The retrieval ranking (one candidate only, or stage 1's answer could not be read).
    Retrieval,
    /// Stage 1's choice, confirmed by stage 2.
    Reasoning,
    /// Stage 3's pairwise probabilities (stages 1 and 2 disagreed).
    Pairwise,
}

/// What stage 1 produced.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stage1Trace {
    /// The model's answer text.
    pub answer: String,
    /// Why it could not be read, if it could not.
    pub error: Option<String>,
    /// The chosen option (index into the shortlist).
    pub choice: Option<usize>,
    /// Softmax over the option letters at the answer position.
    pub confidence: Vec<f32>,
    /// Shared attributes per option.
    pub attributes: Vec<Vec<String>>,
}

/// R2P's decision for one query, with its trace.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Recognition {
    /// The recognised concept.
    pub key: String,
    /// The stage that decided.
    pub decided_by: Stage,
    /// Why, in words.
    pub reason: String,
    /// The retrieval shortlist (R2P's score), best first.
    pub shortlist: Vec<Reference>,
    /// Stage 1.
    pub stage1: Option<Stage1Trace>,
    /// Stage 2's mean CLIP cosine per candidate (`None`: no shared attribute to verify).
    pub stage2: Option<Vec<Option<f32>>>,
    /// Stage 3's P(yes) per candidate.
    pub stage3: Option<Vec<f32>>,
}

/// Index of the largest value (first on ties), ignoring `None`.
fn argmax(v: &[Option<f32>]) -> Option<usize> {
    v.iter()
        .enumerate()
        .filter_map(|(i, s)| s.map(|s| (i, s)))
        .fold(None, |best, (i, s)| match best {
            Some((_, b)) if b >= s => best,
            _ => Some((i, s)),
        })
        .map(|(i, _)| i)
}

/// Run R2P on the image file `query` with the concepts of `retriever`'s store, asking `vlm`.
pub fn recognize<B: Backend>(
    vlm: &dyn Vlm,
    retriever: &Retriever<B>,
    query: &Path,
    opts: &R2pOptions,
) -> Result<Recognition> {
    recognize_with(vlm, retriever, query, opts, None)
}

/// [`recognize`] with stage 1's answer text given (`recorded`: a recorded answer, for tests and replays)
/// instead of generated; its confidence is still read from the model's logits.
pub fn recognize_with<B: Backend>(
    vlm: &dyn Vlm,
    retriever: &Retriever<B>,
    query: &Path,
    opts: &R2pOptions,
    recorded: Option<&str>,
) -> Result<Recognition> {
    if !(1..=LETTERS.len()).contains(&opts.shortlist) {
        return Err(PersonalizeError::invalid("shortlist", format!("{} is not in 1..=5", opts.shortlist)));
    }
    let image = crate::open_rgb(query)?;
    let shortlist = retriever.r2p(&image, opts.shortlist)?;
    let concepts: Vec<&StoredConcept> =
        shortlist.iter().filter_map(|r| retriever.index().concepts().iter().find(|c| c.key == r.key)).collect();
    let Some(first) = shortlist.first() else {
        return Err(PersonalizeError::invalid("R2P", "the store has no concept with an embedded image"));
    };
    let mut out = Recognition {
        key: first.key.clone(),
        decided_by: Stage::Retrieval,
        reason: String::new(),
        shortlist: shortlist.clone(),
        stage1: None,
        stage2: None,
        stage3: None,
    };
    if concepts.len() == 1 {
        out.reason = "one candidate: the retrieval ranking decides".into();
        return Ok(out);
    }
    // Stage 1: reasoning over the options; confidence from the option letters after `"Answer": "`.
    let q = query.to_string_lossy().into_owned();
    let turn = [Message::user_with_images([q.clone()], stage1_prompt(&concepts))];
    let text = match recorded {
        Some(t) => t.to_string(),
        None => vlm.greedy(&turn, opts.max_new_tokens, 1.0)?,
    };
    let read = parse_stage1(&text, concepts.len()).and_then(|a| {
        regex_answer_prefix(&text).map(|end| (a, end)).ok_or_else(|| "no `\"Answer\": \"` in the answer".to_string())
    });
    let (parsed, end) = match read {
        Ok(x) => x,
        Err(error) => {
            let t = Stage1Trace {
                answer: text,
                error: Some(error.clone()),
                choice: None,
                confidence: vec![],
                attributes: vec![],
            };
            out.stage1 = Some(t);
            out.reason = format!("stage 1's answer could not be read ({error}): the retrieval ranking decides");
            return Ok(out);
        }
    };
    let confidence = vlm.option_probs(&turn, &text[..end], &LETTERS[..concepts.len()])?;
    let Stage1Answer { attributes, answer: choice, .. } = parsed;
    let stage1 =
        Stage1Trace { answer: text, error: None, choice: Some(choice), confidence, attributes: attributes.clone() };
    out.stage1 = Some(stage1);
    // Stage 2: CLIP verification of each candidate's shared attributes.
    let q_emb = retriever.encoder().image_tensor(std::slice::from_ref(&image));
    let mut stage2 = Vec::new();
    for (c, attrs) in concepts.iter().zip(&attributes) {
        let cat = category(c);
        let mut sims = Vec::new();
        for a in attrs.iter().take(opts.max_attributes) {
            let t = retriever.encoder().text_tensor(&format!("A photo of a {cat} with {a}"))?;
            sims.push(to_vec(q_emb.clone().matmul(t.transpose()))?[0]);
        }
        stage2.push((!sims.is_empty()).then(|| sims.iter().sum::<f32>() / sims.len() as f32));
    }
    let verified = argmax(&stage2);
    out.stage2 = Some(stage2);
    if verified == Some(choice) {
        out.key = concepts[choice].key.clone();
        out.decided_by = Stage::Reasoning;
        out.reason = format!("stage 1 chose {} and stage 2's attribute check agrees", LETTERS[choice]);
        return Ok(out);
    }
    // Stage 3: pairwise yes/no for every candidate.
    let mut p_yes = Vec::new();
    for (c, r) in concepts.iter().zip(&shortlist) {
        let reference = retriever.prompt_references(std::slice::from_ref(r));
        let mut content = vec![Part::Image(q.clone())];
        content.extend(reference.iter().filter_map(|p| p.image.clone()).map(Part::Image));
        content.push(Part::Text(pairwise_prompt(c)));
        let pair = [Message { role: Role::User, content }];
        p_yes.push(vlm.option_probs(&pair, "{\"Answer\": \"", &["yes", "no"])?[0]);
    }
    let best = argmax(&p_yes.iter().map(|p| Some(*p)).collect::<Vec<_>>()).expect("at least two candidates");
    out.key = concepts[best].key.clone();
    out.decided_by = Stage::Pairwise;
    out.reason = format!(
        "stage 1 chose {} but stage 2 {}: the highest pairwise P(yes) ({:.3}) decides",
        LETTERS[choice],
        verified.map_or("had no attribute to verify".to_string(), |v| format!("preferred {}", LETTERS[v])),
        p_yes[best]
    );
    out.stage3 = Some(p_yes);
    Ok(out)
}

/// Byte offset just after `"Answer": "` in `text` (where the option letter begins).
fn regex_answer_prefix(text: &str) -> Option<usize> {
    static RE: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r#""Answer"\s*:\s*""#).expect("static regex"));
    RE.find(text).map(|m| m.end())
}
