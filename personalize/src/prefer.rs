//! PreferThinker: personalized image preference assessment. The user's preferred and non-preferred reference
//! images and two candidates go to the VLM (greedy, repetition penalty 1.15); its answer grammar (preference
//! and non-preference profiles over five dimensions, per-dimension scores with totals, the choice) is parsed,
//! and an answer that breaks it is reported as malformed with the reason.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use burn::tensor::backend::Backend;
use regex::Regex;
use repic_data::{Message, Part, Role};
use repic_models::Checkpoint;
use repic_rewards::{PROFILE_DIMENSIONS, extract_answer, parse_profile, prefer_format_reward};
use serde::Serialize;

use crate::vlm::greedy;
use crate::{PersonalizeError, Result};

/// Most reference images of each kind (PreferThinker: 5).
pub const MAX_REFERENCES: usize = 5;
/// PreferThinker's repetition penalty.
pub const REPETITION_PENALTY: f64 = 1.15;

static TOTAL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"Image ([AB])\s*:\s*total_score\s*=\s*([0-9+\s]+?)\s*=\s*([0-9]+)").expect("static regex")
});

/// The instruction after the images.
pub fn instruction() -> String {
    format!(
        "The preferred images show what the user likes and the non-preferred images what the user dislikes. \
         First describe the user's visual preference profile inside <visual preference profile> and \
         </visual preference profile>, one line per dimension ({dims}), and the visual non-preference profile \
         the same way inside <visual non-preference profile> and </visual non-preference profile>. Then, inside \
         <think> and </think>, score Image A and Image B from 0 to 5 on each dimension and end with \
         `Image A: total_score=a+b+c+d+e=S` and `Image B: total_score=a+b+c+d+e=S`. Finally give the image the \
         user prefers as <answer>Image A</answer> or <answer>Image B</answer>.",
        dims = "Art Style, Color, Artistic Medium, Saturation, Detail"
    )
}

/// The user turn: labelled preferred images, non-preferred images, Image A, Image B, then the instruction.
pub fn preference_turn(preferred: &[String], non_preferred: &[String], a: &str, b: &str) -> Message {
    let mut content = Vec::new();
    for (i, p) in preferred.iter().enumerate() {
        content.push(Part::Text(format!("Preferred image {}:", i + 1)));
        content.push(Part::Image(p.clone()));
    }
    for (i, p) in non_preferred.iter().enumerate() {
        content.push(Part::Text(format!("Non-preferred image {}:", i + 1)));
        content.push(Part::Image(p.clone()));
    }
    content.push(Part::Text("Image A:".into()));
    content.push(Part::Image(a.into()));
    content.push(Part::Text("Image B:".into()));
    content.push(Part::Image(b.into()));
    content.push(Part::Text(instruction()));
    Message { role: Role::User, content }
}

/// A profile: one value per dimension (`None` where absent), in [`PROFILE_DIMENSIONS`] order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProfileValues {
    /// Dimension names.
    pub dimensions: [&'static str; 5],
    /// Values.
    pub values: [Option<String>; 5],
}

/// One candidate's scores: per dimension (0-5) and the total.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Scores {
    /// Per-dimension scores in dimension order.
    pub dimensions: Vec<u32>,
    /// The stated total (checked to be their sum).
    pub total: u32,
}

/// A parsed assessment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Assessment {
    /// What the user prefers.
    pub preference: ProfileValues,
    /// What the user does not.
    pub non_preference: ProfileValues,
    /// Image A's scores.
    pub a: Scores,
    /// Image B's scores.
    pub b: Scores,
    /// `Image A` or `Image B`.
    pub choice: String,
}

fn block<'t>(text: &'t str, tag: &str) -> Option<&'t str> {
    let open = format!("<{tag}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&format!("</{tag}>"))? + start;
    Some(&text[start..end])
}

fn profile(text: &str, tag: &str) -> Result<ProfileValues, String> {
    let b = block(text, tag).ok_or_else(|| format!("no <{tag}> block"))?;
    let p = parse_profile(b);
    if p.values.iter().all(Option::is_none) {
        return Err(format!("the <{tag}> block names none of the five dimensions"));
    }
    Ok(ProfileValues { dimensions: PROFILE_DIMENSIONS, values: p.values })
}

/// Parse PreferThinker's answer grammar; the error says what is malformed.
pub fn parse_assessment(text: &str) -> Result<Assessment, String> {
    if prefer_format_reward(text) == 0.0 {
        return Err("the answer does not follow the grammar (preference profile, non-preference profile, think, \
                    answer blocks in that order, nothing else)"
            .into());
    }
    let preference = profile(text, "visual preference profile")?;
    let non_preference = profile(text, "visual non-preference profile")?;
    let think = block(text, "think").ok_or("no <think> block")?;
    let mut scores = [None, None];
    for c in TOTAL.captures_iter(think) {
        let slot = if &c[1] == "A" { 0 } else { 1 };
        let terms: Vec<u32> = c[2]
            .split('+')
            .map(|t| t.trim().parse::<u32>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("Image {}'s total_score terms {:?} are not whole numbers", &c[1], c[2].trim()))?;
        let total: u32 = c[3].parse().map_err(|_| format!("Image {}'s total {:?} is not a number", &c[1], &c[3]))?;
        if terms.len() != 5 || terms.iter().any(|t| *t > 5) {
            return Err(format!("Image {} needs five scores of 0 to 5, got {terms:?}", &c[1]));
        }
        if terms.iter().sum::<u32>() != total {
            return Err(format!("Image {}'s total {total} is not the sum of {terms:?}", &c[1]));
        }
        scores[slot].get_or_insert(Scores { dimensions: terms, total });
    }
    let [Some(a), Some(b)] = scores else {
        return Err("the <think> block lacks `Image A: total_score=...` or `Image B: total_score=...`".into());
    };
    let choice = extract_answer(text).unwrap_or("").to_string();
    if choice != "Image A" && choice != "Image B" {
        return Err(format!("the answer is {choice:?}, not \"Image A\" or \"Image B\""));
    }
    Ok(Assessment { preference, non_preference, a, b, choice })
}

/// The model's answer and what could be read from it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PreferenceResult {
    /// The raw answer.
    pub text: String,
    /// The parsed assessment, when the answer follows the grammar.
    pub assessment: Option<Assessment>,
    /// Why it could not be parsed.
    pub malformed: Option<String>,
}

/// Assess which of `a` and `b` the user prefers, from up to five preferred and five non-preferred images.
pub fn assess<B: Backend>(
    ckpt: &Checkpoint<B>,
    preferred: &[PathBuf],
    non_preferred: &[PathBuf],
    a: &Path,
    b: &Path,
    max_new_tokens: usize,
    device: &B::Device,
) -> Result<PreferenceResult> {
    for (what, list) in [("preferred", preferred), ("non-preferred", non_preferred)] {
        if list.len() > MAX_REFERENCES {
            return Err(PersonalizeError::invalid(what, format!("{} images; at most {MAX_REFERENCES}", list.len())));
        }
    }
    if preferred.is_empty() && non_preferred.is_empty() {
        return Err(PersonalizeError::invalid("references", "give at least one preferred or non-preferred image"));
    }
    let s = |v: &[PathBuf]| v.iter().map(|p| p.to_string_lossy().into_owned()).collect::<Vec<_>>();
    let turn = preference_turn(&s(preferred), &s(non_preferred), &a.to_string_lossy(), &b.to_string_lossy());
    let (text, _) = greedy(ckpt, &[turn], max_new_tokens, REPETITION_PENALTY, device)?;
    Ok(match parse_assessment(&text) {
        Ok(x) => PreferenceResult { text, assessment: Some(x), malformed: None },
        Err(why) => PreferenceResult { text, assessment: None, malformed: Some(why) },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "<visual preference profile>\nArt Style: impressionism\nColor: warm\nArtistic Medium: oil\n\
        Saturation: high\nDetail: rich\n</visual preference profile>\n<visual non-preference profile>\nArt Style: \
        pixel art\nColor: cold\nArtistic Medium: digital\nSaturation: low\nDetail: sparse\n</visual non-preference \
        profile>\n<think>Image A fits the warm palette.\nImage A: total_score=5+4+4+3+4=20\nImage B: \
        total_score=1+2+0+3+1=7</think>\n<answer>Image A</answer>";

    #[test]
    fn a_well_formed_answer_is_read_whole() {
        let a = parse_assessment(GOOD).unwrap();
        assert_eq!(a.choice, "Image A");
        assert_eq!(a.a, Scores { dimensions: vec![5, 4, 4, 3, 4], total: 20 });
        assert_eq!(a.b.total, 7);
        assert_eq!(a.preference.values[0].as_deref(), Some("impressionism"));
        assert_eq!(a.non_preference.values[4].as_deref(), Some("sparse"));
    }

    #[test]
    fn malformed_answers_say_why() {
        for (bad, why) in [
            (GOOD.replace("<answer>Image A</answer>", ""), "does not follow the grammar"),
            (GOOD[..GOOD.len() - 20].to_string(), "does not follow the grammar"),
            (GOOD.replace("=20", "=21"), "Image A's total 21 is not the sum"),
            (GOOD.replace("5+4+4+3+4", "9+4+4+3+0"), "five scores of 0 to 5"),
            (GOOD.replace("Image B: total_score=1+2+0+3+1=7", ""), "lacks"),
            (GOOD.replace("<answer>Image A", "<answer>Image C"), "not \"Image A\" or \"Image B\""),
            (
                GOOD.replace(
                    "Art Style: impressionism\nColor: warm\nArtistic Medium: oil\nSaturation: high\nDetail: rich",
                    "nice",
                ),
                "names none",
            ),
        ] {
            let e = parse_assessment(&bad).unwrap_err();
            assert!(e.contains(why), "{why}: {e}");
        }
    }

    #[test]
    fn the_turn_labels_every_image() {
        let t = preference_turn(&["p1.png".into()], &["n1.png".into(), "n2.png".into()], "a.png", "b.png");
        let images: Vec<&str> = t.images().collect();
        assert_eq!(images, ["p1.png", "n1.png", "n2.png", "a.png", "b.png"]);
        assert_eq!(t.content[0], Part::Text("Preferred image 1:".into()));
        assert_eq!(t.content[6], Part::Text("Image A:".into()));
    }
}
