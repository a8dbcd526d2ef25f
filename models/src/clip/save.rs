//! Writing a CLIP model as a Hugging Face folder (config.json, model.safetensors, preprocessor_config.json,
//! tokenizer.json) that repic and transformers' `CLIPModel` load: how the demo keeps the retrieval encoder it
//! trains.

use std::path::Path;

use burn::tensor::backend::Backend;
use serde_json::json;
use tokenizers::processors::template::TemplateProcessing;

use super::{Clip, ClipConfig, ClipProcessor, TowerConfig};
use crate::ModelError;
use crate::hf::save::{save_weights, write_dir_atomically};

fn tower_json(t: &TowerConfig, kind: &str) -> serde_json::Value {
    let mut v = json!({
        "model_type": kind, "hidden_size": t.hidden_size, "intermediate_size": t.intermediate_size,
        "num_hidden_layers": t.num_hidden_layers, "num_attention_heads": t.num_attention_heads,
        "layer_norm_eps": t.layer_norm_eps, "hidden_act": t.hidden_act,
    });
    if kind == "clip_text_model" {
        v["vocab_size"] = t.vocab_size.into();
        v["max_position_embeddings"] = t.max_position_embeddings.into();
        v["eos_token_id"] = t.eos_token_id.into();
    } else {
        v["image_size"] = t.image_size.into();
        v["patch_size"] = t.patch_size.into();
        v["num_channels"] = t.num_channels.into();
    }
    v
}

impl ClipConfig {
    /// The config as transformers writes it for `CLIPModel`.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": self.projection_dim,
            "text_config": tower_json(&self.text, "clip_text_model"),
            "vision_config": tower_json(&self.vision, "clip_vision_model"),
        })
    }
}

impl ClipProcessor {
    /// `preprocessor_config.json` as transformers writes it for `CLIPImageProcessor` (bicubic resize of the
    /// shortest side, centre crop, rescale, normalise).
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "image_processor_type": "CLIPImageProcessor", "do_resize": true, "do_center_crop": true,
            "do_rescale": true, "do_normalize": true, "do_convert_rgb": true, "resample": 3,
            "rescale_factor": 1.0 / 255.0, "size": {"shortest_edge": self.size.shortest_edge},
            "crop_size": {"height": self.crop_size.height, "width": self.crop_size.width},
            "image_mean": self.image_mean, "image_std": self.image_std,
        })
    }
}

/// Write `model` with `processor` and the tokenizer file `tokenizer` into the folder `out` (made atomically;
/// replaced only when `overwrite`). When `bounds` names a start and an end token, the written tokenizer wraps
/// every text in them (CLIP's text tower pools at the end token).
pub fn save_clip<B: Backend>(
    model: &Clip<B>,
    processor: &ClipProcessor,
    tokenizer: &Path,
    bounds: Option<(&str, &str)>,
    out: &Path,
    overwrite: bool,
) -> Result<(), ModelError> {
    let tok_err = |e: tokenizers::Error| ModelError::Tokenizer(format!("{}: {e}", tokenizer.display()));
    let mut tok = tokenizers::Tokenizer::from_file(tokenizer).map_err(tok_err)?;
    if let Some((bos, eos)) = bounds {
        let id = |t: &str| {
            tok.token_to_id(t).ok_or_else(|| ModelError::Tokenizer(format!("{}: no token {t}", tokenizer.display())))
        };
        let post = TemplateProcessing::builder()
            .try_single(format!("{bos} $A {eos}"))
            .and_then(|b| b.try_pair(format!("{bos} $A {eos} $B {eos}")))
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?
            .special_tokens(vec![(bos.to_string(), id(bos)?), (eos.to_string(), id(eos)?)])
            .build()
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        tok.with_post_processor(Some(post));
    }
    let mut config = model.config().to_json();
    if let Some((bos, _)) = bounds {
        // transformers checks the text tower's start token against the vocabulary (its default is CLIP's 49406).
        config["text_config"]["bos_token_id"] = tok.token_to_id(bos).into();
    }
    write_dir_atomically(out, overwrite, |stage| {
        let cfg = model.config();
        let write = |name: &str, v: &serde_json::Value| {
            let p = stage.join(name);
            let text = serde_json::to_string_pretty(v).expect("JSON values serialize");
            std::fs::write(&p, text).map_err(|e| ModelError::io(&p, e))
        };
        write("config.json", &config)?;
        write("preprocessor_config.json", &processor.to_json())?;
        let p = stage.join("tokenizer.json");
        tok.save(&p, true).map_err(|e| ModelError::Tokenizer(format!("{}: {e}", p.display())))?;
        let v = &cfg.vision;
        let shapes = vec![
            (
                "vision_model.embeddings.patch_embedding.weight".to_string(),
                vec![v.hidden_size, v.num_channels, v.patch_size, v.patch_size],
            ),
            ("logit_scale".to_string(), vec![]),
        ];
        save_weights(model, &stage.join("model.safetensors"), &[], shapes)
    })
}
