//! What a run refuses or stops on: out-of-range config values (each named), a loss that stops being finite
//! (training stops before the update, naming the step, and writes no checkpoint of it), and the seed decides a
//! LoRA run (adapters are drawn from the seeded generator).

mod common;

use std::path::Path;

use common::{B, fixture, synth};
use repic_trainer::{TrainConfig, train};

const BASE: &str = include_str!("../../configs/repic-qwen2.5vl-7b.toml");

/// Runs draw from the backend's global generator: tests that train take turns, so one cannot reseed it while
/// another is drawing.
static TRAINING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn parse(overrides: &[&str]) -> Result<TrainConfig, String> {
    let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    TrainConfig::parse(BASE, Path::new("repic.toml"), &o).map_err(|e| e.to_string())
}

#[test]
fn out_of_range_values_are_refused_by_name() {
    parse(&[]).unwrap();
    for (set, key) in [
        ("optim.learning_rate=inf", "optim.learning_rate"),
        ("optim.learning_rate=0", "optim.learning_rate"),
        ("optim.adam_epsilon=0", "optim.adam_epsilon"),
        ("optim.adam_beta1=1.0", "optim.adam_beta1"),
        ("optim.adam_beta2=-0.1", "optim.adam_beta2"),
        ("optim.weight_decay=-1", "optim.weight_decay"),
        ("optim.max_grad_norm=nan", "optim.max_grad_norm"),
        ("grpo.temperature=inf", "grpo.temperature"),
        ("grpo.num_generations=1", "grpo.num_generations"),
        ("grpo.max_completion_length=0", "grpo.max_completion_length"),
        ("grpo.repetition_penalty=0", "grpo.repetition_penalty"),
        ("grpo.beta=-0.1", "grpo.beta"),
        ("output_dir=\"\"", "output_dir"),
        ("data.min_pixels=0", "data.min_pixels"),
    ] {
        let e = parse(&[set]).unwrap_err();
        assert!(e.contains(key), "{set}: {e}");
    }
    let e = parse(&["data.min_pixels=5000", "data.max_pixels=4000"]).unwrap_err();
    assert!(e.contains("data.min_pixels must be at most data.max_pixels"), "{e}");
    // SFT has no groups: one generation is fine there.
    parse(&["mode=\"sft\"", "grpo.num_generations=1"]).unwrap();
}

fn tiny(data: &Path, out: &Path, extra: &[String]) -> TrainConfig {
    let src = format!(
        "model = {:?}\noutput_dir = {:?}\nseed = 3\n[lora]\nr = 4\nalpha = 8\n[data]\ntrain = {:?}\nimage_root = {:?}\n\
         [grpo]\nnum_generations = 2\nmax_completion_length = 4\n[train]\nprompts_per_step = 1\nmax_steps = 2\n\
         save_steps = 1\nsave_total_limit = 0\n",
        fixture().to_string_lossy(),
        out.to_string_lossy(),
        data.join("train/records.jsonl").to_string_lossy(),
        data.to_string_lossy(),
    );
    TrainConfig::parse(&src, Path::new("tiny.toml"), extra).unwrap()
}

#[test]
fn a_loss_that_is_not_finite_stops_the_run_before_the_update() {
    let _turn = TRAINING.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path());
    let out = tmp.path().join("run");
    // A finite but absurd learning rate: the first update makes the weights overflow, the next loss is not finite.
    // SFT, whose cross-entropy has a gradient at every step (the guard is the trainer's, shared by both modes):
    // a GRPO group whose rewards are all equal has none at step 1, exactly zero on LibTorch and rounding noise on
    // Flex, so the weights would not move there.
    let sets = ["optim.learning_rate=1e30".into(), "finetune=\"full\"".into(), "mode=\"sft\"".into()];
    let cfg = tiny(&data, &out, &sets);
    let e = train::<B>(cfg, false, Default::default(), &mut |_, _, _| {}).unwrap_err().to_string();
    assert!(e.contains("step 2") && e.contains("stopping before the update"), "{e}");
    assert!(out.join("checkpoint-1").is_dir());
    assert!(!out.join("checkpoint-2").exists(), "no checkpoint of the failed step");
}

#[test]
fn the_seed_decides_a_lora_run() {
    let _turn = TRAINING.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path());
    let run = |name: &str| {
        let out = tmp.path().join(name);
        let cfg = tiny(&data, &out, &["train.max_steps=1".into()]);
        train::<B>(cfg, false, Default::default(), &mut |_, _, _| {}).unwrap();
        std::fs::read(out.join("checkpoint-1/adapter/adapter_model.safetensors")).unwrap()
    };
    let (a, b) = (run("a"), run("b"));
    assert!(a == b, "two runs with one seed wrote different adapters");
}

#[test]
fn a_second_run_into_a_busy_folder_is_refused_and_resume_without_a_checkpoint_restarts_the_logs() {
    let _turn = TRAINING.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path());
    let out = tmp.path().join("run");
    let held = repic_trainer::lock::RunLock::acquire(&out).unwrap();
    let cfg = tiny(&data, &out, &["train.max_steps=1".into()]);
    let e = train::<B>(cfg.clone(), false, Default::default(), &mut |_, _, _| {}).unwrap_err().to_string();
    assert!(e.contains("in use by process"), "{e}");
    assert!(!out.join("config.toml").exists(), "the refused run wrote nothing");
    drop(held);
    // Logs of an earlier attempt that died before its first checkpoint.
    let stale: String = (1..=3).map(|s| format!("{{\"step\": {s}, \"loss\": 9.0}}\n")).collect();
    std::fs::write(out.join("metrics.jsonl"), stale).unwrap();
    train::<B>(cfg, true, Default::default(), &mut |_, _, _| {}).unwrap();
    let m = common::metrics(&out);
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0]["step"], 1);
    assert_ne!(m[0]["loss"], 9.0);
}

#[test]
fn a_missing_image_fails_before_the_first_step() {
    let _turn = TRAINING.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path());
    let records = repic_data::load_records(&data.join("train/records.jsonl")).unwrap();
    let last = records.last().unwrap().query_image().to_string();
    std::fs::remove_file(data.join(&last)).unwrap();
    let out = tmp.path().join("run");
    let e = train::<B>(tiny(&data, &out, &[]), false, Default::default(), &mut |_, _, _| {}).unwrap_err();
    let e = e.to_string();
    assert!(e.contains(&format!("record {}: image", records.len())) && e.contains("does not exist"), "{e}");
    assert!(!out.join("metrics.jsonl").exists(), "no step ran");
}

#[test]
fn a_failed_checkpoint_write_reports_the_io_error() {
    use burn::optim::AdamWConfig;
    use repic_models::QwenVl;
    use repic_trainer::checkpoint::{TrainerState, save_optimizer};
    let optim = AdamWConfig::new().init::<B, QwenVl<B>>();
    let state = TrainerState { step: 1, rollouts: 1, total_steps: 1, param_order: vec![] };
    let tmp = tempfile::tempdir().unwrap();
    let gone = tmp.path().join("not-there");
    let e = save_optimizer(&optim, &state, &gone).unwrap_err().to_string();
    assert!(e.contains("optimizer.mpk") && e.contains("No such file or directory"), "{e}");
    assert!(!e.contains("MessagePack"), "{e}");
}
