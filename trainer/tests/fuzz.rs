//! Fuzzing the training config parser (TOML plus `--set` overrides): the shipped configs with random byte
//! edits, arbitrary text and arbitrary override values. It returns a config or an error naming the file, never
//! panics; what it accepts is in range (`validate`) and round-trips through the TOML written beside checkpoints.

use std::path::Path;

use proptest::prelude::*;
use repic_testkit::{Edit, apply_edits, fixed};
use repic_trainer::TrainConfig;

const CONFIGS: [&str; 2] =
    [include_str!("../../configs/demo.toml"), include_str!("../../configs/repic-qwen2.5vl-7b.toml")];

/// Bytes of the format's syntax that edits favour.
const ALPHABET: &[u8] = b"[]=\".0123456789-e \n#tfna_";

/// Edits drawn from anything or from the format's syntax.
fn edits() -> impl Strategy<Value = Vec<Edit>> {
    repic_testkit::edits(ALPHABET)
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
