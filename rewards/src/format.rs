//! A generic format reward: a regex that must match the whole completion.

use regex::Regex;
use serde::{Deserialize, Serialize};

/// Options of the generic format reward (`[rewards.format]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatOptions {
    /// Regex that must match the entire completion (`.` also matches newlines).
    pub pattern: String,
    /// Reward when it matches (0 otherwise).
    #[serde(default = "one")]
    pub value: f32,
}

fn one() -> f32 {
    1.0
}

/// Compile `pattern` so that it must match the whole text, with `.` matching newlines.
pub(crate) fn full_match_regex(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!(r"(?s)\A(?:{pattern})\z"))
}

/// `value` when `re` (built by the reward set from [`FormatOptions::pattern`]) matches all of `completion`.
pub fn format_reward(completion: &str, re: &Regex, value: f32) -> f32 {
    if re.is_match(completion) { value } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_match_only() {
        let re = full_match_regex(r"<think>.*?</think>\s*<answer>.*?</answer>").unwrap();
        assert_eq!(format_reward("<think>a\nb</think> <answer>x</answer>", &re, 0.5), 0.5);
        assert_eq!(format_reward("pre <think>a</think><answer>x</answer>", &re, 0.5), 0.0);
        assert_eq!(format_reward("<think>a</think><answer>x</answer> post", &re, 0.5), 0.0);
        // An alternation cannot escape the anchors.
        let alt = full_match_regex("a|b").unwrap();
        assert_eq!(format_reward("ab", &alt, 1.0), 0.0);
        assert_eq!(format_reward("b", &alt, 1.0), 1.0);
    }
}
