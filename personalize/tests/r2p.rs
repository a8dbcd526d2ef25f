//! R2P end to end on the tiny random Qwen2-VL and CLIP: the tiny model's own stage-1 answer is not JSON, so the
//! retrieval ranking decides by the named rule; recorded stage-1 answers drive stage 2 (agreeing: stage 1
//! decides) and stage 3 (disagreeing: the pairwise P(yes) decides), malformed and truncated ones the fallback.

use std::path::PathBuf;

use repic_models::Checkpoint;
use repic_personalize::r2p::{R2pOptions, Stage, recognize, recognize_with};
use repic_personalize::store::import_file;
use repic_personalize::{ImageMode, ImportOptions, LocalVlm, Retriever, SqliteStore};

type B = repic_models::DefaultBackend;

fn path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

struct Setup {
    _dir: tempfile::TempDir,
    ckpt: Checkpoint<B>,
    retriever: Retriever<B>,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::create(&dir.path().join("store")).unwrap();
    let opts = ImportOptions { image_root: PathBuf::new(), images: ImageMode::Copy, replace: false };
    import_file(&mut store, &path("tests/fixtures/retrieval/database.json"), &opts).unwrap();
    let dev = Default::default();
    let (retriever, _) =
        Retriever::<B>::open(&mut store, Some(&path("../models/tests/fixtures/clip")), &dev, &mut |_, _| {}).unwrap();
    let ckpt = Checkpoint::<B>::load(&path("../models/tests/fixtures/qwen2_vl"), &dev).unwrap();
    Setup { _dir: dir, ckpt, retriever }
}

#[test]
fn every_stage_decides_where_it_should() {
    let s = setup();
    let dev = Default::default();
    let q = path("tests/fixtures/retrieval/query0.png");
    let opts = R2pOptions { max_new_tokens: 8, ..Default::default() };

    // The random model's own answer: not JSON, so the retrieval ranking decides, and says so.
    let r = recognize(&LocalVlm { ckpt: &s.ckpt, device: &dev }, &s.retriever, &q, &opts).unwrap();
    assert_eq!(r.decided_by, Stage::Retrieval);
    assert_eq!(r.key, r.shortlist[0].key);
    assert_eq!(r.shortlist.len(), 3);
    assert!(
        r.reason.contains("could not be read") && r.reason.contains("the retrieval ranking decides"),
        "{}",
        r.reason
    );
    assert!(r.stage1.as_ref().unwrap().error.is_some());

    // Recorded answers: attributes only for B, so stage 2 prefers B.
    let answer = |letter: &str| {
        format!(
            r#"{{"A": "None", "B": "striped pattern, blue tint", "C": "None", "Reasoning": "B fits.", "Answer": "{letter}"}}"#
        )
    };
    let agree =
        recognize_with(&LocalVlm { ckpt: &s.ckpt, device: &dev }, &s.retriever, &q, &opts, Some(&answer("B"))).unwrap();
    assert_eq!(agree.decided_by, Stage::Reasoning, "{}", agree.reason);
    assert_eq!(agree.key, agree.shortlist[1].key);
    let st1 = agree.stage1.as_ref().unwrap();
    assert_eq!(st1.choice, Some(1));
    assert_eq!(st1.confidence.len(), 3);
    assert!((st1.confidence.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    let st2 = agree.stage2.as_ref().unwrap();
    assert!(st2[0].is_none() && st2[1].is_some() && st2[2].is_none());
    assert!(agree.stage3.is_none());

    let disagree =
        recognize_with(&LocalVlm { ckpt: &s.ckpt, device: &dev }, &s.retriever, &q, &opts, Some(&answer("C"))).unwrap();
    assert_eq!(disagree.decided_by, Stage::Pairwise, "{}", disagree.reason);
    let p = disagree.stage3.as_ref().unwrap();
    assert_eq!(p.len(), 3);
    assert!(p.iter().all(|x| (0.0..=1.0).contains(x)));
    let best = (0..3).fold(0, |b, i| if p[i] > p[b] { i } else { b });
    assert_eq!(disagree.key, disagree.shortlist[best].key);
    assert!(disagree.reason.contains("stage 1 chose C but stage 2 preferred B"), "{}", disagree.reason);

    for bad in
        [r#"{"A": "x", "B": "y", "C": "z", "Reasoning": "cut"#, r#"{"A": "x", "B": "y", "C": "z", "Answer": "Q"}"#]
    {
        let r = recognize_with(&LocalVlm { ckpt: &s.ckpt, device: &dev }, &s.retriever, &q, &opts, Some(bad)).unwrap();
        assert_eq!(r.decided_by, Stage::Retrieval);
        assert_eq!(r.key, r.shortlist[0].key);
    }
}
