//! Retrieval against transformers: the tiny random CLIP of `models/tests/fixtures/clip` ranks the concepts of
//! `tests/fixtures/retrieval` (made by `scripts/make_retrieval_fixture.py`) for four query images, by RAP's
//! image cosine and by R2P's score; repic's store + encoder + index give the same scores (|diff| <= 1e-4) and
//! the same order wherever transformers' scores are more than 2e-4 apart. Also: embeddings are made once, an
//! edit re-embeds only what changed, and a new encoder re-embeds everything.

use std::path::{Path, PathBuf};

use repic_personalize::store::import_file;
use repic_personalize::{
    ConceptEdit, ConceptStore, CropSource, ImageMode, ImportOptions, RetrieveOptions, Retriever, SqliteStore,
    SyncReport, open_rgb,
};
use serde_json::Value;

type B = repic_models::DefaultBackend;

const TOL: f64 = 1e-4;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/retrieval")
}

fn clip() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/tests/fixtures/clip")
}

fn store_with_fixture(dir: &Path) -> SqliteStore {
    let mut store = SqliteStore::create(&dir.join("store")).unwrap();
    let opts = ImportOptions { image_root: PathBuf::new(), images: ImageMode::Copy, replace: false };
    import_file(&mut store, &fixture().join("database.json"), &opts).unwrap();
    store
}

fn open(store: &mut SqliteStore, clip_dir: Option<&Path>) -> (Retriever<B>, SyncReport) {
    Retriever::<B>::open(store, clip_dir, &Default::default(), &mut |_, _| {}).unwrap()
}

fn check(query: &str, method: &str, got: &[(String, f32)], want: &Value) {
    let want: Vec<(String, f64)> =
        want.as_array().unwrap().iter().map(|p| (p[0].as_str().unwrap().to_string(), p[1].as_f64().unwrap())).collect();
    assert_eq!(got.len(), want.len(), "{query} {method}");
    for (key, w) in &want {
        let g = got.iter().find(|(k, _)| k == key).unwrap().1;
        assert!((f64::from(g) - w).abs() <= TOL, "{query} {method} {key}: {g} vs transformers {w}");
    }
    for pair in want.windows(2) {
        if pair[0].1 - pair[1].1 > 2.0 * TOL {
            let pos = |k: &str| got.iter().position(|(g, _)| g == k).unwrap();
            assert!(
                pos(&pair[0].0) < pos(&pair[1].0),
                "{query} {method}: {} should rank above {}",
                pair[0].0,
                pair[1].0
            );
        }
    }
}

#[test]
fn ranks_match_transformers_clip() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_with_fixture(dir.path());
    let (retriever, report) = open(&mut store, Some(&clip()));
    assert_eq!((report.images, report.texts, report.without_file), (8, 8, 0));
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture().join("reference.json")).unwrap()).unwrap();
    let all = RetrieveOptions { top_k: 8, per_crop: 8, threshold: None };
    for (query, want) in reference.as_object().unwrap() {
        let img = open_rgb(&fixture().join(query)).unwrap();
        let rap = retriever.rap(Some(&img), "", &CropSource::Whole, &all).unwrap();
        let got: Vec<(String, f32)> = rap.results.iter().map(|r| (r.key.clone(), r.score.unwrap())).collect();
        check(query, "rap", &got, &want["rap"]);
        let r2p = retriever.r2p(&img, 8).unwrap();
        let got: Vec<(String, f32)> = r2p.iter().map(|r| (r.key.clone(), r.score.unwrap())).collect();
        check(query, "r2p", &got, &want["r2p"]);
        // RAP's default (K = 2) keeps the two best, and a name in the text comes first, uncapped.
        let top = retriever.rap(Some(&img), "And <c3>?", &CropSource::Whole, &RetrieveOptions::default()).unwrap();
        assert_eq!(top.results[0].key, "<c3>");
        let first = want["rap"][0][0].as_str().unwrap();
        let image_hits = top.results.iter().filter(|r| r.score.is_some()).count();
        assert!(image_hits == 2 || (image_hits == 1 && first == "<c3>"));
    }
}

#[test]
fn only_what_changed_is_embedded_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_with_fixture(dir.path());
    open(&mut store, Some(&clip()));
    // Reopened: the store names its encoder, nothing to embed.
    let (_, again) = open(&mut store, None);
    assert_eq!(again, SyncReport::default());
    let edit = ConceptEdit { images: Some(vec![fixture().join("query0.png")]), ..Default::default() };
    store.edit("<c1>", &edit).unwrap();
    store.edit("<c2>", &ConceptEdit { info: Some("a red ball".into()), ..Default::default() }).unwrap();
    let (_, r) = open(&mut store, None);
    // One new image; the new description of <c2> equals <c1>'s, which is already embedded.
    assert_eq!((r.images, r.texts), (1, 0));
    store.edit("<c2>", &ConceptEdit { info: Some("something else".into()), ..Default::default() }).unwrap();
    assert_eq!(open(&mut store, None).1.texts, 1);
    // Another encoder (a copy whose config differs by a byte) re-embeds everything.
    let other = dir.path().join("clip2");
    std::fs::create_dir_all(&other).unwrap();
    for e in std::fs::read_dir(clip()).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, other.join(p.file_name().unwrap())).unwrap();
    }
    let mut cfg = std::fs::read_to_string(other.join("config.json")).unwrap();
    cfg.push('\n');
    std::fs::write(other.join("config.json"), cfg).unwrap();
    let (_, r) = open(&mut store, Some(&other));
    assert_eq!((r.images, r.texts), (8, 8));
    assert_eq!(store.encoder().unwrap().unwrap().dir, std::fs::canonicalize(&other).unwrap());
}

#[test]
fn grounding_boxes_become_crops() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_with_fixture(dir.path());
    let (retriever, _) = open(&mut store, Some(&clip()));
    let img = open_rgb(&fixture().join("query1.png")).unwrap();
    let g = CropSource::Grounding {
        answer: r#"{"bbox_2d": [0, 0, 30, 30]}, {"bbox_2d": [20, 10, 59, 44]}"#.into(),
        coords: repic_rewards::VltCoords::Absolute,
        seen_as: None,
    };
    let out = retriever.rap(Some(&img), "", &g, &RetrieveOptions::default()).unwrap();
    assert_eq!(out.crops.len(), 2);
    assert_eq!(out.results.len(), 2);
    let none = CropSource::Grounding {
        answer: "I see nothing.".into(),
        coords: repic_rewards::VltCoords::Absolute,
        seen_as: None,
    };
    let out = retriever.rap(Some(&img), "<c5> here", &none, &RetrieveOptions::default()).unwrap();
    assert!(out.crops.is_empty());
    assert_eq!(out.results.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(), ["<c5>"]);
}
