//! The `repic` binary end to end: score, synth, data.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

fn repic(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_repic")).args(args).env_remove("RUST_LOG").output().expect("run repic")
}

fn captions(rel: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/repic").join(rel);
    p.to_string_lossy().into_owned()
}

#[test]
fn score_json_gives_the_papers_figures() {
    let table = [
        ("double_concept/captioning-skip-retrieval-ours.json", 100.0, 98.8, 99.4, 164),
        ("double_concept/captioning-skip-retrieval-zero_shot.json", 100.0, 75.0, 85.7, 164),
        ("double_concept/captioning-skip-retrieval-qwen_sft.json", 100.0, 82.9, 90.7, 164),
        ("double_concept/caption-rap-llava-with-skip-retreival_RAP-llava-reproduce.json", 100.0, 93.9, 96.9, 164),
        ("double_concept/caption-rap-llava-skip-retreival_RAP-llava-sft-2k.json", 100.0, 90.2, 94.9, 164),
        ("quad_concept/captioning-skip-retrieval-ours.json", 88.0, 59.5, 71.0, 420),
        ("quad_concept/captioning-skip-retrieval-zero_shot.json", 73.3, 22.9, 34.8, 420),
        ("quad_concept/captioning-skip-retrieval-qwen_sft.json", 49.6, 13.6, 21.3, 420),
        ("quad_concept/caption-rap-llava-skip-retreival_RAP-llava-skip-full.json", 52.9, 4.3, 7.9, 420),
        ("quad_concept/caption-rap-llava-skip-retreival_RAP-llava-2k-skip-full.json", 36.4, 1.9, 3.6, 420),
    ];
    for (file, p, r, f1, slots) in table {
        let out = repic(&["score", "--json", &captions(&format!("captioning/{file}"))]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let got: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(got, json!({"precision": p, "recall": r, "f1": f1, "slots": slots}), "{file}");
    }
    // Forcing the other case rule on a 2-concept file changes RePIC's figure: the rule matters.
    let ours = captions("captioning/double_concept/captioning-skip-retrieval-ours.json");
    let lower: Value = serde_json::from_slice(&repic(&["score", "--json", "--lowercase", &ours]).stdout).unwrap();
    assert_eq!(lower["recall"], 99.4);
    // An empty result list is an error, not a row of zeros.
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, "[]").unwrap();
    let out = repic(&["score", &empty.to_string_lossy()]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no caption results"));
}

#[test]
fn score_name_aware_with_database() {
    let file = captions("captioning/quad_concept/captioning-skip-retrieval-ours.json");
    let db = captions("data/database_tot/database_4_concepts/database_mod.json");
    let out = repic(&["score", "--json", "--scorer", "name-aware", "--database", &db, &file]);
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got, json!({"precision": 96.0, "recall": 85.5, "f1": 90.4, "slots": 420}));
    let text = repic(&["score", "--scorer", "name-aware", &file]);
    assert!(String::from_utf8_lossy(&text.stdout).starts_with("precision 87.5  recall 73.3  F1 79.8"));
    let bad = repic(&["score", "--database", &db, &file]);
    assert!(!bad.status.success());
}

fn tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.strip_prefix(root).unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn synth_twice_is_identical_and_records_check() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    let args = |out: &Path| {
        let out = out.to_string_lossy().into_owned();
        repic(&["synth", "--out", &out, "--seed", "7", "--concepts", "12"])
    };
    let first = args(&a);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(args(&b).status.success());
    assert!(tree(&a) == tree(&b), "same seed, different bytes");
    assert!(!args(&a).status.success(), "an existing output must be refused");
    let check = repic(&["data", "check", &a.join("train/records.jsonl").to_string_lossy()]);
    assert!(check.status.success());
    assert!(String::from_utf8_lossy(&check.stdout).contains(": 240 records ("));
    // With --image-root every image is looked at too: all there under the data folder, none under train/.
    let records = a.join("train/records.jsonl").to_string_lossy().into_owned();
    assert!(repic(&["data", "check", &records, "--image-root", &a.to_string_lossy()]).status.success());
    let wrong = repic(&["data", "check", &records, "--image-root", &a.join("train").to_string_lossy()]);
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("record 1: image "),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
}

#[test]
fn malformed_jsonl_names_file_and_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bad.jsonl");
    let good = r#"{"image": "q.png", "problem": "Is <a> here?", "solution": "yes", "accu_reward_method": "yes_no"}"#;
    let bad = r#"{"image": "q.png", "problem": "Where?", "solution": [1, 2, "x", 4], "accu_reward_method": "iou"}"#;
    std::fs::write(&input, format!("{good}\n{good}\n{bad}\n{good}\n")).unwrap();
    let output = dir.path().join("out.json");
    let out = repic(&["data", "convert", &input.to_string_lossy(), &output.to_string_lossy()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.jsonl:3: field `solution`"), "{err}");
    assert!(!output.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary files left behind");
    // A missing output folder is named, not created.
    let typo = dir.path().join("no/such/out.json");
    let out = repic(&["data", "convert", &input.to_string_lossy(), &typo.to_string_lossy()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist") && !dir.path().join("no").exists());
    // A broken line of JSON is reported the same way.
    std::fs::write(&input, format!("{good}\n{{\"image\": \n")).unwrap();
    let err = String::from_utf8_lossy(&repic(&["data", "check", &input.to_string_lossy()]).stderr).into_owned();
    assert!(err.contains("bad.jsonl:2:"), "{err}");
    // A valid file converts to a JSON array and back.
    std::fs::write(&input, format!("{good}\n{good}\n")).unwrap();
    assert!(repic(&["data", "convert", &input.to_string_lossy(), &output.to_string_lossy()]).status.success());
    let arr: Value = serde_json::from_slice(&std::fs::read(&output).unwrap()).unwrap();
    assert_eq!(arr.as_array().unwrap().len(), 2);
}

#[test]
fn every_subcommand_has_help() {
    for sub in [&["synth"][..], &["score"], &["data", "check"], &["data", "convert"], &["compare"], &["export"]] {
        let mut args = sub.to_vec();
        args.push("--help");
        let out = repic(&args);
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: repic"));
    }
}

#[test]
fn generate_json_matches_transformers_on_every_fixture() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/tests/fixtures");
    // transformers 4.57 saves, then transformers 5.25 saves (rope_parameters, processor_config.json).
    let names = ["qwen2_vl", "qwen2_vl_flat", "qwen2_5_vl", "qwen2_5_vl_b"];
    for name in names.into_iter().chain(["tf5/qwen2_vl", "tf5/qwen2_vl_flat", "tf5/qwen2_5_vl"]) {
        let dir = root.join(name);
        let meta: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
        for (case, e) in meta["cases"].as_object().unwrap() {
            let text = e["messages"][0]["content"].as_array().unwrap().iter().find_map(|c| c["text"].as_str()).unwrap();
            let want_tokens = e["greedy_tokens"].as_array().unwrap();
            let n = want_tokens.len().to_string();
            let model = dir.to_string_lossy().into_owned();
            let mut args = vec!["generate", "--model", &model, "--prompt", text, "--max-new-tokens", &n, "--json"];
            let images: Vec<String> = e["images"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| dir.join(i.as_str().unwrap()).to_string_lossy().into_owned())
                .collect();
            for i in &images {
                args.extend(["--image", i.as_str()]);
            }
            let out = repic(&args);
            assert!(out.status.success(), "{name}/{case}: {}", String::from_utf8_lossy(&out.stderr));
            let got: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(got["prompt"], e["prompt"], "{name}/{case}");
            assert_eq!(&got["tokens"], &e["greedy_tokens"], "{name}/{case}");
            for (g, w) in got["logprobs"].as_array().unwrap().iter().zip(e["greedy_logprobs"].as_array().unwrap()) {
                let d = (g.as_f64().unwrap() - w.as_f64().unwrap()).abs();
                assert!(d <= 1e-3, "{name}/{case}: log-prob differs by {d}");
            }
        }
    }
}

#[test]
fn generate_reports_bad_checkpoints_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let out = repic(&["generate", "--model", &dir.path().to_string_lossy(), "--prompt", "hi"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("config.json"));
    // A negative value reaches the range check instead of being read as an unknown flag.
    let out = repic(&["generate", "--model", "x", "--prompt", "hi", "--temperature", "-1"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--temperature must be a finite number >= 0"));
}

#[test]
fn sampling_is_seeded() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/tests/fixtures/qwen2_5_vl");
    let model = dir.to_string_lossy().into_owned();
    let run = |seed: &str| {
        let out = repic(&[
            "generate",
            "--model",
            &model,
            "--prompt",
            "Say hi.",
            "--temperature",
            "1.5",
            "--seed",
            seed,
            "--max-new-tokens",
            "12",
            "--json",
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["tokens"].clone()
    };
    assert_eq!(run("3"), run("3"));
    assert_ne!(run("3"), run("4"));
}

#[test]
fn num_samples_draws_a_group_whose_samples_match_single_seeds() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/tests/fixtures/qwen2_vl");
    let model = dir.to_string_lossy().into_owned();
    let base = [
        "generate",
        "--model",
        &model,
        "--prompt",
        "Name it.",
        "--temperature",
        "1.0",
        "--max-new-tokens",
        "5",
        "--json",
    ];
    let run = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        let out = repic(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let group = run(&["--num-samples", "3", "--seed", "5"]);
    let samples = group["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 3);
    assert_eq!(group["tokens"], samples[0]["tokens"]);
    for (i, s) in samples.iter().enumerate() {
        let seed = (5 + i).to_string();
        assert_eq!(s["tokens"], run(&["--seed", &seed])["tokens"], "sample {i}");
    }
    assert!(run(&[]).get("samples").is_none());
    assert_eq!(run(&[])["finish"], "length");
    // A stop string taken from the output ends it there.
    let first = run(&["--seed", "5"]);
    let text = first["text"].as_str().unwrap();
    let stop: String = text.chars().take(2).collect();
    assert!(!stop.trim().is_empty() && text.chars().count() > 2, "{text:?}");
    let cut = run(&["--seed", "5", "--stop", &stop]);
    assert_eq!(cut["finish"], "stop_string", "{stop:?} in {text:?}");
    assert!(cut["text"].as_str().unwrap().len() < text.len());
    assert!(!repic(&["generate", "--model", &model, "--prompt", "x", "--num-samples", "0"]).status.success());
}

#[test]
fn bench_generate_reports_json_for_batch_group_and_no_cache() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/tests/fixtures/qwen2_vl");
    let (model, image) = (dir.to_string_lossy().into_owned(), dir.join("image1.png").to_string_lossy().into_owned());
    let base = ["bench", "generate", "--model", &model, "--image", &image, "--new-tokens", "3", "--repeats", "1"];
    for (extra, tokens) in [(vec!["--batch", "2"], 6), (vec!["--group", "3"], 9), (vec!["--no-cache"], 3)] {
        let args: Vec<&str> = base.iter().copied().chain(extra.iter().copied()).chain(["--json"]).collect();
        let out = repic(&args);
        assert!(out.status.success(), "{extra:?}: {}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["new_tokens"], tokens, "{extra:?}");
        assert!(v["tokens_per_second"].as_f64().unwrap() > 0.0 && v["seconds"].as_f64().unwrap() > 0.0);
    }
    let both: Vec<&str> = base.iter().copied().chain(["--batch", "2", "--group", "2"]).collect();
    assert!(!repic(&both).status.success());
}

#[test]
fn train_runs_one_step_of_the_repic_config_on_a_tiny_checkpoint() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_string_lossy().into_owned();
    let synth =
        ["synth", "--out", &d, "--concepts", "4", "--records", "4", "--eval-records", "1", "--eval-queries", "1"];
    assert!(repic(&synth).status.success());
    let run = tmp.path().join("run");
    let sets = [
        format!("model={:?}", root.join("models/tests/fixtures/qwen2_5_vl").to_string_lossy()),
        format!("output_dir={:?}", run.to_string_lossy()),
        format!("data.train={:?}", data.join("train/records.jsonl").to_string_lossy()),
        format!("data.image_root={d:?}"),
        "data.max_pixels=12544".into(),
        "train.max_steps=1".into(),
        "grpo.max_completion_length=16".into(),
    ];
    let config = root.join("configs/repic-qwen2.5vl-7b.toml").to_string_lossy().into_owned();
    let mut args = vec!["train", "--config", config.as_str()];
    for s in &sets {
        args.extend(["--set", s.as_str()]);
    }
    let out = repic(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 1);
    let adapter: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("checkpoint-1/adapter/adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!((adapter["r"].as_u64(), adapter["lora_alpha"].as_f64()), (Some(64), Some(128.0)));
    // What was trained is used where a model goes: the run folder as --model (its newest checkpoint's adapter on
    // the run's model), merged into a plain folder by export, or the adapter alone.
    let r = run.to_string_lossy().into_owned();
    let generate = |model: &str| -> Value {
        let out = repic(&["generate", "--model", model, "--prompt", "Who is <bo>?", "--max-new-tokens", "4", "--json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let with_adapter = generate(&r);
    let merged = tmp.path().join("merged").to_string_lossy().into_owned();
    assert!(repic(&["export", "--model", &r, "--out", &merged]).status.success());
    assert!(std::path::Path::new(&merged).join("config.json").is_file());
    let from_merged = generate(&merged);
    assert_eq!(from_merged["tokens"], with_adapter["tokens"]);
    for (a, b) in from_merged["logprobs"].as_array().unwrap().iter().zip(with_adapter["logprobs"].as_array().unwrap()) {
        assert!((a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 1e-3, "merged {a} vs adapter {b}");
    }
    let published = tmp.path().join("published");
    let p = published.to_string_lossy().into_owned();
    assert!(repic(&["export", "--model", &r, "--adapter-only", "--out", &p]).status.success());
    assert_eq!(
        std::fs::read(published.join("adapter_model.safetensors")).unwrap(),
        std::fs::read(run.join("checkpoint-1/adapter/adapter_model.safetensors")).unwrap()
    );
    let twice = repic(&["generate", "--model", &r, "--adapter", &p, "--prompt", "x"]);
    assert!(String::from_utf8_lossy(&twice.stderr).contains("already holds an adapter"));
    // Unknown keys are named.
    let bad = repic(&["train", "--config", config.as_str(), "--set", "grpo.num_generation=4"]);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("num_generation"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn demo_quick_runs_every_stage_and_writes_its_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let o = out.to_string_lossy().into_owned();
    let run = repic(&["demo", "--quick", "--out", &o, "--seed", "1"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let table = String::from_utf8_lossy(&run.stdout);
    for row in ["caption recall (official)", "caption F1 (name-aware)", "OCT accuracy", "VLT accuracy", "SFT+GRPO"] {
        assert!(table.contains(row), "missing `{row}` in:\n{table}");
    }
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    for phase in ["sft", "grpo"] {
        for key in ["precision", "recall", "f1", "name_aware_recall", "oct_accuracy", "vlt_accuracy", "mean_length"] {
            let v = summary[phase][key].as_f64().unwrap_or_else(|| panic!("{phase}.{key} in {summary}"));
            assert!((0.0..=100.0).contains(&v) || key == "mean_length", "{phase}.{key} = {v}");
        }
    }
    assert!(summary["seconds"].as_f64().unwrap() > 0.0);
    assert!(summary["machine"]["cores"].as_u64().unwrap() >= 1 && summary["machine"]["simd"].is_string());
    // The paired comparisons cover the 4 held-out OCT records and the 14 caption names (2 queries each of 1, 2 and
    // 4 concepts), and agree with the two accuracies (recall is rounded to 0.1 in the summary).
    for (key, metric, items) in [("oct_paired", "oct_accuracy", 4.0), ("recall_paired", "recall", 14.0)] {
        let paired = &summary[key];
        let count = |k: &str| paired[k].as_u64().unwrap_or_else(|| panic!("{key}.{k} in {summary}")) as f64;
        assert_eq!(count("items"), items, "{key}");
        let moved = summary["grpo"][metric].as_f64().unwrap() - summary["sft"][metric].as_f64().unwrap();
        assert!((moved - 100.0 * (count("fixed") - count("broken")) / items).abs() < 0.11, "{key}: {summary}");
        assert!((0.0..=1.0).contains(&paired["p_value"].as_f64().unwrap()));
    }
    assert!(table.contains("OCT answers, GRPO fixed / broke:"), "{table}");
    // The personalization stage: an encoder, a store, retrieval, captions with given and retrieved references.
    let p = &summary["personalize"];
    assert_eq!(p["retrieval_queries"], 2, "{summary}");
    for key in ["retrieval_top1", "recognition_weighted"] {
        assert!((0.0..=100.0).contains(&p[key].as_f64().unwrap()), "{key}: {summary}");
    }
    assert_eq!(p["captions"]["given"]["references_right"], 100.0);
    assert!(p["captions"]["retrieved"]["f1"].is_number());
    assert!(out.join("encoder/model.safetensors").is_file() && out.join("store/concepts.sqlite").is_file());
    assert!(table.contains("retrieval top-1 on 1-concept queries"), "{table}");
    assert!(table.contains("caption names recalled, GRPO fixed / broke:"), "{table}");
    for f in ["sft/training.png", "grpo/training.png", "grpo/metrics.jsonl", "model-init/tokenizer.json"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    assert!(out.join("grpo").read_dir().unwrap().any(|e| e.unwrap().file_name() == "tensorboard"));
    for f in ["look/training.png", "data/train/look_records.jsonl", "captions_sft.json", "captions_grpo.json"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let captions: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("captions_sft.json")).unwrap()).unwrap();
    assert_eq!(captions.as_array().unwrap().len(), 6, "2 queries in each of 3 splits");
    // The output folder is not replaced without --force.
    assert!(!repic(&["demo", "--quick", "--out", &o]).status.success());
    // The demo's GRPO fine-tunes every weight (a full model, no adapter).
    assert!(out.join("grpo/checkpoint-4/model/model.safetensors").is_file());
    // --reuse-sft keeps the data and the SFT model and reruns GRPO with the overrides given (here LoRA).
    let (_, ckpt) = repic_trainer::checkpoint::list_checkpoints(&out.join("sft")).pop().expect("an SFT checkpoint");
    let weights = ckpt.join("model/model.safetensors");
    let sft_model = std::fs::read(&weights).unwrap();
    let lora = ["--grpo-set", "finetune=\"lora\"", "--grpo-set", "freeze_vision=true", "--grpo-set", "grpo.beta=0.0"];
    let again = repic(&[&["demo", "--quick", "--out", &o, "--seed", "1", "--reuse-sft"][..], &lora[..]].concat());
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(std::fs::read(&weights).unwrap(), sft_model);
    let cfg = std::fs::read_to_string(out.join("grpo/config.toml")).unwrap();
    assert!(cfg.contains("beta = 0.0") && cfg.contains("finetune = \"lora\""), "{cfg}");
    assert!(out.join("grpo/checkpoint-4/adapter/adapter_config.json").is_file());
    let bad = repic(&["demo", "--quick", "--out", &tmp.path().join("none").to_string_lossy(), "--reuse-sft"]);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("no SFT checkpoint"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn eval_scores_greedy_answers_per_task_and_keeps_them() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_string_lossy().into_owned();
    let synth =
        ["synth", "--out", &d, "--concepts", "4", "--records", "8", "--eval-records", "1", "--eval-queries", "1"];
    assert!(repic(&synth).status.success());
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/tests/fixtures/qwen2_vl");
    let (model, records) = (model.to_string_lossy().into_owned(), data.join("train/records.jsonl"));
    let records = records.to_string_lossy().into_owned();
    let answers = tmp.path().join("answers.jsonl");
    let a = answers.to_string_lossy().into_owned();
    let args = ["eval", "--model", &model, "--records", &records, "--image-root", &d, "--limit", "6"];
    let out = repic(&[&args[..], &["--max-new-tokens", "8", "--json", "--out", &a]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows: Vec<Value> =
        std::fs::read_to_string(&answers).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 6);
    // The same answers compared with themselves: nothing fixed or broken, per task and in all.
    let same = repic(&["compare", &a, &a, "--json"]);
    assert!(same.status.success(), "{}", String::from_utf8_lossy(&same.stderr));
    let c: Value = serde_json::from_slice(&same.stdout).unwrap();
    assert_eq!(
        c["all"]["change"]["items"].as_u64().unwrap() as usize,
        rows.iter().filter(|r| r["correct"].is_boolean()).count()
    );
    assert!(c.as_object().unwrap().values().all(|t| t["change"]["fixed"] == 0 && t["change"]["broken"] == 0));
    let tasks = summary.as_object().unwrap();
    assert_eq!(tasks.values().map(|t| t["records"].as_u64().unwrap()).sum::<u64>(), 6);
    for (task, t) in tasks {
        let mine: Vec<&Value> = rows.iter().filter(|r| r["method"] == task.as_str()).collect();
        assert_eq!(t["records"].as_u64().unwrap() as usize, mine.len(), "{task}");
        // Every row carries repic-eval's verdict (hand-checked in eval/src/answers.rs); the summary counts them.
        assert!(mine.iter().all(|r| r["correct"].is_boolean()), "{task}");
        let correct = mine.iter().filter(|r| r["correct"] == true).count();
        assert_eq!(t["correct"].as_u64().unwrap() as usize, correct, "{task}");
        for (name, mean) in t["rewards"].as_object().unwrap() {
            let expect = mine.iter().map(|r| r["rewards"][name].as_f64().unwrap()).sum::<f64>() / mine.len() as f64;
            assert!((mean.as_f64().unwrap() - expect).abs() < 1e-6, "{task} {name}");
        }
    }
    // Images are looked up relative to --image-root; without it, relative to the records file, where they are not.
    let bad = repic(&["eval", "--model", &model, "--records", &records, "--limit", "1"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("does not exist"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn ablate_runs_a_tiny_sweep_reports_a_failed_variant_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let v = tmp.path().join("variants");
    std::fs::create_dir_all(&v).unwrap();
    std::fs::write(v.join("full.toml"), "[rewards]\nset = \"full\"\n").unwrap();
    std::fs::write(v.join("no_ict.toml"), "[rewards]\nset = \"no_ict\"\nablation = \"drop\"\n").unwrap();
    std::fs::write(v.join("broken.toml"), "[grpo]\nnum_generations = 1\n").unwrap();
    let out = tmp.path().join("out");
    let (vs, o) = (v.to_string_lossy().into_owned(), out.to_string_lossy().into_owned());
    let args = ["ablate", "--variants", &vs, "--seeds", "2", "--quick", "--out", &o];
    let first = repic(&args);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let lines: Vec<Value> = std::fs::read_to_string(out.join("results.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6, "3 variants x 2 seeds");
    for l in &lines {
        let ok = l["variant"] != "broken";
        assert_eq!(l["status"], if ok { "ok" } else { "failed" }, "{l}");
        if ok {
            assert!(l["metrics"]["recall"].is_number() && !l["oct_correct"].as_array().unwrap().is_empty());
            assert!(l["config_hash"].as_str().unwrap().len() == 16 && l["machine"].is_string());
        } else {
            assert!(l["error"].as_str().unwrap().contains("num_generations"), "{l}");
        }
    }
    let table = std::fs::read_to_string(out.join("table.md")).unwrap();
    assert!(table.contains("| full | 2 |") && table.contains("| no_ict | 2 |") && table.contains("FAILED: broken"));
    assert!(std::fs::read_to_string(out.join("table.csv")).unwrap().starts_with("variant,seeds,precision_mean"));
    assert!(out.join("plots/recall.png").is_file());
    // A rerun retrains nothing that finished: the finished runs' lines stay as they were.
    let second = repic(&args);
    assert!(second.status.success());
    let again = std::fs::read_to_string(out.join("results.jsonl")).unwrap();
    for l in lines.iter().filter(|l| l["status"] == "ok") {
        assert!(again.contains(&l.to_string()), "{l} was rerun");
    }
    assert!(!String::from_utf8_lossy(&second.stdout).contains("full seed 0: done"));
    // A run whose result line is missing (killed after training) continues from its checkpoint: the same model,
    // the same figures.
    let kept: String = again
        .lines()
        .filter(|l| !(l.contains("\"variant\":\"full\"") && l.contains("\"seed\":0")))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(out.join("results.jsonl"), kept).unwrap();
    let third = repic(&args);
    assert!(String::from_utf8_lossy(&third.stdout).contains("full seed 0: done"));
    let full0 = |text: &str| -> Value {
        let line = text.lines().find(|l| l.contains("\"variant\":\"full\"") && l.contains("\"seed\":0")).unwrap();
        serde_json::from_str::<Value>(line).unwrap()["metrics"].clone()
    };
    assert_eq!(full0(&std::fs::read_to_string(out.join("results.jsonl")).unwrap()), full0(&again));
    // Runs in parallel processes give the same figures as one after another (seed 0 of the same sweep).
    let par = tmp.path().join("parallel");
    let p = par.to_string_lossy().into_owned();
    std::fs::remove_file(v.join("broken.toml")).unwrap();
    let out_par = repic(&["ablate", "--variants", &vs, "--seeds", "1", "--quick", "--jobs", "2", "--out", &p]);
    assert!(out_par.status.success(), "{}", String::from_utf8_lossy(&out_par.stderr));
    let par_lines = std::fs::read_to_string(par.join("results.jsonl")).unwrap();
    assert_eq!(par_lines.lines().count(), 2);
    assert_eq!(full0(&par_lines), full0(&again));
    assert!(par.join("seed-0/no_ict.log").is_file());
}

#[test]
fn ablate_writes_slurm_jobs_whose_tasks_run_one_seed_or_one_run() {
    let tmp = tempfile::tempdir().unwrap();
    let v = tmp.path().join("variants");
    std::fs::create_dir_all(&v).unwrap();
    std::fs::write(v.join("full.toml"), "[rewards]\nset = \"full\"\n").unwrap();
    let out = tmp.path().join("out");
    let (vs, o) = (v.to_string_lossy().into_owned(), out.to_string_lossy().into_owned());
    let w = repic(&["ablate", "--variants", &vs, "--seeds", "2", "--quick", "--top-k", "1", "--out", &o, "--slurm"]);
    assert!(w.status.success(), "{}", String::from_utf8_lossy(&w.stderr));
    let slurm = out.join("slurm");
    let read = |f: &str| std::fs::read_to_string(slurm.join(f)).unwrap();
    assert!(read("warm.sbatch").contains("#SBATCH --array=0-1") && read("warm.sbatch").contains("--warm-only"));
    assert!(read("runs.sbatch").contains("#SBATCH --array=0-1") && read("runs.sbatch").contains("--task"));
    assert!(read("runs.sbatch").contains("--top-k 1") && read("report.sbatch").contains("--report-only"));
    assert!(
        read("submit.sh").contains("--dependency=afterok:") && read("submit.sh").contains("--dependency=afterany:")
    );
    assert!(!out.join("results.jsonl").exists(), "--slurm only writes the jobs");
    // What the array tasks run (the #SBATCH lines are comments to bash).
    let task = |file: &str, id: &str| {
        Command::new("bash").arg(slurm.join(file)).env("SLURM_ARRAY_TASK_ID", id).output().unwrap()
    };
    let empty = task("report.sbatch", "");
    assert!(String::from_utf8_lossy(&empty.stderr).contains("no results to report yet"), "{empty:?}");
    let early = task("runs.sbatch", "1");
    assert!(!early.status.success(), "a run task before its warm start fails");
    assert!(String::from_utf8_lossy(&early.stderr).contains("no finished warm start"));
    for (file, id) in [("warm.sbatch", "1"), ("runs.sbatch", "1"), ("report.sbatch", "")] {
        let t = task(file, id);
        assert!(t.status.success(), "{file}: {}", String::from_utf8_lossy(&t.stderr));
    }
    assert!(out.join("seed-1/store").is_dir() && !out.join("seed-0").exists(), "task 1 is seed 1");
    let lines = std::fs::read_to_string(out.join("results.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 1);
    let line: Value = serde_json::from_str(lines.trim()).unwrap();
    assert_eq!(
        (line["seed"].as_u64(), line["status"].as_str(), line["top_k"].as_u64()),
        (Some(1), Some("ok"), Some(1))
    );
    let right = line["metrics"]["references_right"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&right), "{line}");
    let table = std::fs::read_to_string(out.join("table.md")).unwrap();
    assert!(table.contains("right references retrieved (%)") && table.contains("| full | 1 |"), "{table}");
    // GPUs only on a CUDA build; --devices and --jobs exclude each other.
    let gpu = repic(&["ablate", "--variants", &vs, "--devices", "0,1", "--out", &o]);
    assert!(String::from_utf8_lossy(&gpu.stderr).contains("--devices places runs on GPUs"), "{gpu:?}");
    let both = repic(&["ablate", "--variants", &vs, "--devices", "0", "--jobs", "2", "--out", &o]);
    assert!(!both.status.success() && String::from_utf8_lossy(&both.stderr).contains("cannot be used with"));
}
