//! OCT (`yes_no`): object consistency, the first yes/no of the completion against the solution.

use std::sync::LazyLock;

use regex::Regex;

use crate::OctOptions;

static BARE: LazyLock<Regex> = LazyLock::new(|| Regex::new("(yes|no)").expect("static regex"));
static BOUNDED: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b(yes|no)\b").expect("static regex"));

/// The first `yes`/`no` in the lower-cased text (reference: no word boundaries, so "know" reads as "no").
pub fn first_yes_no(text: &str, word_boundary: bool) -> Option<&'static str> {
    let re = if word_boundary { &*BOUNDED } else { &*BARE };
    let lower = text.to_lowercase();
    re.find(&lower).map(|m| if m.as_str() == "yes" { "yes" } else { "no" })
}

/// 1.0 when completion and solution both contain a first yes/no and they agree, else 0.0.
pub fn oct_reward(completion: &str, solution: &str, opts: &OctOptions) -> f32 {
    match (first_yes_no(completion, opts.word_boundary), first_yes_no(solution, opts.word_boundary)) {
        (Some(a), Some(b)) if a == b => 1.0,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_figures() {
        let o = OctOptions::default();
        assert_eq!(oct_reward("Yes, it is.", "yes", &o), 1.0);
        assert_eq!(oct_reward("I know it is there", "yes", &o), 0.0);
        assert_eq!(oct_reward("No.", "yes", &o), 0.0);
        assert_eq!(oct_reward("maybe", "no", &o), 0.0);
    }

    #[test]
    fn reference_mode_reads_substrings_word_boundary_does_not() {
        assert_eq!(first_yes_no("I know", false), Some("no"));
        assert_eq!(first_yes_no("nothing, yes", false), Some("no"));
        assert_eq!(first_yes_no("I know it: YES", true), Some("yes"));
        let wb = OctOptions { word_boundary: true };
        assert_eq!(oct_reward("I know it is there, yes", "yes", &wb), 1.0);
        assert_eq!(oct_reward("", "yes", &wb), 0.0);
        assert_eq!(oct_reward("yes", "", &wb), 0.0);
    }
}
