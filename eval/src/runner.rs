//! Running a model for evaluation: RePIC's captioning inference prompt, greedy generation in batches through
//! the inference engine, and accuracy of held-out records (OCT yes/no, VLT IoU >= 0.5).

use burn::tensor::backend::Backend;
use repic_data::{ConceptDb, Record};
use repic_models::{ChatMessage, ChatPart, Engine, GenerateOptions, Generation, ModelError, VlInput};
use repic_rewards::{GroundTruth, Method, OctOptions, VltOptions, oct_reward, vlt_reward};

/// RePIC's captioning system message.
pub const CAPTION_SYSTEM: &str = "You are a captioning assistant. Your task is to generate an accurate caption for the \
query image.\nBelow is additional information about the reference images.";

/// The captioning prompt of RePIC's inference (data-and-eval.md): a system message, then for each concept k its
/// reference image and `k. Name: <name>, Info: {info}`, then the query image and `This is the query image.
/// {question}`. Returns the chat and its image paths in order (as the database and query list spell them).
pub fn caption_prompt(
    db: &ConceptDb,
    concepts: &[String],
    query_image: &str,
    question: &str,
) -> Result<(Vec<ChatMessage>, Vec<String>), String> {
    let mut content = Vec::new();
    let mut images = Vec::new();
    for (k, key) in concepts.iter().enumerate() {
        let c = db.concept_dict.get(key).ok_or_else(|| format!("concept {key} is not in the database"))?;
        let image = c.image.paths().first().ok_or_else(|| format!("concept {key} has no image"))?;
        images.push(image.clone());
        content.push(ChatPart::Image);
        content.push(ChatPart::Text(format!("{}. Name: {key}, Info: {}\n", k + 1, c.info.as_text())));
    }
    images.push(query_image.to_string());
    content.push(ChatPart::Image);
    content.push(ChatPart::Text(format!("This is the query image. {question}")));
    let system = ChatMessage { role: "system".into(), content: vec![ChatPart::Text(CAPTION_SYSTEM.into())] };
    Ok((vec![system, ChatMessage { role: "user".into(), content }], images))
}

/// Greedy completions of `inputs`, `batch` prompts at a time (left-padded batches; each row stops on its own).
pub fn generate_greedy<B: Backend>(
    engine: &Engine<'_, B>,
    inputs: &[VlInput],
    stop_tokens: &[u32],
    max_new_tokens: usize,
    batch: usize,
) -> Result<Vec<Generation>, ModelError> {
    let opts = GenerateOptions { max_new_tokens, stop_tokens: stop_tokens.to_vec(), ..Default::default() };
    let mut out = Vec::with_capacity(inputs.len());
    for chunk in inputs.chunks(batch.max(1)) {
        out.extend(engine.generate_batch(chunk, &opts)?);
    }
    Ok(out)
}

/// Accuracy of one task: correct answers and how many were asked.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Accuracy {
    /// Correct answers.
    pub correct: usize,
    /// Records of the task.
    pub total: usize,
}

impl Accuracy {
    /// Share correct in percent (0 when there were none).
    pub fn percent(&self) -> f64 {
        if self.total == 0 { 0.0 } else { 100.0 * self.correct as f64 / self.total as f64 }
    }
}

/// Held-out record accuracies by task.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct RecordAccuracy {
    /// Object consistency: the first yes/no (at a word boundary) equals the solution.
    pub oct: Accuracy,
    /// Visual localization: the first box has IoU >= 0.5 with the solution (RePIC's IoU, absolute pixels of
    /// the model's input image).
    pub vlt: Accuracy,
}

/// Score `completions[i]` of `records[i]`; `sizes[i]` is the query image's size as the model saw it.
pub fn record_accuracy(records: &[Record], completions: &[String], sizes: &[Option<(u32, u32)>]) -> RecordAccuracy {
    RecordAccuracy::from_correct(records, &record_correct(records, completions, sizes))
}

impl RecordAccuracy {
    /// The accuracies of per-record verdicts from [`record_correct`] (`correct[i]` belongs to `records[i]`).
    pub fn from_correct(records: &[Record], correct: &[Option<bool>]) -> Self {
        let mut acc = RecordAccuracy::default();
        for (r, ok) in records.iter().zip(correct) {
            let task = match r.method {
                Method::YesNo => &mut acc.oct,
                Method::Iou => &mut acc.vlt,
                _ => continue,
            };
            if let Some(ok) = ok {
                task.total += 1;
                task.correct += usize::from(*ok);
            }
        }
        acc
    }
}

/// Whether each OCT and VLT answer is right, by the rules of [`RecordAccuracy`] (`None` for records of other
/// tasks): the per-record view that paired comparisons of two models need.
pub fn record_correct(records: &[Record], completions: &[String], sizes: &[Option<(u32, u32)>]) -> Vec<Option<bool>> {
    let oct = OctOptions { word_boundary: true };
    let vlt = VltOptions::default();
    records
        .iter()
        .zip(completions)
        .zip(sizes)
        .map(|((r, text), size)| match (&r.method, &r.solution) {
            (Method::YesNo, GroundTruth::Text(s)) => Some(oct_reward(text, s, &oct) == 1.0),
            (Method::Iou, GroundTruth::Box(b)) => Some(vlt_reward(text, b, *size, &vlt) == Some(1.0)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(method: Method, solution: GroundTruth) -> Record {
        Record { images: vec![], problem: String::new(), solution, method, extra: Default::default() }
    }

    #[test]
    fn record_accuracy_by_hand() {
        let records = [
            rec(Method::YesNo, GroundTruth::Text("yes".into())),
            rec(Method::YesNo, GroundTruth::Text("no".into())),
            rec(Method::YesNo, GroundTruth::Text("no".into())),
            rec(Method::Iou, GroundTruth::Box(vec![0, 0, 10, 10])),
            rec(Method::Iou, GroundTruth::Box(vec![0, 0, 10, 10])),
            rec(Method::YesNoName, GroundTruth::Text("<a>".into())),
        ];
        // "I know" holds no yes/no at a word boundary: wrong, not "no".
        let texts = ["Yes.", "I know", "no", "[0, 0, 9, 10]", "[20, 20, 30, 30]", "<a> is here"].map(String::from);
        let acc = record_accuracy(&records, &texts, &[None; 6]);
        assert_eq!(acc.oct, Accuracy { correct: 2, total: 3 });
        assert_eq!(acc.vlt, Accuracy { correct: 1, total: 2 });
        assert!((acc.oct.percent() - 66.666).abs() < 0.01);
        let each = record_correct(&records, &texts, &[None; 6]);
        assert_eq!(each, [Some(true), Some(false), Some(true), Some(true), Some(false), None]);
    }

    #[test]
    fn caption_prompt_interleaves_references_and_the_query() {
        let src = r#"{"concept_dict": {"<a>": {"name": "a", "image": "c/a.png", "info": "a red cup"},
            "<b>": {"name": "b", "image": "c/b.png", "info": "a blue hat"}}, "path_to_concept": {}}"#;
        let db = ConceptDb::parse(src, std::path::Path::new("db.json")).unwrap();
        let (chat, images) = caption_prompt(&db, &["<b>".into(), "<a>".into()], "q.png", "Give a caption.").unwrap();
        assert_eq!(images, ["c/b.png", "c/a.png", "q.png"]);
        assert_eq!(chat[0].role, "system");
        let texts: Vec<&str> = chat[1]
            .content
            .iter()
            .filter_map(|p| if let ChatPart::Text(t) = p { Some(t.as_str()) } else { None })
            .collect();
        assert_eq!(
            texts,
            [
                "1. Name: <b>, Info: a blue hat\n",
                "2. Name: <a>, Info: a red cup\n",
                "This is the query image. Give a caption."
            ]
        );
        assert!(caption_prompt(&db, &["<z>".into()], "q.png", "x").is_err());
    }
}
