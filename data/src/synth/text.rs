//! The text of the synthetic records: question templates, captions that name the concepts, and the worked OCT
//! answers.

use rand::Rng;
use rand::seq::IndexedRandom;

use super::concept::{COLOURS, Look, SynthConcept};

pub(super) const OCT_QUESTIONS: [&str; 3] =
    ["Is {} visible in this picture?", "Is {} in this image?", "Do you see {} in the photo?"];
pub(super) const CAPTION_QUESTIONS: [&str; 3] =
    ["Give a caption of the image.", "Give a personalized caption of this image.", "Describe the image in detail."];
pub(super) const VLT_QUESTIONS: [&str; 2] = [
    "Please provide the bounding box coordinate of the region this sentence describes: {}.",
    "Give {}'s bounding box in the image.",
];

pub(super) fn pick<'a>(options: &[&'a str], rng: &mut impl Rng) -> &'a str {
    options.choose(rng).copied().unwrap_or_default()
}

/// Where a box sits in a `side`-pixel image, in words ("top left", "centre").
pub(super) fn position(b: &[i64; 4], side: u32) -> &'static str {
    let third = |v: i64| ((v * 3) / i64::from(side)).clamp(0, 2) as usize;
    let (col, row) = (third((b[0] + b[2]) / 2), third((b[1] + b[3]) / 2));
    [["top left", "top", "top right"], ["left", "centre", "right"], ["bottom left", "bottom", "bottom right"]][row][col]
}

/// A ground-truth caption naming every concept with its look and place: an oracle for the scorer and
/// cold-start captions for supervised fine-tuning.
pub fn oracle_caption(concepts: &[&SynthConcept], boxes: &[[i64; 4]], side: u32) -> String {
    let parts: Vec<String> = concepts
        .iter()
        .zip(boxes)
        .map(|(c, b)| format!("{} ({}) at the {}", c.key(), a_or_an(&c.look.description()), position(b, side)))
        .collect();
    format!("In this image we see {} on a pastel background.", parts.join(", and "))
}

/// A training caption for identity (ICT) records: where each concept is and its full description (over 100
/// characters for one concept, so that it passes RePIC's length gate).
pub fn training_caption(concepts: &[&SynthConcept], boxes: &[[i64; 4]], side: u32) -> String {
    let parts: Vec<String> = concepts
        .iter()
        .zip(boxes)
        .map(|(c, b)| format!("In this image, {} is at the {}. {}", c.key(), position(b, side), c.info_text()))
        .collect();
    format!("{} The scene has a plain pastel background.", parts.join(" "))
}

/// `phrase` with its indefinite article ("an orange ball", "a red cube").
pub(super) fn a_or_an(phrase: &str) -> String {
    let vowel = phrase.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {phrase}", if vowel { "an" } else { "a" })
}

/// A worked OCT answer for supervised fine-tuning: which look the concept has, whether the image shows that
/// look, then the verdict. The look comes first so that seeing is a question about one named look (a model
/// trained from scratch learns that far sooner than listing a scene), and the text before the verdict holds
/// no yes/no word (the OCT reward reads the first one).
pub fn oct_rationale(target: &SynthConcept, present: bool) -> String {
    let look = target.look.description();
    let (seen, verdict) = if present { ("I see", "yes") } else { ("I do not see", "no") };
    format!("{} is the {look}. {seen} {} in the image, so the answer is {verdict}.", target.key(), a_or_an(&look))
}

/// A worked OCT answer for a scene of one object (`shown`), for data sets with distinct colours: what the
/// (query) image shows, the concept's look, then the two body colours side by side and the verdict.
/// Reading one object is the perception step; putting the colours next to each other turns the comparison into
/// a local one, which a small model trained from scratch learns (compared across the sentence, it stayed at
/// chance: docs/demo-notes.md). No yes/no word comes before the verdict.
pub fn oct_rationale_seen(target: &SynthConcept, shown: &Look) -> String {
    format!(
        "The image shows {}. {} is the {}. {}",
        a_or_an(&shown.description()),
        target.key(),
        target.look.description(),
        colour_verdict(shown.colour, target.look.colour)
    )
}

/// "The colours green and pink differ, so the answer is no." (indices into [`COLOURS`]).
pub(super) fn colour_verdict(seen: usize, asked: usize) -> String {
    let (how, verdict) = if seen == asked { ("match", "yes") } else { ("differ", "no") };
    format!("The colours {} and {} {how}, so the answer is {verdict}.", COLOURS[seen].0, COLOURS[asked].0)
}
