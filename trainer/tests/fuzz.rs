//! Fuzzing the training config parser (TOML plus `--set` overrides): the shipped configs with random byte
//! edits, arbitrary text and arbitrary override values. It returns a config or an error naming the file, never
//! panics; what it accepts is in range (`validate`) and round-trips through the TOML written beside checkpoints.

use std::path::Path;

use proptest::prelude::*;
use repic_data::fuzz::{Edit, apply_edits};
use repic_trainer::TrainConfig;

const CONFIGS: [&str; 2] =
    [include_str!("../../configs/demo.toml"), include_str!("../../configs/repic-qwen2.5vl-7b.toml")];

/// `cases` cases from a fixed seed, so that CI sees the same inputs every run (set PROPTEST_RNG_SEED to explore).
fn fixed(cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig::with_cases(cases);
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        c.rng_seed = proptest::test_runner::RngSeed::Fixed(0x5EED_F422);
    }
    c
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let byte = prop_oneof![any::<u8>(), proptest::sample::select(b"[]=\".0123456789-e \n#tfna_".to_vec())];
    let edit = prop_oneof![
        (any::<usize>(), 1usize..12).prop_map(|(at, len)| Edit::Delete { at, len }),
        (any::<usize>(), byte.clone()).prop_map(|(at, byte)| Edit::Insert { at, byte }),
        (any::<usize>(), byte).prop_map(|(at, byte)| Edit::Replace { at, byte }),
    ];
    proptest::collection::vec(edit, 1..6)
}

fn accepted(cfg: &TrainConfig) -> Result<(), TestCaseError> {
    prop_assert!(cfg.validate().is_ok());
    let again = TrainConfig::parse(&cfg.to_toml(), Path::new("again.toml"), &[]).unwrap();
    prop_assert_eq!(&again, cfg);
    Ok(())
}

proptest! {
    #![proptest_config(fixed(256))]

    #[test]
    fn config_files(which in 0usize..2, e in edits(), noise in any::<String>()) {
        for src in [apply_edits(CONFIGS[which], &e), noise] {
            match TrainConfig::parse(&src, Path::new("run.toml"), &[]) {
                Ok(cfg) => accepted(&cfg)?,
                Err(err) => prop_assert!(err.to_string().starts_with("run.toml"), "{err}"),
            }
        }
    }

    #[test]
    fn overrides(
        key in proptest::sample::select(vec!["optim.learning_rate", "grpo.num_generations", "grpo.temperature",
            "train.max_steps", "lora.r", "rewards.weights", "data.min_pixels", "finetune", "seed", "x.y", ""]),
        value in prop_oneof![any::<String>(), "-?[0-9]{0,12}(\\.[0-9]{0,6})?(e-?[0-9]{1,3})?", Just("inf".to_string()),
            Just("nan".to_string()), Just("\"full\"".to_string()), Just("[1, 2]".to_string())],
    ) {
        let set = [format!("{key}={value}")];
        match TrainConfig::parse(CONFIGS[1], Path::new("run.toml"), &set) {
            Ok(cfg) => accepted(&cfg)?,
            Err(err) => prop_assert!(err.to_string().starts_with("run.toml"), "{err}"),
        }
    }
}
