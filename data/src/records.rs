//! RePIC training records (JSON array or JSONL), validated field by field with file and line in every error.

use std::path::Path;

use repic_rewards::{GroundTruth, Method};
use serde_json::{Map, Value};

use crate::DataError;
use crate::atomic::{to_pretty_json, write_atomic};
use crate::json::array_items;

/// One training record: images (references first, query last), the instruction, the ground truth and its reward.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Image paths, relative to the data set's image root.
    pub images: Vec<String>,
    /// Instruction and question, with `<name>` tokens.
    pub problem: String,
    /// Ground truth for the reward.
    pub solution: GroundTruth,
    /// Which reward applies (`accu_reward_method`).
    pub method: Method,
    /// Fields we do not interpret, kept so that a rewritten file loses nothing.
    pub extra: Map<String, Value>,
}

/// On-disk layout of a record file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordFormat {
    /// One JSON array of records (RePIC's release).
    JsonArray,
    /// One record per line.
    Jsonl,
}

impl RecordFormat {
    /// `.jsonl` files are JSONL, everything else a JSON array.
    pub fn from_path(path: &Path) -> Self {
        if path.extension().is_some_and(|e| e == "jsonl") { RecordFormat::Jsonl } else { RecordFormat::JsonArray }
    }
}

/// Parse the text of a record file; `path` is only used in error messages. A text starting with `[` is a JSON
/// array, anything else JSONL (blank lines allowed).
pub fn parse_records(src: &str, path: &Path) -> Result<Vec<Record>, DataError> {
    if src.trim_start().starts_with('[') {
        array_items(src, path)?.into_iter().map(|(line, v)| record_from_value(v, path, line)).collect()
    } else {
        let mut out = Vec::new();
        for (i, text) in src.lines().enumerate() {
            if text.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(text).map_err(|e| DataError::Syntax {
                path: path.into(),
                line: i + 1,
                msg: e.to_string(),
            })?;
            out.push(record_from_value(v, path, i + 1)?);
        }
        Ok(out)
    }
}

/// Read and validate a record file (JSON array or JSONL).
pub fn load_records(path: &Path) -> Result<Vec<Record>, DataError> {
    let src = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    parse_records(&src, path)
}

/// Write records atomically, as a JSON array or JSONL according to `format`.
pub fn save_records(path: &Path, records: &[Record], format: RecordFormat) -> Result<(), DataError> {
    let bytes = match format {
        RecordFormat::JsonArray => to_pretty_json(&records.iter().map(Record::to_json).collect::<Vec<_>>()),
        RecordFormat::Jsonl => {
            let mut out = String::new();
            for r in records {
                out.push_str(&r.to_json().to_string());
                out.push('\n');
            }
            out.into_bytes()
        }
    };
    write_atomic(path, &bytes)
}

fn record_from_value(v: Value, path: &Path, line: usize) -> Result<Record, DataError> {
    let err = |field: &str, msg: &str| DataError::field(path, line, field, msg);
    let Value::Object(mut obj) = v else { return Err(err("(record)", "a record must be a JSON object")) };
    let method = match obj.remove("accu_reward_method") {
        None | Some(Value::Null) => Method::DEFAULT,
        Some(Value::String(s)) => s.parse().map_err(|m: String| err("accu_reward_method", &m))?,
        Some(_) => return Err(err("accu_reward_method", "expected a string")),
    };
    let images = match obj.remove("image") {
        Some(Value::String(s)) if !s.trim().is_empty() => vec![s],
        Some(Value::String(_)) => return Err(err("image", "the path is empty")),
        Some(Value::Array(a)) if !a.is_empty() => a
            .into_iter()
            .map(|x| match x {
                Value::String(s) if !s.trim().is_empty() => Ok(s),
                _ => Err(err("image", "every entry must be a non-empty path")),
            })
            .collect::<Result<_, _>>()?,
        Some(Value::Array(_)) => return Err(err("image", "the image list is empty")),
        Some(_) => return Err(err("image", "expected a path or a list of paths")),
        None => return Err(err("image", "missing")),
    };
    let problem = match obj.remove("problem") {
        Some(Value::String(s)) => s,
        Some(_) => return Err(err("problem", "expected a string")),
        None => return Err(err("problem", "missing")),
    };
    let solution = obj.remove("solution").ok_or_else(|| err("solution", "missing"))?;
    let solution = solution_for(method, solution).map_err(|m| err("solution", &m))?;
    Ok(Record { images, problem, solution, method, extra: obj })
}

/// Check and convert a `solution` value for `method`; the message says what was expected.
fn solution_for(method: Method, v: Value) -> Result<GroundTruth, String> {
    let m = method.as_str();
    match (method, v) {
        // Exactly yes or no (any case, a final full stop allowed): "I know nothing" would read as "no".
        (Method::YesNo, Value::String(s))
            if matches!(s.trim().trim_end_matches('.').to_lowercase().as_str(), "yes" | "no") =>
        {
            Ok(GroundTruth::Text(s))
        }
        (Method::YesNo, _) => Err(format!("`{m}` records need \"yes\" or \"no\"")),
        (Method::Preference, Value::String(s)) if matches!(s.trim(), "Image A" | "Image B") => Ok(GroundTruth::Text(s)),
        (Method::YesNoName, Value::String(s)) if !s.trim().is_empty() => Ok(GroundTruth::Text(s)),
        (Method::YesNoName, _) => Err(format!("`{m}` records need a concept name such as \"<bo>\"")),
        (Method::Preference, _) => Err(format!("`{m}` records need \"Image A\" or \"Image B\"")),
        (Method::YesNoNameMulti, Value::String(s)) if !s.trim().is_empty() => Ok(GroundTruth::Names(vec![s])),
        (Method::YesNoNameMulti, Value::Array(a)) if !a.is_empty() => a
            .into_iter()
            .map(|x| match x {
                Value::String(s) if !s.trim().is_empty() => Ok(s),
                _ => Err(format!("`{m}` names must be non-empty strings")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(GroundTruth::Names),
        (Method::YesNoNameMulti, _) => Err(format!("`{m}` records need a non-empty list of names")),
        (Method::Iou, Value::Array(a)) if a.len() == 4 => a
            .iter()
            .map(|x| x.as_i64().filter(|v| *v >= 0))
            .collect::<Option<Vec<_>>>()
            .filter(|b| b[0] < b[2] && b[1] < b[3])
            .map(GroundTruth::Box)
            .ok_or_else(|| {
                format!("`{m}` boxes must be four non-negative integers [x1, y1, x2, y2] with x1 < x2, y1 < y2")
            }),
        (Method::Iou, _) => Err(format!("`{m}` records need a box [x1, y1, x2, y2]")),
    }
}

/// Check that every image the records name exists under `image_root` and is a readable image (its header is
/// decoded, not the pixels), so that a bad image fails before training rather than when the shuffled order
/// reaches it. `records_path` names the file in errors; records are counted from 1.
pub fn check_images(records: &[Record], image_root: &Path, records_path: &Path) -> Result<(), DataError> {
    let mut seen = std::collections::HashSet::new();
    for (i, r) in records.iter().enumerate() {
        for image in &r.images {
            let path = image_root.join(image);
            if !seen.insert(path.clone()) {
                continue;
            }
            let bad = |msg: String| DataError::Invalid {
                path: records_path.into(),
                msg: format!("record {}: image {}: {msg}", i + 1, path.display()),
            };
            if !path.is_file() {
                return Err(bad("does not exist".into()));
            }
            image::ImageReader::open(&path)
                .and_then(|reader| reader.with_guessed_format())
                .map_err(|e| bad(e.to_string()))?
                .into_dimensions()
                .map_err(|e| bad(format!("not a readable image ({e})")))?;
        }
    }
    Ok(())
}

impl Record {
    /// The record in RePIC's JSON form (a single image as a string, several as a list).
    pub fn to_json(&self) -> Value {
        let mut obj = Map::new();
        let image = match self.images.as_slice() {
            [one] => Value::String(one.clone()),
            many => Value::from(many.to_vec()),
        };
        obj.insert("image".into(), image);
        obj.insert("problem".into(), Value::String(self.problem.clone()));
        let solution = serde_json::to_value(&self.solution).expect("ground truths serialize");
        obj.insert("solution".into(), solution);
        obj.insert("accu_reward_method".into(), Value::String(self.method.as_str().into()));
        for (k, v) in &self.extra {
            obj.insert(k.clone(), v.clone());
        }
        Value::Object(obj)
    }

    /// The query image (the last one).
    pub fn query_image(&self) -> &str {
        self.images.last().map(String::as_str).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("train.jsonl")
    }

    #[test]
    fn solutions_and_paths_that_would_be_misread_are_refused() {
        let rec = |image: &str, solution: &str, method: &str| {
            let src = format!(
                r#"{{"image": {image}, "problem": "p", "solution": {solution}, "accu_reward_method": "{method}"}}"#
            );
            parse_records(&src, p()).map_err(|e| e.to_string())
        };
        assert!(rec(r#""q.png""#, r#""Yes.""#, "yes_no").is_ok());
        assert!(rec(r#""q.png""#, r#""I know nothing""#, "yes_no").unwrap_err().contains("need \"yes\" or \"no\""));
        assert!(rec(r#""q.png""#, "[50, 50, 10, 10]", "iou").unwrap_err().contains("x1 < x2"));
        assert!(rec(r#""q.png""#, "[5, 5, 5, 9]", "iou").is_err(), "an empty box");
        assert!(rec(r#""q.png""#, r#""Image B""#, "preference").is_ok());
        assert!(rec(r#""q.png""#, r#""Image C""#, "preference").unwrap_err().contains("Image A"));
        assert!(rec(r#""""#, r#""yes""#, "yes_no").unwrap_err().contains("field `image`: the path is empty"));
        assert!(rec(r#"["r.png", " "]"#, r#""yes""#, "yes_no").unwrap_err().contains("non-empty path"));
    }

    #[test]
    fn every_image_is_checked_before_training() {
        let dir = tempfile::tempdir().unwrap();
        image::RgbImage::new(4, 4).save(dir.path().join("ok.png")).unwrap();
        std::fs::write(dir.path().join("fake.png"), "not an image").unwrap();
        let recs = |images: &[&str]| -> Vec<Record> {
            images
                .iter()
                .map(|i| Record {
                    images: vec!["ok.png".into(), i.to_string()],
                    problem: "p".into(),
                    solution: GroundTruth::Text("yes".into()),
                    method: Method::YesNo,
                    extra: Default::default(),
                })
                .collect()
        };
        check_images(&recs(&["ok.png", "ok.png"]), dir.path(), p()).unwrap();
        let e = check_images(&recs(&["ok.png", "gone.png"]), dir.path(), p()).unwrap_err().to_string();
        assert!(e.starts_with("train.jsonl: record 2: image ") && e.ends_with("gone.png: does not exist"), "{e}");
        let e = check_images(&recs(&["fake.png"]), dir.path(), p()).unwrap_err().to_string();
        assert!(e.contains("record 1") && e.contains("fake.png: not a readable image"), "{e}");
    }

    #[test]
    fn array_errors_name_the_line_of_the_record() {
        let src = "[\n  {\"image\": \"a.png\", \"problem\": \"q\", \"solution\": \"yes\", \"accu_reward_method\": \"yes_no\"},\n  {\"image\": \"b.png\",\n   \"problem\": \"q\", \"solution\": [1, 2, 3]}\n]";
        let e = parse_records(src, Path::new("t.json")).unwrap_err().to_string();
        assert_eq!(e, "t.json:3: field `solution`: `iou` records need a box [x1, y1, x2, y2]");
    }

    #[test]
    fn jsonl_errors_and_defaults() {
        let good = r#"{"image": ["r.png", "q.png"], "problem": "p", "solution": ["<a>", "<b>"], "accu_reward_method": "yes_no_name_multi", "id": 7}"#;
        let recs = parse_records(
            &format!("{good}\n\n{{\"image\": \"q.png\", \"problem\": \"p\", \"solution\": [1, 2, 30, 40]}}\n"),
            p(),
        )
        .unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].solution, GroundTruth::Names(vec!["<a>".into(), "<b>".into()]));
        assert_eq!(recs[0].extra["id"], 7);
        assert_eq!(recs[1].method, Method::Iou);
        let e = parse_records(&format!("{good}\n{{\"image\": \"q.png\", \"problem\": \"p\", \"solution\": \"yes\", \"accu_reward_method\": \"yesno\"}}"), p()).unwrap_err();
        assert!(
            e.to_string().starts_with("train.jsonl:2: field `accu_reward_method`: unknown accu_reward_method `yesno`"),
            "{e}"
        );
        let e = parse_records(&format!("{good}\n{{\"image\": \"q.png\", \"problem\": \"p\"\n"), p()).unwrap_err();
        assert!(e.to_string().starts_with("train.jsonl:2: "), "{e}");
        let e =
            parse_records(r#"{"image": "q.png", "solution": "yes", "accu_reward_method": "yes_no"}"#, p()).unwrap_err();
        assert_eq!(e.to_string(), "train.jsonl:1: field `problem`: missing");
        let e = parse_records(
            r#"{"image": "q.png", "problem": "x", "solution": "maybe", "accu_reward_method": "yes_no"}"#,
            p(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("field `solution`"), "{e}");
        let e = parse_records(r#"{"image": "q.png", "problem": "x", "solution": [1, -2, 3, 4]}"#, p()).unwrap_err();
        assert!(e.to_string().contains("non-negative integers"), "{e}");
    }

    #[test]
    fn round_trip_both_formats() {
        let src = r#"{"image": ["r.png", "q.png"], "problem": "p", "solution": "<bo>", "accu_reward_method": "yes_no_name", "source": "x"}
{"image": "q.png", "problem": "p", "solution": [1, 2, 30, 40], "accu_reward_method": "iou"}"#;
        let recs = parse_records(src, p()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for (name, fmt) in [("a.json", RecordFormat::JsonArray), ("a.jsonl", RecordFormat::Jsonl)] {
            let path = dir.path().join(name);
            assert_eq!(RecordFormat::from_path(&path), fmt);
            save_records(&path, &recs, fmt).unwrap();
            assert_eq!(load_records(&path).unwrap(), recs);
        }
    }
}
