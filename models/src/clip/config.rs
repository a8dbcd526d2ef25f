//! `config.json` of a Hugging Face CLIP checkpoint (text and vision towers, projection width).

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::ModelError;

/// One tower's hyper-parameters (`text_config` / `vision_config`).
#[derive(Clone, Debug, Deserialize)]
pub struct TowerConfig {
    /// Width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Layers.
    pub num_hidden_layers: usize,
    /// Heads.
    pub num_attention_heads: usize,
    /// LayerNorm epsilon.
    #[serde(default = "eps")]
    pub layer_norm_eps: f64,
    /// `quick_gelu` (OpenAI CLIP) or `gelu`.
    #[serde(default = "act")]
    pub hidden_act: String,
    /// Text: vocabulary size.
    #[serde(default)]
    pub vocab_size: usize,
    /// Text: positions.
    #[serde(default)]
    pub max_position_embeddings: usize,
    /// Text: end-of-text id (the pooled position).
    #[serde(default)]
    pub eos_token_id: Option<i64>,
    /// Vision: input side.
    #[serde(default)]
    pub image_size: usize,
    /// Vision: patch side.
    #[serde(default)]
    pub patch_size: usize,
    /// Vision: channels.
    #[serde(default = "three")]
    pub num_channels: usize,
}

fn eps() -> f64 {
    1e-5
}
fn act() -> String {
    "quick_gelu".into()
}
fn three() -> usize {
    3
}

/// `config.json` of a CLIP checkpoint.
#[derive(Clone, Debug)]
pub struct ClipConfig {
    /// Text tower.
    pub text: TowerConfig,
    /// Vision tower.
    pub vision: TowerConfig,
    /// Embedding width.
    pub projection_dim: usize,
}

impl ClipConfig {
    /// Read `config.json` from a checkpoint folder.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let path = dir.join("config.json");
        let src = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
        let err = |msg: String| ModelError::Config { path: path.clone(), msg };
        let v: Value = serde_json::from_str(&src).map_err(|e| err(e.to_string()))?;
        let mt = v.get("model_type").and_then(Value::as_str).unwrap_or_default();
        if mt != "clip" {
            return Err(err(format!("unsupported model_type `{mt}` for a CLIP encoder (expected clip)")));
        }
        let tower = |k: &str| -> Result<TowerConfig, ModelError> {
            let t = v.get(k).cloned().ok_or_else(|| err(format!("`{k}` is missing")))?;
            serde_json::from_value(t).map_err(|e| err(format!("{k}: {e}")))
        };
        let projection_dim = v.get("projection_dim").and_then(Value::as_u64).unwrap_or(512) as usize;
        Ok(ClipConfig { text: tower("text_config")?, vision: tower("vision_config")?, projection_dim })
    }
}
