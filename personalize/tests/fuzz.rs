//! Fuzzing the readers of model answers (R2P fingerprints and stage 1, PreferThinker's grammar) with byte edits
//! of valid answers and arbitrary text, and database import with databases of hostile keys, names and paths. A reader
//! returns a value or a reason, never panics; an import either succeeds whole or leaves the store exactly as it was.

use std::path::PathBuf;

use proptest::prelude::*;
use repic_data::ConceptDb;
use repic_personalize::prefer::parse_assessment;
use repic_personalize::r2p::parse::{parse_fingerprint, parse_stage1};
use repic_personalize::{ConceptStore, ImageMode, ImportOptions, SqliteStore};
use repic_testkit::{Edit, apply_edits, fixed};

const ALPHABET: &[u8] = b"[]{}\",:<>/0123456789+= ABIaegm\n";

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    repic_testkit::edits(ALPHABET)
}

const FINGERPRINT: &str =
    r#"Here: {"general": "A shiba.", "category": "dog", "distinct features": ["black collar", "curly tail"]}"#;
const STAGE1: &str = r#"{"A": "black collar", "B": "None", "C": "curly tail, red", "Reasoning": "A.", "Answer": "A"}"#;
const ASSESSMENT: &str = "<visual preference profile>\nArt Style: ink\nColor: warm\nArtistic Medium: oil\n\
    Saturation: high\nDetail: rich\n</visual preference profile>\n<visual non-preference profile>\nArt Style: \
    pixel\nColor: cold\nArtistic Medium: digital\nSaturation: low\nDetail: flat\n</visual non-preference profile>\n\
    <think>Image A: total_score=5+4+4+3+4=20\nImage B: total_score=1+2+0+3+1=7</think>\n<answer>Image A</answer>";
proptest! {
    #![proptest_config(fixed(256))]

    #[test]
    fn answer_readers_never_panic(e in edits(), noise in any::<String>()) {
        for text in [apply_edits(FINGERPRINT, &e), noise.clone()] {
            if let Ok(f) = parse_fingerprint(&text) {
                prop_assert!(!f.general.is_empty() && !f.distinct_features.is_empty());
            }
        }
        for text in [apply_edits(STAGE1, &e), noise.clone()] {
            if let Ok(a) = parse_stage1(&text, 3) {
                prop_assert!(a.answer < 3 && a.attributes.len() == 3);
            }
        }
        for text in [apply_edits(ASSESSMENT, &e), noise] {
            if let Ok(a) = parse_assessment(&text) {
                prop_assert!(a.choice == "Image A" || a.choice == "Image B");
                prop_assert_eq!(a.a.dimensions.iter().sum::<u32>(), a.a.total);
            }
        }
    }
}

/// A database of 1 to 4 concepts whose keys, names, categories and image paths are drawn from well-formed and
/// hostile values (no brackets, control characters, `..`, absolute paths, backslashes, empty strings).
fn database() -> impl Strategy<Value = serde_json::Value> {
    let key = prop_oneof![12 => "<[a-z_]{1,6}>", 1 => ".{0,6}", 1 => "<[a-z]{0,3}[<>\n\t ][a-z]{0,3}>"];
    let path = prop_oneof![16 => "[a-z]{1,5}/[a-z]{1,5}\\.png", 1 => "\\.\\./[a-z]\\.png", 1 => "/[a-z]\\.png", 1 => "[a-z]\\\\[a-z]\\.png", 1 => ".{0,6}"];
    let label = prop_oneof![12 => "[A-Za-z][A-Za-z ]{0,7}", 1 => ".{0,6}"];
    let concept = (key, label.clone(), proptest::collection::vec(path, 1..3), proptest::option::of(label));
    proptest::collection::vec(concept, 1..5).prop_map(|cs| {
        let mut dict = serde_json::Map::new();
        let mut index = serde_json::Map::new();
        for (key, name, paths, category) in cs {
            index.insert(paths[0].clone(), key.clone().into());
            let mut c = serde_json::json!({"name": name, "image": paths, "info": "x"});
            if let Some(cat) = category {
                c["category"] = cat.into();
            }
            dict.insert(key, c);
        }
        index.retain(|_, k| dict.contains_key(k.as_str().unwrap()));
        serde_json::json!({"concept_dict": dict, "path_to_concept": index})
    })
}

proptest! {
    #![proptest_config(fixed(128))]

    #[test]
    fn an_import_is_whole_or_nothing(v in database()) {
        let db = ConceptDb::parse(&v.to_string(), std::path::Path::new("db.json")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::create(&dir.path().join("s")).unwrap();
        let opts = ImportOptions { image_root: PathBuf::new(), images: ImageMode::PathsOnly, replace: false };
        match store.import(&db, &opts) {
            Ok(r) => {
                prop_assert_eq!(r.added, db.concept_dict.len());
                let back = store.export().unwrap();
                prop_assert_eq!(serde_json::to_value(&back).unwrap(), serde_json::to_value(&db).unwrap());
                for c in store.concepts().unwrap() {
                    prop_assert!(c.images.iter().all(|i| !i.path.contains("..") && !i.path.starts_with('/')));
                }
            }
            Err(_) => prop_assert!(store.concepts().unwrap().is_empty()),
        }
    }
}
