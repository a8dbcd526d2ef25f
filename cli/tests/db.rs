//! `repic db` and `repic retrieve` end to end on the retrieval fixture and the tiny CLIP.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn repic(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_repic")).args(args).env_remove("RUST_LOG").output().expect("run repic")
}

fn ok(args: &[&str]) -> String {
    let out = repic(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn fails(args: &[&str]) -> String {
    let out = repic(args);
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

fn root(rel: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(rel).to_string_lossy().into_owned()
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// A store made with `repic db init --clip` (the tiny CLIP) and `repic db import` of the retrieval fixture:
/// (its temporary folder, the store's path, the fixture folder).
fn fixture_store() -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let store = s(&dir.path().join("store"));
    let fixture = root("personalize/tests/fixtures/retrieval");
    ok(&["db", "init", &store, "--clip", &root("models/tests/fixtures/clip")]);
    ok(&["db", "import", &store, &format!("{fixture}/database.json")]);
    (dir, store, fixture)
}

#[test]
fn a_store_from_init_to_retrieval() {
    let dir = tempfile::tempdir().unwrap();
    let store = s(&dir.path().join("store"));
    let fixture = root("personalize/tests/fixtures/retrieval");
    ok(&["db", "init", &store, "--clip", &root("models/tests/fixtures/clip")]);
    let out = ok(&["db", "import", &store, &format!("{fixture}/database.json")]);
    assert!(out.contains("imported 8 new and 0 replaced concepts, 8 images"), "{out}");
    assert_eq!(ok(&["db", "list", &store]).lines().count(), 8);

    // RAP retrieval as JSON: the key in the text first, then the nearest images.
    let q = format!("{fixture}/query1.png");
    let out = ok(&["retrieve", "--db", &store, "--image", &q, "--text", "Is <c7> here?", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 3, "{v}");
    assert_eq!(results[0]["key"], "<c7>");
    assert_eq!(results[0]["by"], "name");
    assert!(results[0]["score"].is_null());
    for r in &results[1..] {
        assert_eq!(r["by"], "image");
        assert!(r["score"].as_f64().unwrap() > 0.9 && r["image"].as_str().unwrap().ends_with(".png"));
    }
    let r2p: Value =
        serde_json::from_str(&ok(&["retrieve", "--db", &store, "--image", &q, "--r2p", "--top-k", "3", "--json"]))
            .unwrap();
    assert_eq!(r2p["results"].as_array().unwrap().len(), 3);

    // Add, edit (a malformed fingerprint is refused and changes nothing), remove, export.
    let img = format!("{fixture}/query0.png");
    ok(&["db", "add", &store, "--key", "<new>", "--image", &img, "--info", "a new thing", "--category", "toy"]);
    let bad = dir.path().join("fp.json");
    std::fs::write(&bad, r#"{"general": "x", "category": "y", "distinct features": "not a list"}"#).unwrap();
    let before = ok(&["db", "list", &store, "--json"]);
    let e = fails(&["db", "edit", &store, "<new>", "--fingerprint-json", &s(&bad)]);
    assert!(e.contains("fp.json:1: not an R2P fingerprint"), "{e}");
    assert_eq!(ok(&["db", "list", &store, "--json"]), before);
    let good = dir.path().join("fp2.json");
    std::fs::write(&good, r#"{"general": "A toy.", "category": "toy", "distinct features": ["red"]}"#).unwrap();
    ok(&["db", "edit", &store, "<new>", "--fingerprint-json", &s(&good), "--name", "New"]);
    let list = ok(&["db", "list", &store, "--json"]);
    let new: Value = serde_json::from_str(list.lines().last().unwrap()).unwrap();
    assert_eq!(new["name"], "New");
    assert_eq!(new["fingerprint"], true);
    assert!(fails(&["db", "rm", &store, "<nope>"]).contains("no concept <nope> in the store"));
    assert!(fails(&["db", "add", &store, "--key", "<new>", "--image", &img]).contains("<new> is already in the store"));
    ok(&["db", "rm", &store, "<new>"]);
    let out = dir.path().join("out/database.json");
    ok(&["db", "export", &store, &s(&out), "--images"]);
    let a: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let b: Value = serde_json::from_str(&std::fs::read_to_string(format!("{fixture}/database.json")).unwrap()).unwrap();
    assert_eq!(a, b);
    assert!(dir.path().join("out/ref3.png").is_file());
}

#[test]
fn bad_stores_and_arguments_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let store = s(&dir.path().join("nothing"));
    assert!(fails(&["db", "list", &store]).contains("is not a concept store (no concepts.sqlite)"));
    ok(&["db", "init", &store]);
    let e = fails(&["retrieve", "--db", &store, "--text", "x"]);
    assert!(e.contains("names no encoder"), "{e}");
    let e = fails(&["db", "edit", &store, "<a>"]);
    assert!(e.contains("nothing to change"), "{e}");
}

#[test]
fn ask_puts_the_retrieved_concepts_into_repics_prompt() {
    let (_dir, store, fixture) = fixture_store();
    let q = format!("{fixture}/query2.png");
    let model = root("models/tests/fixtures/qwen2_vl");
    let args = ["ask", "--model", &model, "--db", &store, "--image", &q, "--max-new-tokens", "4", "--json"];
    let mut with_name = args.to_vec();
    with_name.push("Is <c1> in this image?");
    let v: Value = serde_json::from_str(&ok(&with_name)).unwrap();
    let refs = v["references"].as_array().unwrap();
    assert_eq!(refs.len(), 2, "{v}");
    assert_eq!(refs[0]["key"], "<c1>");
    let image_ref = refs[1]["key"].as_str().unwrap();
    let prompt = v["prompt"].as_str().unwrap();
    let one = prompt.find("1. Name: <c1>, Info: a red ball\n").expect("first reference line");
    let two = prompt.find(&format!("2. Name: {image_ref}, Info: ")).expect("second reference line");
    let query = prompt.find("This is the query image. Is <c1> in this image?").expect("question");
    assert!(one < two && two < query, "{prompt}");
    // Three images: two references and the query.
    assert_eq!(prompt.matches("<|vision_start|>").count(), 3, "{prompt}");
    assert!(v["answer"].is_string());
    // --detect: the model's own grounding answer picks the crops (the random model names no box: no image match).
    let mut detect = with_name.clone();
    detect.insert(1, "--detect");
    let v: Value = serde_json::from_str(&ok(&detect)).unwrap();
    assert!(v["grounding"].is_string(), "{v}");
    let crops = v["crops"].as_array().unwrap().len();
    let image_refs = v["references"].as_array().unwrap().iter().filter(|r| r["by"] == "image").count();
    assert_eq!(image_refs > 0, crops > 0, "{v}");
}

#[test]
fn recognize_and_fingerprint_extraction() {
    let (_dir, store, fixture) = fixture_store();
    let model = root("models/tests/fixtures/qwen2_vl");
    let q = format!("{fixture}/query3.png");
    let v: Value = serde_json::from_str(&ok(&[
        "recognize",
        "--model",
        &model,
        "--db",
        &store,
        "--image",
        &q,
        "--max-new-tokens",
        "6",
        "--json",
    ]))
    .unwrap();
    assert_eq!(v["decided_by"], "retrieval", "{v}");
    assert_eq!(v["key"], v["shortlist"][0]["key"]);
    // The random model cannot write a fingerprint: the add fails, names why, and adds nothing.
    let before = ok(&["db", "list", &store]);
    let e = fails(&[
        "db",
        "add",
        &store,
        "--key",
        "<z>",
        "--image",
        &q,
        "--category",
        "toy",
        "--fingerprint",
        "--model",
        &model,
    ]);
    assert!(e.contains("fingerprint of <z>:") && e.contains("the model answered"), "{e}");
    assert_eq!(ok(&["db", "list", &store]), before);
}

#[test]
fn store_benchmarks_and_preference_run_end_to_end() {
    let (dir, store, fixture) = fixture_store();
    let model = root("models/tests/fixtures/qwen2_vl");
    let queries = dir.path().join("queries.json");
    std::fs::write(&queries, r#"{"query0.png": ["<c0>"], "query1.png": ["<c2>", "<c4>"]}"#).unwrap();
    let (q, f) = (s(&queries), fixture.clone());
    let common = ["--model", &model, "--db", &store, "--queries", &q, "--image-root", &f, "--json"];
    let out = dir.path().join("captions.json");
    let mut args = vec!["eval", "caption", "--top-k", "2", "--max-new-tokens", "4", "--out"];
    let out_s = s(&out);
    args.push(&out_s);
    args.extend(common);
    let v: Value = serde_json::from_str(&ok(&args)).unwrap();
    assert_eq!(v["queries"], 2);
    assert_eq!(v["official"]["slots"], 3);
    let r = v["retrieval_recall"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&r));
    let results: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(results[1][1], serde_json::json!(["<c2>", "<c4>"]));
    let mut skip = vec!["eval", "caption", "--skip-retrieval", "--max-new-tokens", "4"];
    skip.extend(common);
    let v: Value = serde_json::from_str(&ok(&skip)).unwrap();
    assert_eq!(v["retrieval_recall"], 100.0);
    let mut neither = vec!["eval", "caption"];
    neither.extend(common);
    assert!(fails(&neither).contains("give --skip-retrieval or --top-k K"));

    let mut rec = vec!["eval", "recognition", "--negatives", "1", "--max-new-tokens", "4"];
    rec.extend(common);
    let v: Value = serde_json::from_str(&ok(&rec)).unwrap();
    assert_eq!(v["items"], 3 + 2);
    let w = v["weighted"].as_f64().unwrap();
    assert!((w - 0.5 * (v["positives"].as_f64().unwrap() + v["negatives"].as_f64().unwrap())).abs() < 1e-9);

    // PreferThinker on the random model: the answer is reported malformed, as JSON and as an error.
    let img = |i: usize| format!("{fixture}/ref{i}.png");
    let (p1, n1, a, b) = (img(0), img(1), img(2), img(3));
    let prefer = [
        "prefer",
        "--model",
        &model,
        "--preferred",
        &p1,
        "--non-preferred",
        &n1,
        "--a",
        &a,
        "--b",
        &b,
        "--max-new-tokens",
        "8",
    ];
    let mut json = prefer.to_vec();
    json.push("--json");
    let v: Value = serde_json::from_str(&ok(&json)).unwrap();
    assert!(v["assessment"].is_null());
    assert!(v["malformed"].as_str().unwrap().contains("does not follow the grammar"));
    assert!(fails(&prefer).contains("the answer is malformed"));
    let records = dir.path().join("prefs.jsonl");
    let line = serde_json::json!({"image": [p1, n1, a, b], "problem": "Which image does the user prefer?",
        "solution": "Image A", "accu_reward_method": "preference"});
    std::fs::write(&records, format!("{line}\n{line}\n")).unwrap();
    let v: Value = serde_json::from_str(&ok(&[
        "eval",
        "preference",
        "--model",
        &model,
        "--records",
        &s(&records),
        "--max-new-tokens",
        "8",
        "--json",
    ]))
    .unwrap();
    assert_eq!(v["records"], 2);
    assert_eq!(v["malformed"], 100.0);
}
