//! The RePIC caption scorer, reproduced exactly ("official"), and a name-aware scorer.

use std::collections::{BTreeSet, HashMap, HashSet};

use repic_data::{CaptionResult, ConceptDb};
use serde::Serialize;

/// Precision, recall and F1 over ground-truth concept slots.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CaptionScores {
    /// correct / slots with a prediction, in percent.
    pub precision: f64,
    /// correct / slots, in percent.
    pub recall: f64,
    /// Harmonic mean of precision and recall, in percent.
    pub f1: f64,
    /// Ground-truth concept slots.
    pub slots: usize,
    /// Slots whose concept the caption names.
    pub correct: usize,
    /// Slots with any prediction (correct or MISS).
    pub predicted: usize,
}

impl CaptionScores {
    fn from_counts(slots: usize, correct: usize, predicted: usize) -> Self {
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let (p, r) = (ratio(correct, predicted), ratio(correct, slots));
        let f1 = if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) };
        CaptionScores { precision: 100.0 * p, recall: 100.0 * r, f1: 100.0 * f1, slots, correct, predicted }
    }

    /// The three figures rounded to one decimal, as the paper reports them.
    pub fn rounded(&self) -> (f64, f64, f64) {
        let r = |v: f64| format!("{v:.1}").parse::<f64>().unwrap_or(v);
        (r(self.precision), r(self.recall), r(self.f1))
    }
}

/// Which scorer to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scorer {
    /// RePIC's released rules.
    Official,
    /// Bracketed key, bare key or display name as a word-bounded substring.
    NameAware,
}

/// Whether captions are compared case-sensitively.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaseRule {
    /// RePIC's rule per split: case-sensitive when every query has exactly 2 concepts, else lower-cased.
    /// (The name-aware scorer lower-cases under `Auto`.)
    Auto,
    /// Compare as written.
    Sensitive,
    /// Lower-case captions and keys.
    Insensitive,
}

impl CaseRule {
    /// Resolve the rule for these results and this scorer.
    pub fn is_sensitive(self, results: &[CaptionResult], scorer: Scorer) -> bool {
        match self {
            CaseRule::Sensitive => true,
            CaseRule::Insensitive => false,
            CaseRule::Auto => {
                scorer == Scorer::Official && !results.is_empty() && results.iter().all(|r| r.concepts.len() == 2)
            }
        }
    }
}

/// Score with the chosen scorer and case rule; `db` supplies display names to the name-aware scorer.
pub fn score_captions(
    results: &[CaptionResult],
    scorer: Scorer,
    case: CaseRule,
    db: Option<&ConceptDb>,
) -> CaptionScores {
    let sensitive = case.is_sensitive(results, scorer);
    match scorer {
        Scorer::Official => score_official(results, sensitive),
        Scorer::NameAware => score_name_aware(results, db, sensitive),
    }
}

/// Counts slots: for each ground-truth concept of each query, correct when `present(gt)`, else a MISS when
/// any candidate that is not a ground truth of the same query is present.
fn count(
    results: &[CaptionResult],
    fold: impl Fn(&str) -> String,
    mut present: impl FnMut(usize, &str) -> bool,
) -> CaptionScores {
    let candidates: BTreeSet<String> = results.iter().flat_map(|r| r.concepts.iter().map(|c| fold(c))).collect();
    let (mut slots, mut correct, mut predicted) = (0, 0, 0);
    for (i, r) in results.iter().enumerate() {
        let gts: Vec<String> = r.concepts.iter().map(|c| fold(c)).collect();
        let miss = candidates.iter().any(|c| !gts.contains(c) && present(i, c));
        for g in &gts {
            slots += 1;
            if present(i, g) {
                correct += 1;
                predicted += 1;
            } else if miss {
                predicted += 1;
            }
        }
    }
    CaptionScores::from_counts(slots, correct, predicted)
}

fn fold_case(sensitive: bool) -> impl Fn(&str) -> String {
    move |s: &str| if sensitive { s.to_string() } else { s.to_lowercase() }
}

/// RePIC's official scorer: whitespace tokens stripped of `.,!?;:()[]{}"'-` at both ends (after removing
/// `</s>`); a concept is present when its bracketed or bare key equals a token.
pub fn score_official(results: &[CaptionResult], case_sensitive: bool) -> CaptionScores {
    let fold = fold_case(case_sensitive);
    let tokens = official_tokens(results, &fold);
    count(results, &fold, |i, key| official_present(&tokens[i], key))
}

/// For each ground-truth concept of each caption, in order, whether the official scorer finds it: the slots
/// behind its recall (for paired comparisons of two models' captions of the same queries).
pub fn official_recalled(results: &[CaptionResult], case_sensitive: bool) -> Vec<bool> {
    let fold = fold_case(case_sensitive);
    let tokens = official_tokens(results, &fold);
    results.iter().zip(&tokens).flat_map(|(r, t)| r.concepts.iter().map(|c| official_present(t, &fold(c)))).collect()
}

/// Each caption's tokens as the official scorer reads them.
fn official_tokens(results: &[CaptionResult], fold: &impl Fn(&str) -> String) -> Vec<HashSet<String>> {
    results
        .iter()
        .map(|r| {
            let text = fold(&r.caption.replace("</s>", ""));
            text.split_whitespace().map(|t| t.trim_matches(|c| ".,!?;:()[]{}\"'-".contains(c)).to_string()).collect()
        })
        .collect()
}

/// The official scorer's presence rule: the bracketed or the bare key is one of the caption's tokens.
fn official_present(tokens: &HashSet<String>, key: &str) -> bool {
    let bare = key.strip_prefix('<').and_then(|k| k.strip_suffix('>')).unwrap_or(key);
    tokens.contains(key) || tokens.contains(bare)
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether `needle` occurs in `hay` with no word character right before or after it.
fn bounded_contains(hay: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return false;
    }
    hay.match_indices(needle).any(|(at, m)| {
        let before = hay[..at].chars().next_back().is_none_or(|c| !is_word(c));
        let after = hay[at + m.len()..].chars().next().is_none_or(|c| !is_word(c));
        before && after
    })
}

/// The name-aware scorer: a concept is present when its bracketed key, its bare key or (with a database) its
/// display name occurs in the caption as a substring bounded by non-word characters. Handles multi-word keys.
pub fn score_name_aware(results: &[CaptionResult], db: Option<&ConceptDb>, case_sensitive: bool) -> CaptionScores {
    let fold = fold_case(case_sensitive);
    let names: HashMap<String, String> =
        db.map(|db| db.concept_dict.iter().map(|(k, c)| (fold(k), fold(&c.name))).collect()).unwrap_or_default();
    let captions: Vec<String> = results.iter().map(|r| fold(&r.caption.replace("</s>", ""))).collect();
    count(results, &fold, |i, key| {
        let bare = key.strip_prefix('<').and_then(|k| k.strip_suffix('>')).unwrap_or(key);
        let text = &captions[i];
        bounded_contains(text, key)
            || bounded_contains(text, bare)
            || names.get(key).is_some_and(|n| bounded_contains(text, n))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(gt: &[&str], caption: &str) -> CaptionResult {
        CaptionResult {
            image: "q.jpg".into(),
            concepts: gt.iter().map(|s| s.to_string()).collect(),
            caption: caption.into(),
            question: "Give a caption.".into(),
        }
    }

    #[test]
    fn hand_computed_slots() {
        let results = [
            r(&["<a>", "<b>"], "<a> plays with (b)."),
            r(&["<a>", "<c>"], "Here <A> sits next to <b>."),
            r(&["<c>", "<b>"], "Nobody here."),
        ];
        // Sensitive: q1 both present (2/2); q2: <a> absent (A), <c> absent, <b> present and not GT -> 2 MISS;
        // q3: none present -> no predictions. slots 6, correct 2, predicted 4.
        let s = score_official(&results, true);
        assert_eq!((s.slots, s.correct, s.predicted), (6, 2, 4));
        assert_eq!(s.rounded(), (50.0, 33.3, 40.0));
        // Insensitive: q2 <a> now correct, <c> MISS.
        let s = score_official(&results, false);
        assert_eq!((s.slots, s.correct, s.predicted), (6, 3, 4));
        // The slots behind those recalls, caption by caption.
        assert_eq!(official_recalled(&results, true), [true, true, false, false, false, false]);
        assert_eq!(official_recalled(&results, false), [true, true, true, false, false, false]);
    }

    #[test]
    fn name_aware_matches_multi_word_keys_with_word_bounds() {
        let results = [r(&["<black widow>", "<thor>"], "Black Widow stands beside thorough Thor.")];
        // Official: "thor." is a token, "black widow" never can be.
        assert_eq!(score_official(&results, false).correct, 1);
        let s = score_name_aware(&results, None, false);
        assert_eq!((s.correct, s.predicted), (2, 2));
        assert!(!bounded_contains("thorough", "thor"));
        assert!(bounded_contains("(thor)", "thor"));
        assert!(bounded_contains("x <thor>!", "<thor>"));
    }
}
