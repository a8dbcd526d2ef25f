//! Evaluation query lists (`{image: [names]}`) and caption result files (`[image, [names], caption, question]`).

use std::path::Path;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::DataError;
use crate::atomic::write_json_atomic;
use crate::json::array_items;

/// The ground truth of one query image: one concept set (most lists) or several (the 4-concept list asks
/// about several concept sets for the same group photo).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum QuerySets {
    /// One set of concept keys.
    One(Vec<String>),
    /// Several sets, each a separate query.
    Many(Vec<Vec<String>>),
}

/// A query list: image path -> ground-truth concept keys, in file order (`{image: [names]}`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QueryList {
    /// Entries as the file has them.
    pub entries: IndexMap<String, QuerySets>,
}

impl QueryList {
    /// Every query as (image, concept keys); an image with several sets yields several queries.
    pub fn queries(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.entries.iter().flat_map(|(img, sets)| {
            let sets: Vec<&[String]> = match sets {
                QuerySets::One(v) => vec![v.as_slice()],
                QuerySets::Many(v) => v.iter().map(Vec::as_slice).collect(),
            };
            sets.into_iter().map(move |s| (img.as_str(), s))
        })
    }

    /// Add a one-set query.
    pub fn insert(&mut self, image: String, concepts: Vec<String>) {
        self.entries.insert(image, QuerySets::One(concepts));
    }
}

/// Read a query list.
pub fn load_query_list(path: &Path) -> Result<QueryList, DataError> {
    let src = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    parse_query_list(&src, path)
}

/// Parse the text of a query list; `path` names it in errors.
pub fn parse_query_list(src: &str, path: &Path) -> Result<QueryList, DataError> {
    serde_json::from_str(src).map_err(|e| DataError::json(path, &e))
}

/// Write a query list atomically.
pub fn save_query_list(path: &Path, list: &QueryList) -> Result<(), DataError> {
    write_json_atomic(path, list)
}

/// The on-disk form of a caption result.
type ResultRow = (String, Vec<String>, String, String);

/// One captioning result: the query, its ground-truth concepts, the model's caption and the question asked.
/// It reads and writes as RePIC's `[image, [names], caption, question]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(into = "ResultRow", from = "ResultRow")]
pub struct CaptionResult {
    /// Query image path.
    pub image: String,
    /// Ground-truth concept keys.
    pub concepts: Vec<String>,
    /// The generated caption.
    pub caption: String,
    /// The question the model was given.
    pub question: String,
}

impl From<CaptionResult> for ResultRow {
    fn from(r: CaptionResult) -> Self {
        (r.image, r.concepts, r.caption, r.question)
    }
}

impl From<ResultRow> for CaptionResult {
    fn from((image, concepts, caption, question): ResultRow) -> Self {
        CaptionResult { image, concepts, caption, question }
    }
}

/// Read a caption result file: a JSON list of `[image, [names], caption, question]`; errors name the line.
pub fn load_caption_results(path: &Path) -> Result<Vec<CaptionResult>, DataError> {
    let src = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    parse_caption_results(&src, path)
}

/// Parse the text of a caption result file; `path` names it in errors.
pub fn parse_caption_results(src: &str, path: &Path) -> Result<Vec<CaptionResult>, DataError> {
    array_items(src, path)?
        .into_iter()
        .map(|(line, v)| {
            let (image, concepts, caption, question): (String, Vec<String>, String, String) = serde_json::from_value(v)
                .map_err(|e| {
                    DataError::field(
                        path,
                        line,
                        "(result)",
                        format!("expected [image, [names], caption, question]: {e}"),
                    )
                })?;
            Ok(CaptionResult { image, concepts, caption, question })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_result_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        std::fs::write(
            &p,
            "[\n  [\"a.jpg\", [\"<a>\"], \"<a> runs\", \"q\"],\n  [\"b.jpg\", \"<b>\", \"c\", \"q\"]\n]",
        )
        .unwrap();
        let e = load_caption_results(&p).unwrap_err().to_string();
        assert!(e.contains("r.json:3: field `(result)`"), "{e}");
        std::fs::write(&p, "[[\"a.jpg\", [\"<a>\"], \"<a> runs\", \"q\"]]").unwrap();
        assert_eq!(load_caption_results(&p).unwrap()[0].concepts, ["<a>"]);
    }
}
