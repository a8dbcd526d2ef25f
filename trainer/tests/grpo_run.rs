//! GRPO end to end on a tiny fixture checkpoint and a small synthetic data set: metrics, samples, TensorBoard
//! events and checkpoints are written, and a run killed after step k and resumed gives the same step k+1 as an
//! uninterrupted run.

mod common;

use std::path::Path;

use common::{B, fixture, metrics, synth};
use repic_trainer::{TrainConfig, train as run_grpo};

fn config(data: &Path, out: &Path, extra: &str) -> TrainConfig {
    let src = format!(
        r#"
model = "{model}"
output_dir = "{out}"
seed = 7
[lora]
r = 4
alpha = 8
dropout = 0.1
[data]
train = "{train}"
image_root = "{root}"
[grpo]
num_generations = 4
max_completion_length = 6
beta = 0.04
[optim]
learning_rate = 0.002
[train]
prompts_per_step = 2
max_steps = 3
save_steps = 1
save_total_limit = 0
{extra}
"#,
        model = fixture().display(),
        out = out.display(),
        train = data.join("train/records.jsonl").display(),
        root = data.display(),
    );
    TrainConfig::parse(&src, Path::new("test.toml"), &[]).unwrap()
}

/// Every adapter value of a checkpoint, in key order.
fn adapter(dir: &Path) -> Vec<f32> {
    let bytes = std::fs::read(dir.join("adapter/adapter_model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    names
        .iter()
        .flat_map(|n| {
            st.tensor(n)
                .unwrap()
                .data()
                .chunks(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn a_run_writes_its_logs_and_resuming_after_a_kill_repeats_the_next_step_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path());
    let full = tmp.path().join("full");
    let mut seen = Vec::new();
    let summary = run_grpo::<B>(config(&data, &full, ""), false, Default::default(), &mut |m, s, total| {
        seen.push((s, total, m["loss"]));
    })
    .unwrap();
    assert_eq!(summary.steps, 3);
    assert_eq!(seen.iter().map(|(s, t, _)| (*s, *t)).collect::<Vec<_>>(), [(1, 3), (2, 3), (3, 3)]);
    let m = metrics(&full);
    assert_eq!(m.len(), 3);
    for key in [
        "loss",
        "reward",
        "reward_std",
        "frac_reward_zero_std",
        "completions/mean_length",
        "completions/min_length",
        "completions/max_length",
        "completions/clipped_ratio",
        "kl",
        "clip_ratio/low_mean",
        "clip_ratio/high_mean",
        "clip_ratio/region_mean",
        "grad_norm",
        "learning_rate",
        "timing/generate",
        "timing/logprobs",
        "timing/update",
        "perf/tokens_per_second",
        "entropy",
        "memory/peak_rss_mb",
    ] {
        assert!(m[0][key].is_number(), "metric `{key}` missing: {}", m[0]);
    }
    assert!(m[0].as_object().unwrap().keys().any(|k| k.starts_with("rewards/")), "per-function rewards");
    // The policy's entropy is positive and below ln(vocab) for this 320-token vocabulary.
    let h = m[0]["entropy"].as_f64().unwrap();
    assert!(h > 0.0 && h < 320f64.ln(), "entropy {h}");
    // Linear decay from 2e-3 over 3 steps.
    let lrs: Vec<f64> = m.iter().map(|v| v["learning_rate"].as_f64().unwrap()).collect();
    assert!((lrs[0] - 2e-3).abs() < 1e-12 && (lrs[1] - 2e-3 * 2.0 / 3.0).abs() < 1e-12, "{lrs:?}");
    // The KL to the reference grows from 0 once the adapters have moved.
    assert_eq!(m[0]["kl"].as_f64().unwrap(), 0.0);
    assert!(m[2]["kl"].as_f64().unwrap() > 0.0);
    assert!(std::fs::read_to_string(full.join("samples.jsonl")).unwrap().contains("\"completion\""));
    let png = image::open(full.join("training.png")).unwrap();
    assert_eq!((png.width(), png.height()), (1200, 450));
    let events = std::fs::read_dir(full.join("tensorboard")).unwrap().count();
    assert_eq!(events, 1);
    for s in 1..=3 {
        assert!(full.join(format!("checkpoint-{s}/trainer_state.json")).is_file());
    }
    // A second run into the same folder without --resume is refused instead of mixing logs.
    assert!(run_grpo::<B>(config(&data, &full, ""), false, Default::default(), &mut |_, _, _| {}).is_err());

    // "Kill" a copy of the run after step 2: its checkpoint 3 never got written.
    let killed = tmp.path().join("killed");
    std::fs::create_dir_all(&killed).unwrap();
    for f in ["metrics.jsonl", "samples.jsonl"] {
        std::fs::copy(full.join(f), killed.join(f)).unwrap();
    }
    for s in 1..=2 {
        copy_dir(&full.join(format!("checkpoint-{s}")), &killed.join(format!("checkpoint-{s}")));
    }
    let resumed = run_grpo::<B>(config(&data, &killed, ""), true, Default::default(), &mut |_, _, _| {}).unwrap();
    assert_eq!(resumed.steps, 3);
    let again = metrics(&killed);
    assert_eq!(again.len(), 3, "step 3 logged once");
    for key in ["loss", "reward", "kl", "grad_norm"] {
        let (a, b) = (m[2][key].as_f64().unwrap(), again[2][key].as_f64().unwrap());
        assert!((a - b).abs() <= 1e-6 * a.abs().max(1.0), "step 3 `{key}`: {a} uninterrupted vs {b} resumed");
    }
    let (a, b) = (adapter(&full.join("checkpoint-3")), adapter(&killed.join("checkpoint-3")));
    let d = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    let d2 = adapter(&full.join("checkpoint-2"))
        .iter()
        .zip(&adapter(&killed.join("checkpoint-2")))
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(d == 0.0, "weights after step 3 differ by {d} (after step 2: {d2})");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            copy_dir(&p, &to.join(p.file_name().unwrap()));
        } else {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}
