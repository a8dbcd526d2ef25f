//! Checkpoint loading errors: every missing, unexpected or misshaped tensor named in one error; unknown
//! architectures refused by name; sharded checkpoints load like single files.

use std::collections::HashMap;
use std::path::Path;

use repic_models::{ModelError, QwenVl};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

fn fixture() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen2_5_vl")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// Rewrite `model.safetensors` of `dir` into `files` shards, editing tensors on the way.
fn rewrite(
    dir: &Path,
    shards: usize,
    edit: impl Fn(&str, Vec<usize>, Vec<u8>) -> Option<(String, Vec<usize>, Vec<u8>)>,
) {
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    let mut owned = Vec::new();
    for n in &names {
        let t = st.tensor(n).unwrap();
        assert_eq!(t.dtype(), Dtype::F32);
        if let Some(x) = edit(n, t.shape().to_vec(), t.data().to_vec()) {
            owned.push(x);
        }
    }
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let per = owned.len().div_ceil(shards);
    let mut weight_map = serde_json::Map::new();
    for (i, chunk) in owned.chunks(per).enumerate() {
        let file = format!("model-{:05}-of-{:05}.safetensors", i + 1, shards);
        let views: Vec<(String, TensorView)> = chunk
            .iter()
            .map(|(n, shape, data)| (n.clone(), TensorView::new(Dtype::F32, shape.clone(), data).unwrap()))
            .collect();
        for (n, _, _) in chunk {
            weight_map.insert(n.clone(), file.clone().into());
        }
        safetensors::serialize_to_file(views, None::<HashMap<String, String>>, &dir.join(&file)).unwrap();
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
}

#[test]
fn sharded_checkpoint_loads() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixture(), tmp.path());
    rewrite(tmp.path(), 3, |n, s, d| Some((n.to_string(), s, d)));
    QwenVl::<repic_models::DefaultBackend>::load(tmp.path(), &Default::default()).unwrap();
}

#[test]
fn every_bad_tensor_is_named_in_one_error() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixture(), tmp.path());
    rewrite(tmp.path(), 2, |n, s, d| match n {
        "model.norm.weight" => None,
        "visual.blocks.0.attn.proj.bias" => {
            let half = d.len() / 2;
            Some((n.to_string(), vec![s[0] / 2], d[..half].to_vec()))
        }
        "model.layers.0.mlp.up_proj.weight" => Some(("model.layers.0.mlp.upp_proj.weight".into(), s, d)),
        _ => Some((n.to_string(), s, d)),
    });
    let e = match QwenVl::<repic_models::DefaultBackend>::load(tmp.path(), &Default::default()) {
        Err(e @ ModelError::Weights { .. }) => e.to_string(),
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("a broken checkpoint loaded"),
    };
    for needle in [
        "model.norm.weight",
        "visual.blocks.0.attn.proj.bias",
        "model.layers.0.mlp.upp_proj.weight",
        "model.layers.0.mlp.up_proj.weight",
    ] {
        assert!(e.contains(needle), "`{needle}` not named in:\n{e}");
    }
}

#[test]
fn unknown_architecture_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixture(), tmp.path());
    let cfg = std::fs::read_to_string(tmp.path().join("config.json")).unwrap();
    std::fs::write(tmp.path().join("config.json"), cfg.replace("\"qwen2_5_vl\"", "\"llava_next\"")).unwrap();
    let e = QwenVl::<repic_models::DefaultBackend>::load(tmp.path(), &Default::default()).err().unwrap().to_string();
    assert!(e.contains("unsupported model_type `llava_next`"), "{e}");
}

#[test]
fn saved_checkpoint_reloads_with_identical_logits() {
    use repic_models::{Checkpoint, save_qwen_vl};
    for name in ["qwen2_vl", "qwen2_5_vl_b"] {
        let src = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
        let dev = Default::default();
        let a = Checkpoint::<repic_models::DefaultBackend>::load(&src, &dev).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("saved");
        save_qwen_vl(&a.model, &src, &out, false).unwrap();
        assert!(save_qwen_vl(&a.model, &src, &out, false).is_err(), "refuses to overwrite");
        let b = Checkpoint::<repic_models::DefaultBackend>::load(&out, &dev).unwrap();
        // Same keys as the source checkpoint (legacy HF layout), none extra.
        let keys = |p: &Path| {
            let bytes = std::fs::read(p.join("model.safetensors")).unwrap();
            let mut k: Vec<String> =
                SafeTensors::deserialize(&bytes).unwrap().names().into_iter().map(String::from).collect();
            k.sort();
            k
        };
        assert_eq!(keys(&out), keys(&src), "{name}");
        // transformers only loads safetensors files whose metadata says `format: pt`.
        let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(meta.metadata().as_ref().and_then(|m| m.get("format")).map(String::as_str), Some("pt"));
        let prompt = a.prepare(&[repic_data::Message::user_with_images(["image0.png"], "Hi <bo>")], &src).unwrap();
        let la = a.model.logits(&prompt.input, &dev).unwrap().into_data().to_vec::<f32>().unwrap();
        let lb = b.model.logits(&prompt.input, &dev).unwrap().into_data().to_vec::<f32>().unwrap();
        assert_eq!(la, lb, "{name}: logits after a save/load round trip");
    }
}
