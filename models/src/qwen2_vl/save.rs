//! Saving a Qwen2-VL / Qwen2.5-VL model as a Hugging Face checkpoint folder (safetensors in the PyTorch layout,
//! plus the source folder's config, tokenizer and processor files), written atomically.

use std::path::Path;

use burn::tensor::backend::Backend;

use super::QwenVl;
use crate::ModelError;
use crate::hf::save::{save_weights, write_dir_atomically};

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

/// Write `model` as a Hugging Face checkpoint folder `out` (replaced only if `overwrite`), copying config,
/// tokenizer and processor files from `source` (the folder it was loaded from). transformers loads the result.
pub fn save_qwen_vl<B: Backend>(
    model: &QwenVl<B>,
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
        let v = &model.config().vision;
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
        if model.head_untied() {
            untie_config(&stage.join("config.json"))?;
        }
        Ok(())
    })
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
