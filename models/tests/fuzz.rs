//! Fuzzing the checkpoint parsers: config.json (Qwen2-VL / Qwen2.5-VL), preprocessor and generation configs,
//! a PEFT adapter config and the safetensors header of a weight file, each from the fixtures with random byte
//! edits. A parser returns a value or an error naming the file, never panics; bounded so that CI runs it.

mod common;

use std::path::Path;

use common::{B, fixture};
use proptest::prelude::*;
use repic_models::{ProcessorConfig, QwenVl, QwenVlConfig, read_peft_config, sampling_defaults};
use repic_testkit::{Edit, apply_edits, fixed};
use serde_json::Value;

/// Bytes of the format's syntax that edits favour.
const ALPHABET: &[u8] = b"[]{}\",:0123456789-.e tfn\n";

/// Edits drawn from anything or from the format's syntax.
fn edits() -> impl Strategy<Value = Vec<Edit>> {
    repic_testkit::edits(ALPHABET)
}

fn read(name: &str, file: &str) -> String {
    std::fs::read_to_string(fixture(name).join(file)).unwrap()
}

proptest! {
    #![proptest_config(fixed(256))]

    #[test]
    fn json_configs(
        which in proptest::sample::select(vec!["qwen2_vl", "qwen2_vl_flat", "qwen2_5_vl", "qwen2_5_vl_b"]),
        e in edits(),
    ) {
        let p = Path::new("config.json");
        let json = |file: &str| serde_json::from_str::<Value>(&apply_edits(&read(which, file), &e)).ok();
        if let Some(c) = json("config.json").and_then(|v| QwenVlConfig::from_value(&v, p).ok()) {
            // Accepted configs are usable: the sizes the model is built from divide as it needs.
            prop_assert!(c.text.num_attention_heads > 0 && c.text.hidden_size % c.text.num_attention_heads == 0);
            prop_assert!(c.text.rope_theta.is_finite() && (c.tokens.image as usize) < c.text.vocab_size);
        }
        if let Some(c) = json("preprocessor_config.json").and_then(|v| ProcessorConfig::from_value(&v).ok()) {
            let _ = c.validate();
        }
        if let Some(s) = json("generation_config.json").and_then(|v| sampling_defaults(Some(&v)).ok()) {
            prop_assert!(s.validate().is_ok());
        }
    }

    #[test]
    fn peft_adapter_configs(e in edits()) {
        let dir = tempfile::tempdir().unwrap();
        let src = read("qwen2_5_vl", "lora/adapter_config.json");
        std::fs::write(dir.path().join("adapter_config.json"), apply_edits(&src, &e)).unwrap();
        if let Err(err) = read_peft_config(dir.path()) {
            prop_assert!(err.to_string().contains("adapter_config.json"), "{err}");
        }
    }
}

proptest! {
    // Each case copies a checkpoint and loads it: fewer cases.
    #![proptest_config(fixed(48))]

    #[test]
    fn safetensors_headers(e in edits()) {
        let src = fixture("qwen2_vl");
        let dir = tempfile::tempdir().unwrap();
        for f in ["config.json", "preprocessor_config.json"] {
            std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
        }
        // Edits land in the 8-byte length or the JSON header that follows it.
        let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
        let n = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let head: String = bytes[..n].iter().map(|&b| b as char).collect();
        let edited: Vec<u8> = apply_edits(&head, &e).chars().map(|c| c as u32 as u8).collect();
        std::fs::write(dir.path().join("model.safetensors"), [edited.as_slice(), &bytes[n..]].concat()).unwrap();
        if let Err(err) = QwenVl::<B>::load(dir.path(), &Default::default()) {
            prop_assert!(err.to_string().contains("safetensors"), "{err}");
        }
    }
}
