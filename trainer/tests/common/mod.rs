//! Helpers of the trainer's run tests: the tiny fixture checkpoint, a small synthetic data set, metrics lines.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use burn::backend::Autodiff;
use repic_data::synth::{SynthConfig, generate};
use serde_json::Value;

/// The backend of the run tests.
pub type B = Autodiff<repic_models::DefaultBackend>;

/// The tiny Qwen2-VL fixture.
pub fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/tests/fixtures/qwen2_vl")
}

/// A small synthetic data set under `dir`.
pub fn synth(dir: &Path) -> PathBuf {
    let cfg = SynthConfig {
        concepts: 4,
        train_records: 12,
        eval_records: 2,
        eval_queries: 2,
        scene_size: 112,
        ref_size: 56,
        ..Default::default()
    };
    let out = dir.join("data");
    generate(&cfg, &out, false, &mut |_| {}).unwrap();
    out
}

/// The lines of a run's metrics.jsonl.
pub fn metrics(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
