//! Fuzzing every data parser (records, concept databases, query lists, caption results) with property tests:
//! valid documents (RePIC's release files among them) with random byte edits, and arbitrary text. A parser
//! returns a value or an error naming the file, never panics, and what it accepts round-trips. Bounded (a few
//! hundred cases per parser) so that CI runs it; proptest keeps failing cases in `proptest-regressions/`.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use repic_data::{ConceptDb, Record, RecordFormat, parse_caption_results, parse_query_list, parse_records};
use repic_testkit::{Edit, apply_edits, fixed};

const CASES: u32 = 256;

/// Bytes of the format's syntax that edits favour.
const ALPHABET: &[u8] = b"[]{}\",:0123456789-.e aI<>/\n\\";

/// Edits drawn from anything or from the format's syntax.
fn edits() -> impl Strategy<Value = Vec<Edit>> {
    repic_testkit::edits(ALPHABET)
}

fn release(rel: &str) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/repic");
    std::fs::read_to_string(root.join(rel)).unwrap()
}

const RECORDS: &str = r#"{"image": ["r.png", "q.png"], "problem": "Is <bo> in the image?", "solution": "yes", "accu_reward_method": "yes_no"}
{"image": "q.png", "problem": "Where is <bo>?", "solution": [10, 20, 110, 120], "accu_reward_method": "iou"}
{"image": ["r.png", "q.png"], "problem": "Who is this?", "solution": "<bo>", "accu_reward_method": "yes_no_name"}
{"image": ["a.png", "b.png", "q.png"], "problem": "Describe.", "solution": ["<a>", "<b>"], "accu_reward_method": "yes_no_name_multi", "answer": "<a> and <b>"}
{"image": ["p.png", "n.png", "x.png", "y.png"], "problem": "Which?", "solution": "Image A", "accu_reward_method": "preference"}
"#;

/// What a parser accepted must survive being written and read again unchanged.
fn records_round_trip(recs: &[Record]) {
    for fmt in [RecordFormat::Jsonl, RecordFormat::JsonArray] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(if fmt == RecordFormat::Jsonl { "r.jsonl" } else { "r.json" });
        repic_data::save_records(&path, recs, fmt).unwrap();
        assert_eq!(repic_data::load_records(&path).unwrap(), recs);
    }
    for r in recs {
        assert!(!r.images.is_empty() && r.images.iter().all(|i| !i.trim().is_empty()));
    }
}

proptest! {
    #![proptest_config(fixed(CASES))]

    #[test]
    fn records(e in edits(), noise in any::<String>(), array in any::<bool>()) {
        let p = Path::new("train.jsonl");
        let base = if array {
            let recs = parse_records(RECORDS, p).unwrap();
            serde_json::to_string_pretty(&recs.iter().map(Record::to_json).collect::<Vec<_>>()).unwrap()
        } else {
            RECORDS.to_string()
        };
        for src in [apply_edits(&base, &e), noise] {
            match parse_records(&src, p) {
                Ok(recs) => records_round_trip(&recs),
                Err(err) => prop_assert!(err.to_string().starts_with("train.jsonl"), "{err}"),
            }
        }
    }

    #[test]
    fn concept_databases(e in edits(), noise in any::<String>(), which in 0usize..3) {
        let base = release(["data/database_tot/database_2_concepts/database.json",
            "data/database_tot/database_4_concepts/database_mod.json",
            "data/database_tot/database_yollava/database.json"][which]);
        let p = Path::new("database.json");
        for src in [apply_edits(&base, &e), noise] {
            match ConceptDb::parse(&src, p) {
                Ok(db) => {
                    let again = ConceptDb::parse(&serde_json::to_string(&db).unwrap(), p).unwrap();
                    prop_assert_eq!(again, db);
                }
                Err(err) => prop_assert!(err.to_string().starts_with("database.json"), "{err}"),
            }
        }
    }

    #[test]
    fn query_lists_and_caption_results(e in edits(), noise in any::<String>()) {
        let queries = release("data/query_tot/2_concept_query_templates.json");
        let results = release("captioning/double_concept/captioning-skip-retrieval-ours.json");
        for src in [apply_edits(&queries, &e), noise.clone()] {
            if let Err(err) = parse_query_list(&src, Path::new("q.json")) {
                prop_assert!(err.to_string().starts_with("q.json"), "{err}");
            }
        }
        for src in [apply_edits(&results, &e), noise] {
            match parse_caption_results(&src, Path::new("r.json")) {
                Ok(rows) => prop_assert!(rows.len() < 100_000),
                Err(err) => prop_assert!(err.to_string().starts_with("r.json"), "{err}"),
            }
        }
    }
}
