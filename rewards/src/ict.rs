//! ICT (`yes_no_name`, `yes_no_name_multi`): identity consistency, the concept names in a long enough caption.

use crate::{IctOptions, LengthUnit};

/// The closing form of a tag-like name (`<bo>` -> `</bo>`), or `None` for names not starting with `<`.
fn closing_tag(name: &str) -> Option<String> {
    name.strip_prefix('<').map(|rest| format!("</{rest}"))
}

/// Whether the completion passes the length gate; `None` when the unit is tokens and no count was given.
fn passes_gate(completion: &str, tokens: Option<usize>, opts: &IctOptions) -> Option<bool> {
    let len = match opts.length_unit {
        LengthUnit::Chars => completion.chars().count(),
        LengthUnit::Tokens => tokens?,
    };
    Some(len >= opts.min_len)
}

/// Whether `name` counts as present: an exact substring, and (when `closing_rule`) its closing tag absent.
fn name_found(completion: &str, name: &str, closing_rule: bool) -> bool {
    if closing_rule && closing_tag(name).is_some_and(|c| completion.contains(&c)) {
        return false;
    }
    completion.contains(name)
}

/// Single ICT: 1.0 when the caption passes the length gate, contains `solution` exactly (case-sensitive) and
/// does not contain its closing tag. `None` when the gate counts tokens and `tokens` is `None`.
pub fn ict_reward(completion: &str, solution: &str, tokens: Option<usize>, opts: &IctOptions) -> Option<f32> {
    if !passes_gate(completion, tokens, opts)? {
        return Some(0.0);
    }
    Some(if name_found(completion, solution, true) { 1.0 } else { 0.0 })
}

/// Multi ICT: the fraction of `names` present as exact substrings, after the length gate; 0 for no names.
/// The closing-tag rule applies per name only with `closing_tag_rule_multi` (the reference has none here).
pub fn ict_multi_reward(completion: &str, names: &[String], tokens: Option<usize>, opts: &IctOptions) -> Option<f32> {
    if !passes_gate(completion, tokens, opts)? {
        return Some(0.0);
    }
    if names.is_empty() {
        return Some(0.0);
    }
    let found = names.iter().filter(|n| name_found(completion, n, opts.closing_tag_rule_multi)).count();
    Some(found as f32 / names.len() as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caption(len: usize, with: &str) -> String {
        let mut s = format!("Here {with} sits on the grass.");
        while s.chars().count() < len {
            s.push('x');
        }
        s
    }

    #[test]
    fn reference_figures() {
        let o = IctOptions::default();
        let c120 = caption(120, "<bo>");
        assert_eq!(c120.chars().count(), 120);
        assert_eq!(ict_reward(&c120, "<bo>", None, &o), Some(1.0));
        let with_close = caption(120, "<bo> and </bo>");
        assert_eq!(ict_reward(&with_close, "<bo>", None, &o), Some(0.0));
        let c99 = caption(99, "<bo>");
        assert_eq!(c99.chars().count(), 99);
        assert_eq!(ict_reward(&c99, "<bo>", None, &o), Some(0.0));
        let names: Vec<String> = ["<a>", "<b>", "<c>"].map(String::from).to_vec();
        let c150 = caption(150, "<a> with <c>");
        let r = ict_multi_reward(&c150, &names, None, &o).unwrap();
        assert!((r - 0.6667).abs() < 1e-4, "{r}");
    }

    #[test]
    fn case_sensitive_chars_are_scalar_values_and_tokens_unit() {
        let o = IctOptions::default();
        let c = caption(120, "<Bo>");
        assert_eq!(ict_reward(&c, "<bo>", None, &o), Some(0.0));
        // 100 two-byte characters pass a 100-character gate.
        let mut accented = "é".repeat(96);
        accented.push_str("<b>");
        accented.push('é');
        assert_eq!(accented.chars().count(), 100);
        assert_eq!(ict_reward(&accented, "<b>", None, &o), Some(1.0));
        let tok = IctOptions { length_unit: LengthUnit::Tokens, min_len: 10, ..o };
        assert_eq!(ict_reward("<b>", "<b>", Some(10), &tok), Some(1.0));
        assert_eq!(ict_reward("<b>", "<b>", Some(9), &tok), Some(0.0));
        assert_eq!(ict_reward("<b>", "<b>", None, &tok), None);
    }

    #[test]
    fn multi_closing_rule_is_optional_and_empty_list_scores_zero() {
        let names: Vec<String> = vec!["<a>".into(), "<b>".into()];
        let c = caption(150, "<a> </a> <b>");
        let o = IctOptions::default();
        assert_eq!(ict_multi_reward(&c, &names, None, &o), Some(1.0));
        let strict = IctOptions { closing_tag_rule_multi: true, ..o.clone() };
        assert_eq!(ict_multi_reward(&c, &names, None, &strict), Some(0.5));
        assert_eq!(ict_multi_reward(&c, &[], None, &o), Some(0.0));
        let no_gate = IctOptions { min_len: 0, ..o };
        assert_eq!(ict_reward("This is <a>.", "<a>", None, &no_gate), Some(1.0));
    }
}
