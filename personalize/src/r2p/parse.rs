//! Reading R2P's JSON answers: the fingerprint of a new concept and stage 1's attribute reasoning. Models wrap
//! JSON in prose or code fences and get cut off by the token limit; what cannot be read is reported with the
//! reason, never guessed.

use repic_data::Fingerprint;
use serde_json::{Map, Value};

/// The first complete JSON object in `text` (inside a code fence or prose), as a map.
pub fn first_object(text: &str) -> Result<Map<String, Value>, String> {
    let start = text.find('{').ok_or("the answer holds no JSON object")?;
    let mut stream = serde_json::Deserializer::from_str(&text[start..]).into_iter::<Value>();
    match stream.next() {
        Some(Ok(Value::Object(m))) => Ok(m),
        Some(Ok(_)) => Err("the answer's JSON is not an object".into()),
        Some(Err(e)) if e.is_eof() => Err("the answer's JSON is cut off (truncated)".into()),
        Some(Err(e)) => Err(format!("the answer's JSON is malformed: {e}")),
        None => Err("the answer holds no JSON object".into()),
    }
}

/// R2P's fingerprint from the VLM's answer: `general` (non-empty), `category`, `distinct features` (1 to 20
/// non-empty strings; a single string is taken as one feature).
pub fn parse_fingerprint(text: &str) -> Result<Fingerprint, String> {
    let mut m = first_object(text)?;
    let string = |m: &mut Map<String, Value>, k: &str| match m.remove(k) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Some(_) => Err(format!("`{k}` is not a non-empty string")),
        None => Err(format!("`{k}` is missing")),
    };
    let general = string(&mut m, "general")?;
    let category = string(&mut m, "category")?;
    let features = match m.remove("distinct features") {
        Some(Value::Array(a)) => a
            .into_iter()
            .map(|v| match v {
                Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
                _ => Err("`distinct features` holds a value that is not a non-empty string".to_string()),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(Value::String(s)) if !s.trim().is_empty() => vec![s.trim().to_string()],
        Some(_) => return Err("`distinct features` is not a list of strings".into()),
        None => return Err("`distinct features` is missing".into()),
    };
    if features.is_empty() || features.len() > 20 {
        return Err(format!("`distinct features` has {} entries (1 to 20)", features.len()));
    }
    Ok(Fingerprint { general, category, distinct_features: features, extra: m })
}

/// Stage 1's answer: the attributes each option shares with the query, the reasoning and the chosen option.
#[derive(Clone, Debug, PartialEq)]
pub struct Stage1Answer {
    /// Shared attributes per option (empty for "None").
    pub attributes: Vec<Vec<String>>,
    /// The model's reasoning.
    pub reasoning: String,
    /// The chosen option (index into the options).
    pub answer: usize,
}

/// The option letters, in order.
pub const LETTERS: [&str; 5] = ["A", "B", "C", "D", "E"];

/// Split an attribute phrase ("black collar, curly tail") into attributes; "None" (any case) gives none.
pub fn split_attributes(s: &str) -> Vec<String> {
    s.split([',', ';'])
        .map(str::trim)
        .filter(|a| !a.is_empty() && !a.eq_ignore_ascii_case("none") && !a.eq_ignore_ascii_case("none."))
        .map(str::to_string)
        .collect()
}

/// Parse stage 1's JSON (`{"A": ..., "B": ..., "Reasoning": ..., "Answer": "A"}`) for `options` options. Every
/// option key must be there (a string, or a list of strings) and `Answer` must name one of them.
pub fn parse_stage1(text: &str, options: usize) -> Result<Stage1Answer, String> {
    let m = first_object(text)?;
    let mut attributes = Vec::new();
    for l in &LETTERS[..options] {
        let a = match m.get(*l) {
            Some(Value::String(s)) => split_attributes(s),
            Some(Value::Array(v)) => v.iter().filter_map(Value::as_str).flat_map(split_attributes).collect(),
            Some(Value::Null) => Vec::new(),
            Some(_) => return Err(format!("option {l} is not text")),
            None => return Err(format!("option {l} is missing")),
        };
        attributes.push(a);
    }
    let reasoning = m.get("Reasoning").and_then(Value::as_str).unwrap_or("").to_string();
    let ans = m.get("Answer").and_then(Value::as_str).ok_or("`Answer` is missing")?;
    let letter = ans.trim().trim_start_matches("Option").trim().trim_end_matches(['.', ')']).trim();
    let answer = LETTERS[..options]
        .iter()
        .position(|l| letter.eq_ignore_ascii_case(l))
        .ok_or_else(|| format!("`Answer` is {ans:?}, not one of {}", LETTERS[..options].join(", ")))?;
    Ok(Stage1Answer { attributes, reasoning, answer })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_valid_fenced_malformed_and_truncated() {
        let ok = "Sure!\n```json\n{\"general\": \"A shiba.\", \"category\": \"dog\", \"distinct features\": \
                  [\"black collar\", \" curly tail \"]}\n```";
        let f = parse_fingerprint(ok).unwrap();
        assert_eq!((f.general.as_str(), f.category.as_str()), ("A shiba.", "dog"));
        assert_eq!(f.distinct_features, ["black collar", "curly tail"]);
        let one = r#"{"general": "A cat.", "category": "cat", "distinct features": "white paws", "age": 3}"#;
        let f = parse_fingerprint(one).unwrap();
        assert_eq!(f.distinct_features, ["white paws"]);
        assert_eq!(f.extra["age"], 3);
        for (bad, why) in [
            ("I cannot see a dog.", "holds no JSON object"),
            (r#"{"general": "A shiba.", "category": "dog", "distinct features": ["black"#, "cut off (truncated)"),
            (r#"{"general": "A shiba." "category": "dog"}"#, "malformed"),
            (
                r#"{"general": "", "category": "dog", "distinct features": ["x"]}"#,
                "`general` is not a non-empty string",
            ),
            (r#"{"general": "A.", "category": "dog"}"#, "`distinct features` is missing"),
            (r#"{"general": "A.", "category": "dog", "distinct features": []}"#, "has 0 entries"),
            (r#"{"general": "A.", "category": "dog", "distinct features": [1]}"#, "not a non-empty string"),
            ("[1, 2]", "holds no JSON object"),
        ] {
            let e = parse_fingerprint(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn stage_one_answers() {
        let ok = r#"{"A": "black collar, curly tail", "B": "None", "C": ["white paws"], "Reasoning": "A matches.", "Answer": "A"}"#;
        let a = parse_stage1(ok, 3).unwrap();
        assert_eq!(
            a.attributes,
            [vec!["black collar".to_string(), "curly tail".into()], vec![], vec!["white paws".into()]]
        );
        assert_eq!((a.answer, a.reasoning.as_str()), (0, "A matches."));
        assert_eq!(parse_stage1(&ok.replace("\"Answer\": \"A\"", "\"Answer\": \"Option c.\""), 3).unwrap().answer, 2);
        for (bad, why) in [
            (r#"{"A": "x", "B": "y", "C": "z", "Answer": "D"}"#, "not one of A, B, C"),
            (r#"{"A": "x", "C": "z", "Answer": "A"}"#, "option B is missing"),
            (r#"{"A": "x", "B": "y", "C": "z", "Reasoning": "because"#, "truncated"),
            (r#"{"A": "x", "B": "y", "C": "z"}"#, "`Answer` is missing"),
            (r#"{"A": 1, "B": "y", "C": "z", "Answer": "A"}"#, "option A is not text"),
        ] {
            let e = parse_stage1(bad, 3).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert_eq!(split_attributes(" none "), Vec::<String>::new());
    }
}
