//! LoRA adapters in PEFT's folder layout: `adapter_config.json` and `adapter_model.safetensors` with PEFT's
//! tensor names (`base_model.model.model.language_model.layers.N.self_attn.q_proj.lora_A.weight`, `[r, in]`;
//! `lora_B`, `[out, r]`), so that `PeftModel.from_pretrained` loads what we save and we load what it saves.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData};
use safetensors::SafeTensors;
use serde_json::{Value, json};

use crate::hf::save::write_dir_atomically;
use crate::lora::{Lora, LoraConfig, LoraTargets};
use crate::{ModelError, QwenVl};

/// PEFT's prefix of a layer, from our Hugging Face layer name (transformers >= 4.52 module layout).
fn peft_prefix(name: &str) -> String {
    match name.strip_prefix("model.") {
        Some(rest) => format!("base_model.model.model.language_model.{rest}"),
        None => format!("base_model.model.{name}"),
    }
}

/// Our layer name from a PEFT prefix of either transformers layout (`model.language_model.layers` or the
/// older `model.layers`).
fn layer_name(prefix: &str) -> Option<String> {
    let rest = prefix.strip_prefix("base_model.model.")?;
    if let Some(r) = rest.strip_prefix("model.language_model.") {
        return Some(format!("model.{r}"));
    }
    if rest.starts_with("model.layers.") || rest == "lm_head" {
        return Some(rest.to_string());
    }
    None
}

/// Row-major f32 values of a 2-D float tensor, transposed (burn `[in, out]` <-> PyTorch `[out, in]`).
fn transposed<B: Backend>(t: Tensor<B, 2>) -> Result<(Vec<usize>, Vec<f32>), ModelError> {
    let t = t.transpose();
    let shape = t.dims().to_vec();
    let data = t.into_data().convert::<f32>().to_vec::<f32>().map_err(|e| ModelError::Input(format!("{e:?}")))?;
    Ok((shape, data))
}

/// Save the adapters of `model` as a PEFT folder `out` (written atomically; replaced only if `overwrite`).
/// `base_model` is recorded as `base_model_name_or_path`.
pub fn save_peft<B: Backend>(
    model: &QwenVl<B>,
    lora: &LoraConfig,
    base_model: &str,
    out: &Path,
    overwrite: bool,
) -> Result<(), ModelError> {
    let adapters = model.adapters();
    if adapters.is_empty() {
        return Err(ModelError::Input("the model has no LoRA adapters to save".into()));
    }
    let mut tensors: BTreeMap<String, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
    let mut targets = Vec::new();
    for (name, l) in &adapters {
        let prefix = peft_prefix(name);
        for (part, w) in [("lora_A", l.a.weight.val()), ("lora_B", l.b.weight.val())] {
            let (shape, data) = transposed(w)?;
            let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
            tensors.insert(format!("{prefix}.{part}.weight"), (shape, bytes));
        }
        targets.push(name.strip_prefix("model.").unwrap_or(name).to_string());
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(k, (shape, bytes))| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map(|v| (k.clone(), v))
                .map_err(|e| ModelError::Input(format!("tensor {k}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let config = json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": lora.r,
        "lora_alpha": lora.alpha,
        "lora_dropout": lora.dropout,
        "use_rslora": lora.use_rslora,
        // Exact layer tails: they match in both transformers layouts and never in the vision tower.
        "target_modules": targets,
        "bias": "none",
        "fan_in_fan_out": false,
        "init_lora_weights": true,
        "inference_mode": true,
        "use_dora": false,
        "modules_to_save": null,
        "layers_to_transform": null,
        "layers_pattern": null,
        "rank_pattern": {},
        "alpha_pattern": {},
    });
    write_dir_atomically(out, overwrite, |stage| {
        let file = stage.join("adapter_model.safetensors");
        let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
        safetensors::serialize_to_file(views, Some(meta), &file)
            .map_err(|e| ModelError::Config { path: file.clone(), msg: e.to_string() })?;
        let cfg_file = stage.join("adapter_config.json");
        let text = serde_json::to_string_pretty(&config).map_err(|e| ModelError::Input(e.to_string()))?;
        std::fs::write(&cfg_file, text).map_err(|e| ModelError::io(&cfg_file, e))
    })
}

/// Read `adapter_config.json` of a PEFT folder as our settings; unsupported PEFT features are refused by name.
pub fn read_peft_config(dir: &Path) -> Result<LoraConfig, ModelError> {
    let path = dir.join("adapter_config.json");
    let err = |msg: String| ModelError::Config { path: path.clone(), msg };
    let src = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
    let v: Value = serde_json::from_str(&src).map_err(|e| err(e.to_string()))?;
    let field = |k: &str| v.get(k).filter(|x| !x.is_null());
    if field("peft_type").and_then(Value::as_str) != Some("LORA") {
        return Err(err("`peft_type` is not \"LORA\"".into()));
    }
    let unsupported = [
        ("use_dora", json!(false)),
        ("fan_in_fan_out", json!(false)),
        ("bias", json!("none")),
        ("lora_bias", json!(false)),
        ("use_qalora", json!(false)),
    ];
    for (k, ok) in unsupported {
        if field(k).is_some_and(|x| *x != ok) {
            return Err(err(format!("`{k}` = {} is not supported (only {ok})", v[k])));
        }
    }
    for k in ["rank_pattern", "alpha_pattern"] {
        if field(k).and_then(Value::as_object).is_some_and(|m| !m.is_empty()) {
            return Err(err(format!("`{k}` (per-layer ranks or alphas) is not supported")));
        }
    }
    let r = field("r").and_then(Value::as_u64).ok_or_else(|| err("`r` is missing or not an integer".into()))?;
    let alpha = field("lora_alpha").and_then(Value::as_f64).ok_or_else(|| err("`lora_alpha` is missing".into()))?;
    let target_modules = match field("target_modules") {
        Some(Value::String(s)) => LoraTargets::Regex(s.clone()),
        Some(Value::Array(a)) => LoraTargets::Names(a.iter().filter_map(|x| x.as_str().map(String::from)).collect()),
        _ => return Err(err("`target_modules` is missing".into())),
    };
    Ok(LoraConfig {
        r: r as usize,
        alpha,
        dropout: field("lora_dropout").and_then(Value::as_f64).unwrap_or(0.0),
        target_modules,
        use_rslora: field("use_rslora").and_then(Value::as_bool).unwrap_or(false),
    })
}

/// Load a PEFT folder's adapters onto `model` (base weights frozen, any existing adapters on those layers
/// replaced). Every tensor must belong to a language-model layer; the error names the ones that do not.
pub fn load_peft<B: Backend>(model: &mut QwenVl<B>, dir: &Path, device: &B::Device) -> Result<LoraConfig, ModelError> {
    let cfg = read_peft_config(dir)?;
    let path = dir.join("adapter_model.safetensors");
    let err = |msg: String| ModelError::Config { path: path.clone(), msg };
    if !path.is_file() && dir.join("adapter_model.bin").is_file() {
        return Err(err("only adapter_model.bin was found; save the adapter with safe_serialization".into()));
    }
    let bytes = std::fs::read(&path).map_err(|e| ModelError::io(&path, e))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| err(e.to_string()))?;
    let mut parts: BTreeMap<String, [Option<Tensor<B, 2>>; 2]> = BTreeMap::new();
    let mut unknown = Vec::new();
    for (key, view) in st.tensors() {
        let parsed = key
            .strip_suffix(".lora_A.weight")
            .map(|p| (p, 0))
            .or_else(|| key.strip_suffix(".lora_B.weight").map(|p| (p, 1)))
            .and_then(|(p, i)| layer_name(p).map(|n| (n, i)));
        // A tied head's saved embedding copy (`lm_head.base_layer.weight`) equals our base weight.
        if key.ends_with(".base_layer.weight") {
            continue;
        }
        let Some((name, which)) = parsed else {
            unknown.push(key);
            continue;
        };
        let dtype = match view.dtype() {
            safetensors::Dtype::F32 => DType::F32,
            safetensors::Dtype::F16 => DType::F16,
            safetensors::Dtype::BF16 => DType::BF16,
            other => return Err(err(format!("tensor `{key}` has dtype {other:?}"))),
        };
        let shape = view.shape().to_vec();
        if shape.len() != 2 {
            return Err(err(format!("tensor `{key}` has shape {shape:?}, not 2-D")));
        }
        let data = TensorData::from_bytes_vec(view.data().to_vec(), shape, dtype).convert::<f32>();
        // Transposed through the host, so that the weight is contiguous like a freshly initialised one (the
        // same kernels then run, and a resumed run repeats an uninterrupted one bit for bit).
        let t = Tensor::<B, 2>::from_data(Tensor::<B, 2>::from_data(data, device).transpose().into_data(), device);
        parts.entry(name).or_default()[which] = Some(t);
    }
    if !unknown.is_empty() {
        unknown.sort();
        return Err(err(format!(
            "tensors that are not LoRA weights of a language-model layer: {}",
            unknown.join(", ")
        )));
    }
    let mut adapters = Vec::new();
    for (name, [a, b]) in parts {
        let (Some(a), Some(b)) = (a, b) else {
            return Err(err(format!("layer `{name}` has only one of lora_A / lora_B")));
        };
        adapters.push((name, Lora::from_weights(a, b, cfg.scale(), cfg.dropout)));
    }
    if adapters.is_empty() {
        return Err(err("no LoRA tensors".into()));
    }
    *model = burn::module::Module::no_grad(model.clone());
    model.set_adapters(adapters)?;
    Ok(cfg)
}
