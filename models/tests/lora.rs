//! LoRA: a fresh adapter leaves the model unchanged, merging equals the unmerged forward, disabling adapters
//! gives the base model back, gradients reach only the adapters, and adapters travel in PEFT's layout (an
//! adapter made by Python PEFT gives transformers' logits here; ours round-trips with PEFT's tensor names).

mod common;

use std::collections::BTreeMap;

use burn::backend::Autodiff;
use burn::module::{Module, Param};
use burn::tensor::{Distribution, Tensor};
use common::{B, Reference, fixture, max_diff};
use repic_models::{Engine, LoraConfig, LoraTargets, QwenVl, ScoreOptions, VlInput, load_peft, save_peft};

fn logits(model: &QwenVl<B>, input: &VlInput) -> Vec<f32> {
    model.logits(input, &Default::default()).unwrap().into_data().to_vec().unwrap()
}

fn diff(a: &[f32], b: &[f32]) -> f64 {
    max_diff(a, &b.iter().map(|&x| f64::from(x)).collect::<Vec<_>>())
}

/// Largest difference relative to the largest magnitude of `b` (f32 rounding grows with the logits' size).
fn rel_diff(a: &[f32], b: &[f32]) -> f64 {
    diff(a, b) / b.iter().fold(1.0f64, |m, &x| m.max(f64::from(x).abs()))
}

fn small(targets: LoraTargets) -> LoraConfig {
    LoraConfig { r: 4, alpha: 8.0, dropout: 0.05, target_modules: targets, use_rslora: false }
}

/// Give every adapter a random B, so that it changes the output.
fn randomise(model: &mut QwenVl<B>) {
    let adapters = model
        .adapters()
        .into_iter()
        .map(|(n, l)| {
            let mut l = l.clone();
            let dims = l.b.weight.dims();
            l.b.weight = Param::from_tensor(Tensor::random(dims, Distribution::Normal(0.0, 0.05), &Default::default()));
            (n, l)
        })
        .collect();
    model.set_adapters(adapters).unwrap();
}

#[test]
fn fresh_adapters_change_nothing_and_merging_equals_the_unmerged_forward() {
    // qwen2_vl ties its head to the embedding; qwen2_5_vl does not.
    for name in ["qwen2_vl", "qwen2_5_vl"] {
        let dir = fixture(name);
        let dev = Default::default();
        let base = QwenVl::<B>::load(&dir, &dev).unwrap();
        let input = Reference::load(&dir).input("image_text");
        let want = logits(&base, &input);
        let mut model = base.clone();
        let names = model.attach_lora(&LoraConfig::default(), &dev).unwrap();
        assert_eq!(names.len(), 7 * model.config().text.num_hidden_layers + 1, "{name}: every Linear and the head");
        assert_eq!(names.last().map(String::as_str), Some("lm_head"));
        assert_eq!(diff(&logits(&model, &input), &want), 0.0, "{name}: B = 0 must leave logits unchanged");
        randomise(&mut model);
        let adapted = logits(&model, &input);
        assert!(diff(&adapted, &want) > 1e-2, "{name}: the adapter must change the output");
        model.set_lora_merged(true);
        let d = rel_diff(&logits(&model, &input), &adapted);
        assert!(d <= 1e-5, "{name}: merged vs unmerged differ by {d}");
        // `model` is a clone of `base`, and a clone shares its tensors (LibTorch: the same storage): merging must
        // write new weights, never into shared ones (the embedding of a tied head above all).
        let shared = |what: &str| {
            let d = diff(&logits(&base, &input), &want);
            assert_eq!(d, 0.0, "{name}: {what} changed the base model the adapted one was cloned from, by {d}");
        };
        shared("merging");
        model.set_lora_merged(false);
        let d = rel_diff(&logits(&model, &input), &adapted);
        assert!(d <= 1e-5, "{name}: unmerged again differs by {d}");
        let d = diff(&logits(&model.without_lora(), &input), &want);
        assert!(d <= 1e-5, "{name}: adapters off is the base model, off by {d}");
        let merged = model.clone().merge_and_unload();
        assert!(!merged.has_lora());
        shared("merge_and_unload");
        let d = rel_diff(&logits(&merged, &input), &adapted);
        assert!(d <= 1e-5, "{name}: merge_and_unload differs by {d}");
        // A merged export of a tied head unties it in config.json; transformers-layout reload gives the same.
        let tmp = tempfile::tempdir().unwrap();
        repic_models::save_qwen_vl(&merged, &dir, &tmp.path().join("m"), false).unwrap();
        let back = QwenVl::<B>::load(&tmp.path().join("m"), &dev).unwrap();
        assert!(!back.config().text.tie_word_embeddings, "{name}");
        let d = rel_diff(&logits(&back, &input), &adapted);
        assert!(d <= 1e-5, "{name}: exported merged model differs by {d}");
        assert!(repic_models::save_qwen_vl(&model, &dir, &tmp.path().join("x"), false).is_err());
    }
}

#[test]
fn target_patterns_choose_layers_and_refuse_the_vision_tower() {
    let dir = fixture("qwen2_5_vl");
    let dev = Default::default();
    let base = QwenVl::<B>::load(&dir, &dev).unwrap();
    let mut m = base.clone();
    let names = m.attach_lora(&small(LoraTargets::Regex(r"model\.layers\.0\.self_attn\.(q|v)_proj".into())), &dev);
    assert_eq!(names.unwrap(), ["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj"]);
    // PEFT's list form matches tails; on Qwen2.5-VL `gate_proj` also names vision MLPs, which we refuse.
    let e = base.clone().attach_lora(&small(LoraTargets::Names(vec!["gate_proj".into()])), &dev).unwrap_err();
    assert!(e.to_string().contains("visual.blocks.0.mlp.gate_proj"), "{e}");
    let n = base.clone().attach_lora(&small(LoraTargets::Names(vec!["q_proj".into(), "lm_head".into()])), &dev);
    assert_eq!(n.unwrap().len(), base.config().text.num_hidden_layers + 1);
    assert!(base.clone().attach_lora(&small(LoraTargets::Regex("nothing".into())), &dev).is_err());
    assert!(base.clone().attach_lora(&small(LoraTargets::Regex("(".into())), &dev).is_err());
    assert!(base.clone().attach_lora(&LoraConfig { r: 0, ..LoraConfig::default() }, &dev).is_err());
}

#[test]
fn gradients_reach_the_adapters_and_not_the_frozen_base() {
    type A = Autodiff<B>;
    let dir = fixture("qwen2_vl");
    let dev = Default::default();
    let mut model = QwenVl::<A>::load(&dir, &dev).unwrap();
    model.attach_lora(&small(LoraTargets::Regex(repic_models::lora::REPIC_TARGETS.into())), &dev).unwrap();
    let input = Reference::load(&dir).input("image_text");
    let engine = Engine::new(&model, &dev);
    let scored = engine.score(&[(input, vec![49, 50, 51])], ScoreOptions::default()).unwrap();
    let grads = scored.logprobs.sum().backward();
    let (l0, _) = &model.adapters()[0];
    assert_eq!(l0, "model.layers.0.self_attn.q_proj");
    let lora = model.model.layers[0].self_attn.q_proj.lora.as_ref().unwrap();
    // With B = 0 only B receives a gradient at first (dL/dA = B^T ... = 0).
    let gb = lora.b.weight.grad(&grads).expect("B has a gradient");
    assert!(gb.abs().sum().into_scalar() > 0.0);
    assert!(model.model.layers[0].self_attn.q_proj.base.weight.grad(&grads).is_none(), "base must be frozen");
    assert!(model.model.embed_tokens.weight.grad(&grads).is_none(), "embedding must be frozen");
    assert!(model.visual.num_params() > 0 && model.lm_head_lora.as_ref().unwrap().b.weight.grad(&grads).is_some());
}

#[test]
fn a_python_peft_adapter_gives_transformers_logits() {
    for name in ["qwen2_vl", "qwen2_5_vl"] {
        let dir = fixture(name);
        let dev = Default::default();
        let mut model = QwenVl::<B>::load(&dir, &dev).unwrap();
        let lora = load_peft(&mut model, &dir.join("lora"), &dev).unwrap();
        assert_eq!((lora.r, lora.alpha), (4, 8.0));
        assert_eq!(model.adapters().len(), 7 * model.config().text.num_hidden_layers + 1, "{name}");
        let input = Reference::load(&dir).input("image_text");
        let st = std::fs::read(dir.join("lora/reference.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&st).unwrap();
        let want: Vec<f64> = st
            .tensor("logits")
            .unwrap()
            .data()
            .chunks(4)
            .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap())))
            .collect();
        let d = max_diff(&logits(&model, &input), &want);
        assert!(d <= 1e-4, "{name}: logits with the PEFT adapter differ from transformers by {d}");
    }
}

#[test]
fn our_adapters_round_trip_with_peft_tensor_names_and_shapes() {
    let dir = fixture("qwen2_5_vl");
    let dev = Default::default();
    let base = QwenVl::<B>::load(&dir, &dev).unwrap();
    let mut model = base.clone();
    let lora = small(LoraTargets::Regex(repic_models::lora::REPIC_TARGETS.into()));
    model.attach_lora(&lora, &dev).unwrap();
    randomise(&mut model);
    let input = Reference::load(&dir).input("image_text");
    let want = logits(&model, &input);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("adapter");
    save_peft(&model, &lora, "qwen2_5_vl", &out, false).unwrap();
    assert!(save_peft(&model, &lora, "qwen2_5_vl", &out, false).is_err(), "no silent overwrite");
    // Same tensor names and shapes as the adapter Python PEFT saved for the same targets.
    let shapes = |p: &std::path::Path| -> BTreeMap<String, Vec<usize>> {
        let bytes = std::fs::read(p.join("adapter_model.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        // PEFT also saves the head's base weight (`base_layer`) when the head is targeted; we do not need to.
        st.tensors()
            .into_iter()
            .filter(|(k, _)| !k.contains("base_layer"))
            .map(|(k, v)| (k, v.shape().to_vec()))
            .collect()
    };
    assert_eq!(shapes(&out), shapes(&dir.join("lora")));
    let mut back = base.clone();
    let read = load_peft(&mut back, &out, &dev).unwrap();
    assert_eq!((read.r, read.alpha, read.dropout), (4, 8.0, 0.05));
    // On a model of other widths (48, not 64) the adapter is refused with the file's shapes, never a panic.
    let mut other = QwenVl::<B>::load(&fixture("qwen2_vl_flat"), &dev).unwrap();
    let e = load_peft(&mut other, &out, &dev).unwrap_err().to_string();
    assert!(e.contains("lora_A [4, 64]") && e.contains("do not fit a layer of 48 inputs"), "{e}");
    assert_eq!(diff(&logits(&back, &input), &want), 0.0);
    if let Some(keep) = std::env::var_os("REPIC_KEEP_ADAPTER") {
        // For scripts/make_lora_fixtures.py --check: the adapter and the logits it gives here.
        let keep = std::path::PathBuf::from(keep);
        save_peft(&model, &lora, "qwen2_5_vl", &keep, true).unwrap();
        let bytes: Vec<u8> = want.iter().flat_map(|v| v.to_le_bytes()).collect();
        let t = input.ids.len();
        let view =
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![t, want.len() / t], &bytes).unwrap();
        safetensors::serialize_to_file([("logits", view)], None, &keep.join("logits.safetensors")).unwrap();
    }
    // A foreign tensor is named, not skipped.
    std::fs::write(
        out.join("adapter_config.json"),
        r#"{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"], "use_dora": true}"#,
    )
    .unwrap();
    let e = load_peft(&mut base.clone(), &out, &dev).unwrap_err();
    assert!(e.to_string().contains("use_dora"), "{e}");
}

#[test]
fn several_adapters_switch_on_one_base_and_switching_back_is_bit_identical() {
    let dir = fixture("qwen2_5_vl");
    let dev = Default::default();
    let base = QwenVl::<B>::load(&dir, &dev).unwrap();
    let input = Reference::load(&dir).input("image_text");
    // Adapter "mine": ours, randomised and saved as PEFT; adapter "peft": the one Python PEFT saved.
    let mut model = base.clone();
    let lora = small(LoraTargets::Regex(repic_models::lora::REPIC_TARGETS.into()));
    model.attach_lora(&lora, &dev).unwrap();
    randomise(&mut model);
    let tmp = tempfile::tempdir().unwrap();
    save_peft(&model, &lora, "qwen2_5_vl", &tmp.path().join("mine"), false).unwrap();
    let mut bank = repic_models::AdapterBank::<B>::new();
    bank.load("mine", &tmp.path().join("mine"), &base, &dev).unwrap();
    bank.load("peft", &dir.join("lora"), &base, &dev).unwrap();
    assert_eq!(bank.names(), ["mine", "peft"]);
    let with = |name: Option<&str>| logits(&bank.apply(&base, name).unwrap(), &input);
    let (plain, mine, peft) = (with(None), with(Some("mine")), with(Some("peft")));
    assert_eq!(plain, logits(&base, &input), "no adapter is the base");
    assert!(diff(&mine, &plain) > 1e-3 && diff(&peft, &plain) > 1e-3 && diff(&mine, &peft) > 1e-3);
    assert_eq!(mine, logits(&model, &input), "the bank's adapter is the saved one");
    // Back and forth: the same bits every time.
    for _ in 0..2 {
        assert_eq!(with(Some("peft")), peft);
        assert_eq!(with(Some("mine")), mine);
    }
    assert!(bank.apply(&base, Some("other")).unwrap_err().to_string().contains("loaded: mine, peft"));
    assert!(bank.unload("peft") && !bank.unload("peft"));
    let other = QwenVl::<B>::load(&fixture("qwen2_vl_flat"), &dev).unwrap();
    assert!(bank.load("wrong", &dir.join("lora"), &other, &dev).is_err(), "an adapter of another model");
}
