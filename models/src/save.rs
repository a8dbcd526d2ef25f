//! Saving models as Hugging Face checkpoint folders (safetensors in the PyTorch layout, plus the source
//! folder's config, tokenizer and processor files), written into a staging folder and renamed into place.

use std::path::Path;

use burn::module::Module;
use burn::store::{
    BurnToPyTorchAdapter, ChainAdapter, KeyRemapper, ModuleAdapter, ModuleSnapshot, ModuleStore, SafetensorsStore,
    TensorSnapshot,
};
use burn::tensor::backend::Backend;

use crate::{ModelError, QwenVl, QwenVlConfig};

/// Files copied from the source checkpoint when present.
const SIDE_FILES: [&str; 12] = [
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
    "preprocessor_config.json",
    "video_preprocessor_config.json",
];

/// Gives tensors at the listed paths their checkpoint shape (Linear-held conv weights, 1-element scalars).
#[derive(Clone)]
struct ShapeAdapter {
    shapes: Vec<(String, Vec<usize>)>,
}

impl ModuleAdapter for ShapeAdapter {
    fn adapt(&self, s: &TensorSnapshot) -> TensorSnapshot {
        let path = s.full_path();
        match self.shapes.iter().find(|(p, _)| *p == path) {
            Some((_, shape)) => crate::load::relayout(s, s.dtype, shape.clone()),
            None => s.clone(),
        }
    }

    fn clone_box(&self) -> Box<dyn ModuleAdapter> {
        Box::new(self.clone())
    }
}

/// Write `module`'s tensors to `file` in PyTorch layout, renaming keys with `key_map` (regex, replacement)
/// and reshaping the tensors in `shapes`.
pub fn save_weights<B: Backend, M: Module<B> + ModuleSnapshot<B>>(
    module: &M,
    file: &Path,
    key_map: &[(&str, &str)],
    shapes: Vec<(String, Vec<usize>)>,
) -> Result<(), ModelError> {
    let err = |msg: String| ModelError::Config { path: file.into(), msg };
    let mut remap = KeyRemapper::new();
    for (from, to) in key_map {
        remap = remap.add_pattern(*from, *to).map_err(|e| err(format!("key pattern {from}: {e}")))?;
    }
    let adapter = ChainAdapter::new(BurnToPyTorchAdapter, ShapeAdapter { shapes });
    // transformers refuses safetensors files whose `format` metadata is not `pt`.
    let mut store = SafetensorsStore::from_file(file.to_path_buf())
        .with_to_adapter(adapter)
        .remap(remap)
        .metadata("format", "pt")
        .overwrite(true);
    store.collect_from::<B, M>(module).map_err(|e| err(format!("writing safetensors: {e}")))
}

/// Write `model` as a Hugging Face checkpoint folder `out` (replaced only if `overwrite`), copying config,
/// tokenizer and processor files from `source` (the folder it was loaded from). transformers loads the result.
pub fn save_qwen_vl<B: Backend>(
    model: &QwenVl<B>,
    cfg: &QwenVlConfig,
    source: &Path,
    out: &Path,
    overwrite: bool,
) -> Result<(), ModelError> {
    if model.has_lora() {
        return Err(ModelError::Input(
            "the model has LoRA adapters: save them with save_peft, or export merged weights after \
             merge_and_unload"
                .into(),
        ));
    }
    write_dir_atomically(out, overwrite, |stage| {
        let v = &cfg.vision;
        let patch = vec![v.embed_dim, v.in_chans, v.temporal_patch_size, v.patch_size, v.patch_size];
        let key_map = [
            (r"merger\.fc_in\.", "merger.mlp.0."),
            (r"merger\.fc_out\.", "merger.mlp.2."),
            (r"_proj\.base\.", "_proj."),
        ];
        let shapes = vec![("visual.patch_embed.proj.weight".to_string(), patch)];
        save_weights(model, &stage.join("model.safetensors"), &key_map, shapes)?;
        for f in SIDE_FILES {
            let src = source.join(f);
            if src.is_file() {
                std::fs::copy(&src, stage.join(f)).map_err(|e| ModelError::io(&src, e))?;
            }
        }
        if model.head_untied(cfg) {
            untie_config(&stage.join("config.json"))?;
        }
        Ok(())
    })
}

/// Fill a staging folder next to `out` with `fill`, then rename it to `out` (replacing an existing `out` only
/// when `overwrite`): a reader never sees a half-written folder.
pub fn write_dir_atomically<E: From<ModelError>>(
    out: &Path,
    overwrite: bool,
    fill: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    if out.exists() && !overwrite {
        return Err(ModelError::Config { path: out.into(), msg: "already exists".into() }.into());
    }
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let io = |p: &Path, e| E::from(ModelError::io(p, e));
    std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
    let stage = tempfile::Builder::new().prefix(".repic-save-").tempdir_in(parent).map_err(|e| io(parent, e))?;
    fill(stage.path())?;
    let staged = stage.keep();
    if out.exists() {
        let old = staged.with_extension("old");
        std::fs::rename(out, &old).map_err(|e| io(out, e))?;
        std::fs::rename(&staged, out).map_err(|e| io(out, e))?;
        std::fs::remove_dir_all(&old).map_err(|e| io(&old, e))?;
    } else {
        std::fs::rename(&staged, out).map_err(|e| io(out, e))?;
    }
    Ok(())
}

/// Set `tie_word_embeddings: false` in a copied config.json (top level and `text_config`): the head was given
/// its own weight by merging an adapter.
fn untie_config(path: &Path) -> Result<(), ModelError> {
    let err = |msg: String| ModelError::Config { path: path.into(), msg };
    let src = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    let mut v: serde_json::Value = serde_json::from_str(&src).map_err(|e| err(e.to_string()))?;
    v["tie_word_embeddings"] = false.into();
    if let Some(t) = v.get_mut("text_config").filter(|t| t.is_object()) {
        t["tie_word_embeddings"] = false.into();
    }
    let text = serde_json::to_string_pretty(&v).map_err(|e| err(e.to_string()))?;
    std::fs::write(path, text).map_err(|e| ModelError::io(path, e))
}
