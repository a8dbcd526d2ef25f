//! Training prompts: one user turn with every image first, then the problem and a task suffix.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use repic_rewards::Method;
use serde::{Deserialize, Serialize};

use crate::Record;

/// Who speaks a chat message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// System instruction.
    System,
    /// The user.
    User,
    /// The model.
    Assistant,
}

/// One piece of a multimodal message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
pub enum Part {
    /// An image, by path.
    Image(String),
    /// Text.
    Text(String),
}

/// A chat message: a role and interleaved images and text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Speaker.
    pub role: Role,
    /// Content, in order.
    pub content: Vec<Part>,
}

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
