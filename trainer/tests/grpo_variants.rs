//! GRPO variants through the run loop: reused rollouts (`num_iterations` = 2), gradient accumulation, every
//! `loss_type` and `scale_rewards`. (A separate test binary: burn's backend generator is process-wide, and the
//! resume test must not share it with another run.)

mod common;

use std::path::Path;

use common::{B, fixture, metrics, synth};
use repic_trainer::{TrainConfig, train as run_grpo};

#[test]
fn reused_rollouts_accumulation_and_every_loss_type_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path());
    for (i, loss) in ["grpo", "bnpo", "dr_grpo", "dapo"].iter().enumerate() {
        let out = tmp.path().join(format!("run-{loss}"));
        // mu = 2: each rollout phase gives two optimizer steps, the second with a ratio away from 1.
        let extra = format!(
            "gradient_accumulation_steps = 2\nprompts_per_step = 1\n[grpo]\nnum_generations = 3\n\
             max_completion_length = 5\nnum_iterations = 2\nloss_type = \"{loss}\"\nscale_rewards = \"{}\"\n\
             mask_truncated_completions = {}\nepsilon_high = 0.28\n",
            ["group", "batch", "none", "group"][i],
            i % 2 == 0,
        );
        let src = format!(
            "model = {:?}\noutput_dir = {:?}\n[lora]\nr = 2\nalpha = 4\n[data]\ntrain = {:?}\nimage_root = {:?}\n\
             [optim]\nlearning_rate = 0.01\n[train]\nmax_steps = 4\nsave_total_limit = 1\n{extra}",
            fixture().to_string_lossy(),
            out.to_string_lossy(),
            data.join("train/records.jsonl").to_string_lossy(),
            data.to_string_lossy(),
        );
        // [train] keys come before the [grpo] table in `extra`.
        let cfg = TrainConfig::parse(&src, Path::new("t.toml"), &[]).unwrap_or_else(|e| panic!("{loss}: {e}"));
        let summary = run_grpo::<B>(cfg, false, Default::default(), &mut |_, _, _| {}).unwrap();
        assert_eq!(summary.steps, 4, "{loss}");
        let m = metrics(&out);
        assert_eq!(m.iter().map(|v| v["step"].as_u64().unwrap()).collect::<Vec<_>>(), [2, 4], "{loss}");
        for v in &m {
            assert!(v["loss"].as_f64().unwrap().is_finite() && v["grad_norm"].as_f64().unwrap().is_finite(), "{loss}");
        }
        // One checkpoint kept.
        let kept: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("checkpoint-"))
            .collect();
        assert_eq!(kept.len(), 1, "{loss}");
    }
}
