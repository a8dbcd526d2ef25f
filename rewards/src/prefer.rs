//! PreferThinker rewards (format 0.3, answer accuracy) and visual preference profile parsing.

use std::sync::LazyLock;

use regex::Regex;

static GRAMMAR: LazyLock<Regex> = LazyLock::new(|| {
    crate::format::full_match_regex(
        r"<visual preference profile>.*?</visual preference profile>\s*<visual non-preference profile>.*?</visual non-preference profile>\s*<think>.*?</think>\s*<answer>.*?</answer>",
    )
    .expect("static regex")
});
static ANSWER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?s)<answer>(.*?)</answer>").expect("static regex"));
static KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(art\s*styles?|colou?rs?|artistic\s*medium|saturation|details?)\s*[*\x22']*\s*:")
        .expect("static regex")
});

/// The reward PreferThinker gives a completion that follows its grammar.
const FORMAT_VALUE: f32 = 0.3;

/// 0.3 when the completion is exactly profile, non-preference profile, think and answer blocks, else 0.
pub fn prefer_format_reward(completion: &str) -> f32 {
    if GRAMMAR.is_match(completion) { FORMAT_VALUE } else { 0.0 }
}

/// The stripped text of the LAST `<answer>...</answer>` block.
pub fn extract_answer(completion: &str) -> Option<&str> {
    ANSWER.captures_iter(completion).last().map(|c| c.get(1).map_or("", |m| m.as_str()).trim())
}

/// 1.0 when the last answer equals the solution (`Image A` / `Image B`) after stripping, else 0.
pub fn prefer_accuracy_reward(completion: &str, solution: &str) -> f32 {
    match extract_answer(completion) {
        Some(a) if a == solution.trim() => 1.0,
        _ => 0.0,
    }
}

/// The five profile dimensions, in PreferThinker's order.
pub const PROFILE_DIMENSIONS: [&str; 5] = ["art style", "color", "artistic medium", "saturation", "detail"];

/// A visual preference profile: one cleaned value per dimension (index as [`PROFILE_DIMENSIONS`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Profile {
    /// Lower-cased, unquoted, single-line values; `None` where the dimension was absent.
    pub values: [Option<String>; 5],
}

fn dimension_of(key: &str) -> usize {
    let k: String = key.to_lowercase().chars().filter(|c| c.is_alphabetic()).collect();
    match k.as_str() {
        "artstyle" | "artstyles" => 0,
        "color" | "colors" | "colour" | "colours" => 1,
        "artisticmedium" => 2,
        "saturation" => 3,
        _ => 4,
    }
}

fn clean_value(v: &str) -> String {
    let no_quotes: String = v.chars().filter(|&c| c != '"').collect();
    let collapsed = no_quotes.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed
        .trim_matches(|c: char| c == '\'' || c == ',' || c == ';' || c == '*' || c == '-' || c.is_whitespace())
        .to_lowercase()
}

/// Parse `Key: value` pairs of the five dimensions from a profile block (keys in any case, `Art Style(s)`,
/// `Artistic Medium`/`ArtisticMedium`); a value runs to the next key, newlines collapsed. First occurrence wins.
pub fn parse_profile(block: &str) -> Profile {
    let keys: Vec<_> = KEY.captures_iter(block).map(|c| (c.get(0).unwrap(), c.get(1).unwrap())).collect();
    let mut p = Profile::default();
    for (i, (whole, name)) in keys.iter().enumerate() {
        let end = keys.get(i + 1).map_or(block.len(), |(w, _)| w.start());
        let slot = &mut p.values[dimension_of(name.as_str())];
        if slot.is_none() {
            *slot = Some(clean_value(&block[whole.end()..end]));
        }
    }
    p
}

fn normalise(v: &str) -> Vec<String> {
    let mut items: Vec<String> = v
        .split([',', ';', '/'])
        .map(|s| s.chars().filter(|c| c.is_alphanumeric() || c.is_whitespace()).collect::<String>())
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
        .collect();
    items.sort();
    items.dedup();
    items
}

/// Per-dimension match between a predicted and a ground-truth profile: the share of the ground truth's
/// dimensions whose values are equal after normalisation (punctuation dropped, comma-separated items as a set).
pub fn profile_similarity(pred: &Profile, truth: &Profile) -> f32 {
    let mut total = 0;
    let mut hits = 0;
    for (p, t) in pred.values.iter().zip(&truth.values) {
        let Some(t) = t else { continue };
        total += 1;
        if p.as_deref().is_some_and(|p| normalise(p) == normalise(t)) {
            hits += 1;
        }
    }
    if total == 0 { 0.0 } else { hits as f32 / total as f32 }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "<visual preference profile>\nArt Style: impressionism\nColor: warm\nArtistic Medium: oil\nSaturation: high\nDetail: rich\n</visual preference profile>\n<visual non-preference profile>\nArt Styles: \"pixel art\"\nColor: cold,\n muted\nArtisticMedium: digital\nSaturation: low\nDetail: sparse\n</visual non-preference profile>\n<think>Image A: total_score=5+4+4+3+4=20</think>\n<answer>Image A</answer>";

    #[test]
    fn format_and_accuracy() {
        assert_eq!(prefer_format_reward(GOOD), 0.3);
        assert_eq!(prefer_format_reward(&format!("x{GOOD}")), 0.0);
        assert_eq!(prefer_format_reward("<think>t</think><answer>Image A</answer>"), 0.0);
        assert_eq!(prefer_accuracy_reward(GOOD, "Image A"), 1.0);
        assert_eq!(prefer_accuracy_reward(GOOD, " Image B "), 0.0);
        assert_eq!(prefer_accuracy_reward("<answer>Image B</answer> <answer> Image A </answer>", "Image A"), 1.0);
        assert_eq!(prefer_accuracy_reward("Image A", "Image A"), 0.0);
    }

    #[test]
    fn profile_parsing_and_similarity() {
        let non = GOOD.split("<visual non-preference profile>").nth(1).unwrap();
        let p = parse_profile(non.split("</visual non-preference profile>").next().unwrap());
        assert_eq!(p.values[0].as_deref(), Some("pixel art"));
        assert_eq!(p.values[1].as_deref(), Some("cold, muted"));
        assert_eq!(p.values[2].as_deref(), Some("digital"));
        assert_eq!(p.values[4].as_deref(), Some("sparse"));
        let mut q = p.clone();
        q.values[1] = Some("muted, cold".into());
        assert_eq!(profile_similarity(&q, &p), 1.0);
        q.values[3] = Some("medium".into());
        assert!((profile_similarity(&q, &p) - 0.8).abs() < 1e-6);
        assert_eq!(profile_similarity(&q, &Profile::default()), 0.0);
    }
}
