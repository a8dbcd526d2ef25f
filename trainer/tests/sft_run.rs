//! SFT end to end with full fine-tuning on the tiny fixture: the vision tower stays exactly as loaded unless
//! `freeze_vision = false`, the language model always moves, and both loss averages run. LoRA with a trainable
//! vision tower is refused by name.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{B, fixture, metrics, synth};
use repic_trainer::{TrainConfig, train};

fn config(data: &Path, out: &Path, extra: &str) -> Result<TrainConfig, repic_trainer::TrainError> {
    let src = format!(
        r#"
mode = "sft"
model = "{model}"
output_dir = "{out}"
seed = 3
{extra}
[data]
train = "{train}"
image_root = "{root}"
[optim]
learning_rate = 0.01
[train]
prompts_per_step = 4
max_steps = 1
"#,
        model = fixture().display(),
        out = out.display(),
        train = data.join("train/records.jsonl").display(),
        root = data.display(),
    );
    TrainConfig::parse(&src, Path::new("test.toml"), &[])
}

/// Every tensor of a safetensors file, by name.
fn tensors(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.names().into_iter().map(|n| (n.to_string(), st.tensor(n).unwrap().data().to_vec())).collect()
}

/// Names of the tensors that differ between the fixture and a checkpoint's model, split into (vision, other).
fn changed(run: &Path) -> (Vec<String>, Vec<String>) {
    let before = tensors(&fixture().join("model.safetensors"));
    let after = tensors(&run.join("checkpoint-1/model/model.safetensors"));
    let key = |k: &str| k.replace("model.language_model.", "model.").replace("model.visual.", "visual.");
    let after: BTreeMap<String, Vec<u8>> = after.into_iter().map(|(k, v)| (key(&k), v)).collect();
    let mut out = (Vec::new(), Vec::new());
    for (k, v) in before {
        let now = after.get(&key(&k)).unwrap_or_else(|| panic!("{k} missing from the saved model"));
        if *now != v {
            if key(&k).starts_with("visual.") { out.0.push(k) } else { out.1.push(k) }
        }
    }
    out
}

#[test]
fn full_sft_trains_the_vision_tower_only_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path());
    let frozen = tmp.path().join("frozen");
    train::<B>(config(&data, &frozen, "finetune = \"full\"").unwrap(), false, Default::default(), &mut |_, _, _| {})
        .unwrap();
    let (vision, text) = changed(&frozen);
    assert!(vision.is_empty(), "frozen vision tower changed: {vision:?}");
    assert!(text.iter().any(|k| k.contains("q_proj")), "language model did not move: {text:?}");

    let open = tmp.path().join("open");
    let extra = "finetune = \"full\"\nfreeze_vision = false\n[sft]\nloss_average = \"sequences\"";
    train::<B>(config(&data, &open, extra).unwrap(), false, Default::default(), &mut |_, _, _| {}).unwrap();
    let (vision, _) = changed(&open);
    for part in ["patch_embed", "blocks.0.attn.qkv", "merger"] {
        assert!(vision.iter().any(|k| k.contains(part)), "{part} did not train: {vision:?}");
    }
    let m = metrics(&open);
    assert!(m[0]["loss"].as_f64().unwrap().is_finite());

    let e = config(&data, &open, "finetune = \"lora\"\nfreeze_vision = false").err().unwrap().to_string();
    assert!(e.contains("freeze_vision") && e.contains("test.toml"), "{e}");
}
