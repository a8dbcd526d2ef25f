//! The RAP concept database (`database.json`), in both the RAP form and R2P's (image lists, fingerprint info).

use std::path::Path;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::DataError;
use crate::atomic::write_json_atomic;

/// A concept's reference image(s): one path (RAP) or several (R2P).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Images {
    /// A single path.
    One(String),
    /// Several paths.
    Many(Vec<String>),
}

impl Images {
    /// All paths, in order.
    pub fn paths(&self) -> &[String] {
        match self {
            Images::One(p) => std::slice::from_ref(p),
            Images::Many(v) => v,
        }
    }
}

/// R2P's fingerprint attributes of a concept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// One-sentence description.
    pub general: String,
    /// Category, e.g. "dog".
    pub category: String,
    /// What makes this concept unique.
    #[serde(rename = "distinct features")]
    pub distinct_features: Vec<String>,
    /// Keys we do not interpret, kept for round trips.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A concept's description: free text (RAP) or a fingerprint (R2P).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Info {
    /// Free text.
    Text(String),
    /// Structured attributes.
    Fingerprint(Fingerprint),
}

impl Info {
    /// The description as one line of text (a fingerprint's general sentence and its features).
    pub fn as_text(&self) -> String {
        match self {
            Info::Text(t) => t.clone(),
            Info::Fingerprint(f) if f.distinct_features.is_empty() => f.general.clone(),
            Info::Fingerprint(f) => format!("{} Distinct features: {}.", f.general, f.distinct_features.join("; ")),
        }
    }
}

/// One entry of `concept_dict`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Concept {
    /// Display name ("Iron Man" for `<ironman>`).
    pub name: String,
    /// Reference image path(s).
    pub image: Images,
    /// Description.
    pub info: Info,
    /// Category, used as a detector class by RAP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Keys we do not interpret, kept for round trips.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A RAP `database.json`: concepts keyed by bracketed name, and the image-path index.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConceptDb {
    /// Concepts by key (`<bo>`), in file order.
    pub concept_dict: IndexMap<String, Concept>,
    /// Reference image path -> concept key, kept as the file has it (paths may be spelled differently there).
    #[serde(default)]
    pub path_to_concept: IndexMap<String, String>,
    /// Top-level keys we do not interpret, kept for round trips.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn same_path(a: &str, b: &str) -> bool {
    a.trim_start_matches("./") == b.trim_start_matches("./")
}

impl ConceptDb {
    /// Parse database text; `path` is used in error messages. Every `path_to_concept` entry must name a concept.
    pub fn parse(src: &str, path: &Path) -> Result<Self, DataError> {
        let db: ConceptDb = serde_json::from_str(src).map_err(|e| DataError::json(path, &e))?;
        for (img, key) in &db.path_to_concept {
            if !db.concept_dict.contains_key(key) {
                return Err(DataError::Invalid {
                    path: path.into(),
                    msg: format!("path_to_concept[\"{img}\"] names `{key}`, which is not in concept_dict"),
                });
            }
        }
        for (key, c) in &db.concept_dict {
            if c.image.paths().is_empty() {
                return Err(DataError::Invalid {
                    path: path.into(),
                    msg: format!("concept_dict[\"{key}\"].image: the image list is empty"),
                });
            }
        }
        Ok(db)
    }

    /// Read a database file.
    pub fn load(path: &Path) -> Result<Self, DataError> {
        let src = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        Self::parse(&src, path)
    }

    /// Write the database atomically (4-space indented JSON, as RAP writes it).
    pub fn save(&self, path: &Path) -> Result<(), DataError> {
        write_json_atomic(path, self)
    }

    /// Insert or replace a concept, keeping `path_to_concept` in step with its images.
    pub fn upsert(&mut self, key: String, concept: Concept) {
        self.path_to_concept.retain(|_, k| *k != key);
        for p in concept.image.paths() {
            self.path_to_concept.insert(p.clone(), key.clone());
        }
        self.concept_dict.insert(key, concept);
    }

    /// Remove a concept and its image entries; returns it if it existed.
    pub fn remove(&mut self, key: &str) -> Option<Concept> {
        self.path_to_concept.retain(|_, k| k != key);
        self.concept_dict.shift_remove(key)
    }

    /// The concept key owning a reference image path (`./` prefixes ignored).
    pub fn concept_of_image(&self, image: &str) -> Option<&str> {
        if let Some((_, k)) = self.path_to_concept.iter().find(|(p, _)| same_path(p, image)) {
            return Some(k);
        }
        self.concept_dict
            .iter()
            .find(|(_, c)| c.image.paths().iter().any(|p| same_path(p, image)))
            .map(|(k, _)| k.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R2P: &str = r#"{"concept_dict": {"<bo>": {"name": "bo", "image": ["bo1.png", "bo2.png"],
        "info": {"general": "A shiba.", "category": "dog", "distinct features": ["black collar"], "note": 1},
        "category": "dog", "added_by": "me"}}, "path_to_concept": {"bo1.png": "<bo>", "./bo2.png": "<bo>"}}"#;

    #[test]
    fn r2p_form_round_trips_and_paths_resolve() {
        let db = ConceptDb::parse(R2P, Path::new("db.json")).unwrap();
        let c = &db.concept_dict["<bo>"];
        assert_eq!(c.image.paths().len(), 2);
        assert!(matches!(&c.info, Info::Fingerprint(f) if f.distinct_features == ["black collar"]));
        assert_eq!(c.info.as_text(), "A shiba. Distinct features: black collar.");
        assert_eq!(c.extra["added_by"], "me");
        assert_eq!(db.concept_of_image("bo2.png"), Some("<bo>"));
        let back: Value = serde_json::to_value(&db).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(R2P).unwrap());
    }

    #[test]
    fn edits_keep_index_in_step_and_save_is_atomic() {
        let mut db = ConceptDb::parse(R2P, Path::new("db.json")).unwrap();
        let c = Concept {
            name: "mo".into(),
            image: Images::One("mo.png".into()),
            info: Info::Text("A cat.".into()),
            category: Some("cat".into()),
            extra: Map::new(),
        };
        db.upsert("<mo>".into(), c);
        assert_eq!(db.path_to_concept["mo.png"], "<mo>");
        assert!(db.remove("<bo>").is_some());
        assert_eq!(db.path_to_concept.len(), 1);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("database.json");
        db.save(&p).unwrap();
        assert_eq!(ConceptDb::load(&p).unwrap(), db);
    }

    #[test]
    fn dangling_index_entry_is_an_error() {
        let bad = r#"{"concept_dict": {}, "path_to_concept": {"x.png": "<x>"}}"#;
        let e = ConceptDb::parse(bad, Path::new("db.json")).unwrap_err().to_string();
        assert_eq!(e, "db.json: path_to_concept[\"x.png\"] names `<x>`, which is not in concept_dict");
        let e = ConceptDb::parse("{\"concept_dict\": {\"<a>\": {\"name\": \"a\"}}}", Path::new("db.json"));
        assert!(e.unwrap_err().to_string().starts_with("db.json:1: missing field `image`"));
    }
}
