//! RePIC's prompts as chat messages: training prompts (one user turn with every image first, then the problem
//! and a task suffix) and the multi-concept captioning prompt of its inference (references, then the query).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use repic_rewards::Method;

use crate::chat::{Message, Part, Role};
use crate::{ConceptDb, Record};

/// The ICT suffixes and their probabilities (RePIC: 20% / 20% / 60% nothing).
pub const ICT_SUFFIXES: [(&str, f64); 3] = [
    (" Output the final answer including its name.", 0.2),
    (" Output the final answer without duplicating the given information.", 0.2),
    ("", 0.6),
];

/// The suffix RePIC appends to a record of `method`; ICT methods draw theirs from `rng`.
pub fn task_suffix(method: Method, rng: &mut impl Rng) -> &'static str {
    match method {
        Method::YesNo => " The final answer must be either 'yes' or 'no' with no additional output.",
        Method::Iou => " For bounding box coordinates, return the final answer in JSON format.",
        Method::YesNoName | Method::YesNoNameMulti => {
            let mut u: f64 = rng.random();
            for (s, p) in ICT_SUFFIXES {
                if u < p {
                    return s;
                }
                u -= p;
            }
            ""
        }
        Method::Preference => "",
    }
}

/// Builds training prompts; the random suffix of a prompt depends only on the seed and the prompt's key, so
/// the G samples of a group (and a resumed run) see the identical prompt.
#[derive(Clone, Copy, Debug)]
pub struct PromptBuilder {
    seed: u64,
}

impl PromptBuilder {
    /// A builder for a run seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        PromptBuilder { seed }
    }

    /// The user turn for `record`; `key` identifies this use of the record (e.g. epoch * len + index).
    pub fn build(&self, record: &Record, key: u64) -> Vec<Message> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ key.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut content: Vec<Part> = record.images.iter().cloned().map(Part::Image).collect();
        content.push(Part::Text(format!("{}{}", record.problem, task_suffix(record.method, &mut rng))));
        vec![Message { role: Role::User, content }]
    }
}

/// RePIC's captioning system message.
pub const CAPTION_SYSTEM: &str = "You are a captioning assistant. Your task is to generate an accurate caption for the \
query image.\nBelow is additional information about the reference images.";

/// One reference concept in a personalized prompt: its key, the image that shows it (`None`: text only, for a
/// concept whose image is not at hand) and its info.
#[derive(Clone, Debug, PartialEq)]
pub struct PromptReference {
    /// Bracketed key, as the model was trained to name it.
    pub key: String,
    /// The reference image.
    pub image: Option<String>,
    /// Info text.
    pub info: String,
}

/// The references' parts of RePIC's personalized turn: for each reference k its image and
/// `k. Name: <key>, Info: {info}` (what goes before the query).
pub fn reference_parts(refs: &[PromptReference]) -> Vec<Part> {
    let mut content = Vec::new();
    for (k, r) in refs.iter().enumerate() {
        if let Some(img) = &r.image {
            content.push(Part::Image(img.clone()));
        }
        content.push(Part::Text(format!("{}. Name: {}, Info: {}\n", k + 1, r.key, r.info)));
    }
    content
}

/// RePIC's personalized user turn (data-and-eval.md): for each reference k its image and
/// `k. Name: <key>, Info: {info}`, then the query image (if any) and `This is the query image. {question}`.
/// Without references the turn is the query image and the question alone.
pub fn reference_turn(refs: &[PromptReference], query_image: Option<&str>, question: &str) -> Message {
    let mut content = reference_parts(refs);
    if let Some(q) = query_image {
        content.push(Part::Image(q.to_string()));
    }
    let text = if refs.is_empty() { question.to_string() } else { format!("This is the query image. {question}") };
    content.push(Part::Text(text));
    Message { role: Role::User, content }
}

/// The captioning prompt of RePIC's inference: [`CAPTION_SYSTEM`], then [`reference_turn`] with each concept's
/// first reference image from `db`. Image paths are as the database and the query list spell them.
pub fn caption_prompt(
    db: &ConceptDb,
    concepts: &[String],
    query_image: &str,
    question: &str,
) -> Result<Vec<Message>, String> {
    let mut refs = Vec::new();
    for key in concepts {
        let c = db.concept_dict.get(key).ok_or_else(|| format!("concept {key} is not in the database"))?;
        let image = c.image.paths().first().ok_or_else(|| format!("concept {key} has no image"))?;
        refs.push(PromptReference { key: key.clone(), image: Some(image.clone()), info: c.info.as_text() });
    }
    let mut turn = reference_turn(&refs, Some(query_image), question);
    if refs.is_empty() {
        // RePIC's captioning prompt keeps its wording without references.
        if let Some(Part::Text(t)) = turn.content.last_mut() {
            *t = format!("This is the query image. {question}");
        }
    }
    Ok(vec![Message::system(CAPTION_SYSTEM), turn])
}

#[cfg(test)]
mod tests {
    use super::*;
    use repic_rewards::GroundTruth;

    fn rec(method: Method) -> Record {
        Record {
            images: vec!["ref.png".into(), "query.png".into()],
            problem: "Describe <bo>.".into(),
            solution: GroundTruth::Text("<bo>".into()),
            method,
            extra: Default::default(),
        }
    }

    fn text(m: &[Message]) -> String {
        match m[0].content.last() {
            Some(Part::Text(t)) => t.clone(),
            _ => panic!("no text"),
        }
    }

    #[test]
    fn images_first_then_problem_and_fixed_suffixes() {
        let b = PromptBuilder::new(1);
        let m = b.build(&rec(Method::YesNo), 0);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].role, Role::User);
        assert_eq!(m[0].content[..2], [Part::Image("ref.png".into()), Part::Image("query.png".into())]);
        assert_eq!(text(&m), "Describe <bo>. The final answer must be either 'yes' or 'no' with no additional output.");
        assert!(text(&b.build(&rec(Method::Iou), 0)).ends_with("return the final answer in JSON format."));
    }

    #[test]
    fn caption_prompt_interleaves_references_and_the_query() {
        let src = r#"{"concept_dict": {"<a>": {"name": "a", "image": "c/a.png", "info": "a red cup"},
            "<b>": {"name": "b", "image": "c/b.png", "info": "a blue hat"}}, "path_to_concept": {}}"#;
        let db = ConceptDb::parse(src, std::path::Path::new("db.json")).unwrap();
        let chat = caption_prompt(&db, &["<b>".into(), "<a>".into()], "q.png", "Give a caption.").unwrap();
        assert_eq!(crate::chat_images(&chat), ["c/b.png", "c/a.png", "q.png"]);
        assert_eq!(chat[0], Message::system(CAPTION_SYSTEM));
        let texts: Vec<&str> = chat[1]
            .content
            .iter()
            .filter_map(|p| if let Part::Text(t) = p { Some(t.as_str()) } else { None })
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

    #[test]
    fn ict_suffix_is_seeded_per_key_with_rep_ic_frequencies() {
        let b = PromptBuilder::new(42);
        let r = rec(Method::YesNoName);
        assert_eq!(b.build(&r, 17), b.build(&r, 17));
        let mut counts = [0usize; 3];
        let n = 20_000;
        for key in 0..n {
            let t = text(&b.build(&r, key));
            let i = ICT_SUFFIXES.iter().position(|(s, _)| !s.is_empty() && t.ends_with(s)).unwrap_or(2);
            counts[i] += 1;
        }
        for (c, (_, p)) in counts.iter().zip(ICT_SUFFIXES) {
            let share = *c as f64 / n as f64;
            assert!((share - p).abs() < 0.015, "{counts:?}");
        }
        let other = PromptBuilder::new(43);
        assert!((0..50).any(|k| other.build(&r, k) != b.build(&r, k)));
    }
}
