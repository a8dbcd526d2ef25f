//! The data layer on the real RePIC release files in `../shared/fixtures/repic/` (read in place).

use std::path::PathBuf;

use repic_data::{ConceptDb, Info, load_caption_results, load_query_list};
use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/repic/data")
}

#[test]
fn every_release_database_loads_and_round_trips_losslessly() {
    let root = fixtures().join("database_tot");
    let mut n = 0;
    for dir in std::fs::read_dir(&root).unwrap() {
        for f in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            let path = f.unwrap().path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let db = ConceptDb::load(&path).unwrap();
            assert!(!db.concept_dict.is_empty(), "{}", path.display());
            let original: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            assert_eq!(serde_json::to_value(&db).unwrap(), original, "{}", path.display());
            for (key, c) in &db.concept_dict {
                assert!(matches!(c.info, Info::Text(_)));
                for img in c.image.paths() {
                    assert_eq!(db.concept_of_image(img), Some(key.as_str()), "{}", path.display());
                }
            }
            n += 1;
        }
    }
    assert_eq!(n, 9);
}

#[test]
fn display_names_differ_from_keys_in_the_4_concept_db() {
    let db = ConceptDb::load(&fixtures().join("database_tot/database_4_concepts/database_mod.json")).unwrap();
    assert_eq!(db.concept_dict["<ironman>"].name, "Iron Man");
    // The dreambooth RAP file spells index paths without "./": lookups still resolve.
    let dream = ConceptDb::load(&fixtures().join("database_tot/database_dreambooth/database.json")).unwrap();
    assert_eq!(dream.concept_of_image("./database_dreambooth/backpack.jpg"), Some("<backpack>"));
}

#[test]
fn query_lists_and_results_load() {
    let q = load_query_list(&fixtures().join("query_tot/2_concept_query_templates.json")).unwrap();
    let (img, first) = q.queries().next().unwrap();
    assert_eq!(
        (img, first),
        (
            "./data/query-image-2-concepts/Anya_and_Bond/Anya_and_Bond_1.jpg",
            &["<Anya>".to_string(), "<Bond>".to_string()][..]
        )
    );
    assert_eq!(q.queries().count(), 82);
    // The 4-concept list holds several concept sets per group photo: 105 queries over 4 images.
    let q4 = load_query_list(&fixtures().join("query_tot/4_concept_query_templates.json")).unwrap();
    assert_eq!(q4.entries.len(), 4);
    assert_eq!(q4.queries().count(), 105);
    assert!(q4.queries().all(|(_, c)| c.len() == 4));
    let original: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("query_tot/4_concept_query_templates.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(serde_json::to_value(&q4).unwrap(), original);
    for f in ["myvlm", "yollava", "dreambooth"] {
        let q = load_query_list(&fixtures().join(format!("query_tot/{f}_query_templates.json"))).unwrap();
        assert!(q.queries().all(|(_, c)| c.len() == 1));
    }
    let r = load_caption_results(&fixtures().join("../captioning/double_concept/captioning-skip-retrieval-ours.json"));
    assert_eq!(r.unwrap().len(), 82);
}
