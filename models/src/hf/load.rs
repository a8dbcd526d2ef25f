//! Loading Hugging Face checkpoint folders into burn modules with burn-store: single or sharded
//! safetensors, legacy and current key layouts, bf16/f16/f32 weights cast to the run's float type.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use burn::module::Module;
use burn::store::{
    ChainAdapter, KeyRemapper, ModuleAdapter, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter, SafetensorsStore,
    TensorSnapshot,
};
use burn::tensor::DType;
use burn::tensor::backend::Backend;

use crate::ModelError;

/// Regex rewrites from checkpoint keys to our module paths (transformers >= 4.52 names, and our own
/// names for `nn.Sequential` indices).
pub const QWEN_KEY_MAP: [(&str, &str); 5] = [
    (r"^model\.language_model\.", "model."),
    (r"^model\.visual\.", "visual."),
    // Language-model Linear layers sit inside a LoRA-capable wrapper.
    (r"^(model\.layers\.\d+\.(?:self_attn|mlp)\.\w+_proj)\.(weight|bias)$", "$1.base.$2"),
    (r"merger\.mlp\.0\.", "merger.fc_in."),
    (r"merger\.mlp\.2\.", "merger.fc_out."),
];

/// Casts float tensors to the run's float type, turns Conv2d/Conv3d patch weights (`[d, C, (T,) P, P]`) into
/// the 2-D `[d, C*(T*)P*P]` layout of a Linear (before the PyTorch adapter transposes it), and 0-d scalars
/// (CLIP's `logit_scale`) into 1-element vectors.
#[derive(Clone)]
struct LayoutAdapter {
    dtype: DType,
}

impl ModuleAdapter for LayoutAdapter {
    fn adapt(&self, s: &TensorSnapshot) -> TensorSnapshot {
        let is_float = matches!(s.dtype, DType::F32 | DType::F16 | DType::BF16 | DType::F64);
        let conv = s.shape.len() >= 4;
        let scalar = s.shape.is_empty();
        if !is_float || (s.dtype == self.dtype && !conv && !scalar) {
            return s.clone();
        }
        let shape: Vec<usize> = if conv {
            vec![s.shape[0], s.shape.iter().skip(1).product()]
        } else if scalar {
            vec![1]
        } else {
            s.shape.to_vec()
        };
        relayout(s, self.dtype, shape)
    }

    fn clone_box(&self) -> Box<dyn ModuleAdapter> {
        Box::new(self.clone())
    }
}

/// `s` with its data cast to `dtype` and reshaped to `shape` (same element count), lazily, keeping its path.
pub(crate) fn relayout(s: &TensorSnapshot, dtype: DType, shape: Vec<usize>) -> TensorSnapshot {
    let inner = s.clone_data_fn();
    let target = shape.clone();
    let data = Rc::new(move || {
        let d = inner()?.convert_dtype(dtype);
        Ok(burn::tensor::TensorData { shape: target.clone().into(), ..d })
    });
    TensorSnapshot::from_closure(
        data,
        dtype,
        shape.into(),
        s.path_stack.clone().unwrap_or_default(),
        s.container_stack.clone().unwrap_or_default(),
        s.tensor_id.unwrap_or_default(),
    )
}

/// A module path as the checkpoint spells it (without the LoRA wrapper's `base` level), for error messages.
fn checkpoint_name(path: &str) -> String {
    path.replace("_proj.base.", "_proj.")
}

/// The safetensors files of a checkpoint folder: `model.safetensors`, or the shards named by
/// `model.safetensors.index.json`.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, ModelError> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    let src = std::fs::read_to_string(&index).map_err(|_| ModelError::Config {
        path: dir.into(),
        msg: "no model.safetensors and no model.safetensors.index.json".into(),
    })?;
    let v: serde_json::Value =
        serde_json::from_str(&src).map_err(|e| ModelError::Config { path: index.clone(), msg: e.to_string() })?;
    let map = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| ModelError::Config { path: index.clone(), msg: "`weight_map` is missing".into() })?;
    let files: BTreeSet<&str> = map.values().filter_map(|f| f.as_str()).collect();
    Ok(files.into_iter().map(|f| dir.join(f)).collect())
}

/// Load every tensor of the checkpoint in `dir` into `module`, renaming keys with `key_map`. Keys matching
/// `ignore` (e.g. a tied `lm_head.weight`) may be present without a place in the module. Every missing,
/// unexpected or misshaped tensor is listed in one error.
pub fn load_weights<B: Backend, M: Module<B> + ModuleSnapshot<B>>(
    module: &mut M,
    dir: &Path,
    key_map: &[(&str, &str)],
    ignore: &[&str],
) -> Result<(), ModelError> {
    let files = weight_files(dir)?;
    let dtype = burn::tensor::Tensor::<B, 1>::zeros([1], &Default::default()).dtype();
    let mut applied = BTreeSet::new();
    let mut missing: Option<BTreeSet<String>> = None;
    let mut problems = Vec::new();
    for f in &files {
        if !f.is_file() {
            return Err(ModelError::Config { path: f.clone(), msg: "weight shard is missing".into() });
        }
        let mut remap = KeyRemapper::new();
        for (from, to) in key_map {
            remap = remap
                .add_pattern(*from, *to)
                .map_err(|e| ModelError::Config { path: f.clone(), msg: format!("key pattern {from}: {e}") })?;
        }
        let adapter = ChainAdapter::new(LayoutAdapter { dtype }, PyTorchToBurnAdapter);
        let mut store = SafetensorsStore::from_file(f.clone())
            .remap(remap)
            .with_from_adapter(adapter)
            .allow_partial(true)
            .validate(false);
        let result = store
            .apply_to::<B, M>(module)
            .map_err(|e| ModelError::Config { path: f.clone(), msg: format!("reading safetensors: {e}") })?;
        applied.extend(result.applied.iter().cloned());
        let here: BTreeSet<String> = result.missing.iter().map(|(p, _)| p.clone()).collect();
        missing = Some(match missing {
            None => here,
            Some(m) => m.intersection(&here).cloned().collect(),
        });
        for u in &result.unused {
            if !ignore.iter().any(|i| u == i) {
                problems.push(format!("  unexpected tensor `{}` in {}", checkpoint_name(u), f.display()));
            }
        }
        problems.extend(result.errors.iter().map(|e| format!("  {}", checkpoint_name(&e.to_string()))));
    }
    for m in missing.unwrap_or_default() {
        if !applied.contains(&m) {
            problems.push(format!("  missing tensor `{}`", checkpoint_name(&m)));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ModelError::Weights { path: dir.into(), report: problems.join("\n") })
    }
}
