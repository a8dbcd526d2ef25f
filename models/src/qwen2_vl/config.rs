//! `config.json` of Qwen2-VL / Qwen2.5-VL checkpoints, in the flat form and the nested
//! `text_config` / `vision_config` form that newer transformers versions write.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::ModelError;

/// Which architecture a checkpoint is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// Qwen2-VL: LayerNorm + QuickGELU vision blocks, full attention per image.
    Qwen2Vl,
    /// Qwen2.5-VL: RMSNorm + SwiGLU vision blocks, window attention with full-attention blocks.
    Qwen25Vl,
}

/// Language-model hyper-parameters.
#[derive(Clone, Debug, Deserialize)]
pub struct TextConfig {
    /// Vocabulary size (rows of the embedding).
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (GQA).
    pub num_key_value_heads: usize,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// RoPE base.
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    /// Whether `lm_head` shares the embedding matrix.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// M-RoPE split of the rotary half-dimensions among (temporal, height, width).
    #[serde(skip)]
    pub mrope_section: Vec<usize>,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_theta() -> f64 {
    1_000_000.0
}

impl TextConfig {
    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

/// Vision-tower hyper-parameters (both architectures).
#[derive(Clone, Debug)]
pub struct VisionConfig {
    /// Blocks.
    pub depth: usize,
    /// Width of the vision transformer.
    pub embed_dim: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Output width of the patch merger (the LM width).
    pub out_hidden_size: usize,
    /// Input channels.
    pub in_chans: usize,
    /// Patch side in pixels.
    pub patch_size: usize,
    /// Frames per temporal patch.
    pub temporal_patch_size: usize,
    /// Side of the merge window in patches.
    pub spatial_merge_size: usize,
    /// Window side in pixels (Qwen2.5-VL).
    pub window_size: usize,
    /// Blocks with full attention (Qwen2.5-VL; all blocks for Qwen2-VL).
    pub fullatt_block_indexes: Vec<usize>,
    /// MLP activation (`hidden_act`): index into [`ACTIVATIONS`].
    pub act: usize,
    /// Base of the 2-D rotary embedding: transformers 5's `vision_config.rope_parameters.rope_theta` (its
    /// `rope_type` must be `axial`), 10000 when absent (fixed in transformers 4).
    pub rope_theta: f64,
}

/// Activations the vision MLP supports, by their transformers names.
pub const ACTIVATIONS: [&str; 5] = ["quick_gelu", "silu", "gelu", "gelu_pytorch_tanh", "swish"];

/// Special token ids the model needs.
#[derive(Clone, Debug)]
pub struct TokenIds {
    /// `<|image_pad|>`.
    pub image: u32,
    /// `<|vision_start|>`.
    pub vision_start: u32,
    /// `<|vision_end|>`.
    pub vision_end: u32,
    /// End-of-sequence tokens.
    pub eos: Vec<u32>,
}

/// The whole model configuration.
#[derive(Clone, Debug)]
pub struct QwenVlConfig {
    /// Architecture.
    pub arch: Arch,
    /// Language model.
    pub text: TextConfig,
    /// Vision tower.
    pub vision: VisionConfig,
    /// Special tokens.
    pub tokens: TokenIds,
}

fn err(path: &Path, msg: impl Into<String>) -> ModelError {
    ModelError::Config { path: path.into(), msg: msg.into() }
}

fn get_usize(v: &Value, key: &str, path: &Path, section: &str) -> Result<usize, ModelError> {
    v.get(key)
        .and_then(Value::as_u64)
        .map(|x| x as usize)
        .ok_or_else(|| err(path, format!("`{section}{key}` is missing or not a non-negative integer")))
}

/// Token ids from a JSON number or list (`eos_token_id` takes both forms).
pub(crate) fn token_ids(v: Option<&Value>) -> Vec<u32> {
    match v {
        Some(Value::Number(n)) => n.as_u64().map(|x| vec![x as u32]).unwrap_or_default(),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_u64).map(|x| x as u32).collect(),
        _ => Vec::new(),
    }
}

impl QwenVlConfig {
    /// Read `config.json` from a checkpoint folder.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let path = dir.join("config.json");
        let src = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
        let v: Value = serde_json::from_str(&src).map_err(|e| err(&path, e.to_string()))?;
        Self::from_value(&v, &path)
    }

    /// Parse a config value; `path` names the file in errors.
    pub fn from_value(v: &Value, path: &Path) -> Result<Self, ModelError> {
        let model_type = v.get("model_type").and_then(Value::as_str).unwrap_or_default();
        let arch = match model_type {
            "qwen2_vl" => Arch::Qwen2Vl,
            "qwen2_5_vl" => Arch::Qwen25Vl,
            other => {
                let archs = v.get("architectures").map(Value::to_string).unwrap_or_default();
                return Err(err(
                    path,
                    format!("unsupported model_type `{other}` {archs} (supported: qwen2_vl, qwen2_5_vl)"),
                ));
            }
        };
        // Nested form: text fields under `text_config`; flat form: at the top. Top-level values fill gaps.
        let mut text_v = v.clone();
        if let (Some(Value::Object(top)), Some(Value::Object(nested))) = (Some(v), v.get("text_config")) {
            let mut merged = top.clone();
            merged.extend(nested.clone());
            text_v = Value::Object(merged);
        }
        let mut text: TextConfig =
            serde_json::from_value(text_v.clone()).map_err(|e| err(path, format!("text config: {e}")))?;
        for (name, value) in [
            ("hidden_size", text.hidden_size),
            ("num_attention_heads", text.num_attention_heads),
            ("num_key_value_heads", text.num_key_value_heads),
            ("num_hidden_layers", text.num_hidden_layers),
            ("vocab_size", text.vocab_size),
            ("intermediate_size", text.intermediate_size),
        ] {
            if value == 0 {
                return Err(err(path, format!("`{name}` must be at least 1")));
            }
        }
        if text_v.get("use_sliding_window").and_then(Value::as_bool) == Some(true) {
            return Err(err(path, "`use_sliding_window: true` is not supported (sliding-window attention)"));
        }
        // Rotary settings: transformers 5 writes `rope_parameters` (with `rope_theta` inside), older versions
        // `rope_scaling` and a separate `rope_theta`. When both are present, `rope_parameters` wins, and its
        // `rope_theta` wins over the separate one.
        let rope = text_v.get("rope_parameters").or_else(|| text_v.get("rope_scaling"));
        if let Some(theta) = rope.and_then(|r| r.get("rope_theta")) {
            text.rope_theta =
                theta.as_f64().ok_or_else(|| err(path, "`rope_parameters.rope_theta` is not a number"))?;
        }
        if !(text.rope_theta.is_finite() && text.rope_theta > 1.0) {
            return Err(err(path, format!("`rope_theta` = {} must be a finite number > 1", text.rope_theta)));
        }
        let kind = rope.and_then(|r| r.get("rope_type").or_else(|| r.get("type"))).and_then(Value::as_str);
        if let Some(kind) = kind.filter(|k| !matches!(*k, "default" | "mrope")) {
            return Err(err(path, format!("rope type `{kind}` is not supported (default and mrope are)")));
        }
        text.mrope_section = rope
            .and_then(|r| r.get("mrope_section"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_u64).map(|x| x as usize).collect())
            .ok_or_else(|| err(path, "`rope_scaling.mrope_section` is missing"))?;
        let half = text.head_dim() / 2;
        if text.mrope_section.len() != 3 || text.mrope_section.iter().sum::<usize>() != half {
            return Err(err(path, format!("`mrope_section` must be 3 numbers summing to head_dim / 2 = {half}")));
        }
        if !text.hidden_size.is_multiple_of(text.num_attention_heads)
            || !text.num_attention_heads.is_multiple_of(text.num_key_value_heads)
        {
            return Err(err(path, "hidden_size / heads / key-value heads do not divide evenly"));
        }
        let vv = v.get("vision_config").ok_or_else(|| err(path, "`vision_config` is missing"))?;
        let s = "vision_config.";
        let depth = get_usize(vv, "depth", path, s)?;
        let (embed_dim, intermediate_size, out_hidden_size, fullatt, window) = match arch {
            Arch::Qwen2Vl => {
                let embed = get_usize(vv, "embed_dim", path, s)?;
                let ratio = vv.get("mlp_ratio").and_then(Value::as_f64).unwrap_or(4.0);
                let out = vv.get("hidden_size").and_then(Value::as_u64).map_or(text.hidden_size, |x| x as usize);
                (embed, (embed as f64 * ratio) as usize, out, (0..depth).collect(), 0)
            }
            Arch::Qwen25Vl => {
                let full: Vec<usize> = vv
                    .get("fullatt_block_indexes")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_u64).map(|x| x as usize).collect())
                    .unwrap_or_default();
                (
                    get_usize(vv, "hidden_size", path, s)?,
                    get_usize(vv, "intermediate_size", path, s)?,
                    get_usize(vv, "out_hidden_size", path, s)?,
                    full,
                    get_usize(vv, "window_size", path, s)?,
                )
            }
        };
        let num_heads = get_usize(vv, "num_heads", path, s)?;
        if !embed_dim.is_multiple_of(num_heads) || !(embed_dim / num_heads).is_multiple_of(4) {
            return Err(err(path, "vision embed_dim / num_heads must be a multiple of 4"));
        }
        let or = |k: &str, d: usize| vv.get(k).and_then(Value::as_u64).map_or(d, |x| x as usize);
        let default_act = if arch == Arch::Qwen2Vl { "quick_gelu" } else { "silu" };
        let act_name = vv.get("hidden_act").and_then(Value::as_str).unwrap_or(default_act);
        let act = ACTIVATIONS.iter().position(|a| *a == act_name).ok_or_else(|| {
            err(
                path,
                format!("`vision_config.hidden_act` = `{act_name}` is not supported ({})", ACTIVATIONS.join(", ")),
            )
        })?;
        let vrope = vv.get("rope_parameters");
        let rope_theta = match vrope.and_then(|r| r.get("rope_theta")) {
            None => 10_000.0,
            Some(t) => {
                t.as_f64().ok_or_else(|| err(path, "`vision_config.rope_parameters.rope_theta` is not a number"))?
            }
        };
        if !(rope_theta.is_finite() && rope_theta > 1.0) {
            return Err(err(path, format!("`vision_config` rope_theta = {rope_theta} must be a finite number > 1")));
        }
        let vkind = vrope.and_then(|r| r.get("rope_type").or_else(|| r.get("type"))).and_then(Value::as_str);
        if let Some(kind) = vkind.filter(|k| *k != "axial") {
            return Err(err(
                path,
                format!("vision rope type `{kind}` is not supported (axial is, as in transformers)"),
            ));
        }
        let vision = VisionConfig {
            depth,
            embed_dim,
            num_heads,
            intermediate_size,
            out_hidden_size,
            in_chans: or("in_chans", or("in_channels", 3)),
            patch_size: or("patch_size", or("spatial_patch_size", 14)),
            temporal_patch_size: or("temporal_patch_size", 2),
            spatial_merge_size: or("spatial_merge_size", 2),
            window_size: window,
            fullatt_block_indexes: fullatt,
            act,
            rope_theta,
        };
        let tok = |k: &str, d: u32| v.get(k).and_then(Value::as_u64).map_or(d, |x| x as u32);
        let mut eos = token_ids(v.get("eos_token_id"));
        if eos.is_empty() {
            eos = token_ids(text_v.get("eos_token_id"));
        }
        let tokens = TokenIds {
            image: tok("image_token_id", 151_655),
            vision_start: tok("vision_start_token_id", 151_652),
            vision_end: tok("vision_end_token_id", 151_653),
            eos,
        };
        let vocab = text.vocab_size as u64;
        let named = [("image_token_id", tokens.image), ("vision_start_token_id", tokens.vision_start)];
        for (name, id) in named.into_iter().chain(tokens.eos.iter().map(|&id| ("eos_token_id", id))) {
            if u64::from(id) >= vocab {
                return Err(err(path, format!("`{name}` = {id} is outside the {vocab}-token vocabulary")));
            }
        }
        Ok(QwenVlConfig { arch, text, vision, tokens })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flat config.json of Qwen2-VL-2B-Instruct as the Hub ships it.
    const QWEN2_VL_2B: &str = r#"{"architectures": ["Qwen2VLForConditionalGeneration"], "attention_dropout": 0.0,
        "bos_token_id": 151643, "eos_token_id": 151645, "vision_start_token_id": 151652, "vision_end_token_id": 151653,
        "vision_token_id": 151654, "image_token_id": 151655, "video_token_id": 151656, "hidden_act": "silu",
        "hidden_size": 1536, "initializer_range": 0.02, "intermediate_size": 8960, "max_position_embeddings": 32768,
        "max_window_layers": 28, "model_type": "qwen2_vl", "num_attention_heads": 12, "num_hidden_layers": 28,
        "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768,
        "tie_word_embeddings": true, "torch_dtype": "bfloat16", "use_cache": true, "use_sliding_window": false,
        "vision_config": {"depth": 32, "embed_dim": 1280, "mlp_ratio": 4, "num_heads": 16, "in_chans": 3,
            "hidden_size": 1536, "patch_size": 14, "spatial_merge_size": 2, "spatial_patch_size": 14,
            "temporal_patch_size": 2},
        "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]}, "vocab_size": 151936}"#;

    /// The flat config.json of Qwen2.5-VL-7B-Instruct (RePIC's base model) as the Hub ships it.
    const QWEN25_VL_7B: &str = r#"{"architectures": ["Qwen2_5_VLForConditionalGeneration"], "attention_dropout": 0.0,
        "bos_token_id": 151643, "eos_token_id": 151645, "vision_start_token_id": 151652, "vision_end_token_id": 151653,
        "vision_token_id": 151654, "image_token_id": 151655, "video_token_id": 151656, "hidden_act": "silu",
        "hidden_size": 3584, "initializer_range": 0.02, "intermediate_size": 18944, "max_position_embeddings": 128000,
        "max_window_layers": 28, "model_type": "qwen2_5_vl", "num_attention_heads": 28, "num_hidden_layers": 28,
        "num_key_value_heads": 4, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768,
        "tie_word_embeddings": false, "torch_dtype": "bfloat16", "use_cache": true, "use_sliding_window": false,
        "vision_config": {"depth": 32, "hidden_act": "silu", "hidden_size": 1280, "intermediate_size": 3420,
            "num_heads": 16, "in_chans": 3, "out_hidden_size": 3584, "patch_size": 14, "spatial_merge_size": 2,
            "spatial_patch_size": 14, "window_size": 112, "fullatt_block_indexes": [7, 15, 23, 31],
            "tokens_per_second": 2, "temporal_patch_size": 2},
        "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]}, "vocab_size": 152064}"#;

    fn parse(src: &str) -> Result<QwenVlConfig, ModelError> {
        QwenVlConfig::from_value(&serde_json::from_str(src).unwrap(), Path::new("config.json"))
    }

    #[test]
    fn hub_configs_of_the_real_models_parse() {
        let c = parse(QWEN2_VL_2B).unwrap();
        assert_eq!(c.arch, Arch::Qwen2Vl);
        assert_eq!((c.text.head_dim(), c.text.num_key_value_heads, c.text.tie_word_embeddings), (128, 2, true));
        assert_eq!((c.vision.embed_dim, c.vision.intermediate_size, c.vision.out_hidden_size), (1280, 5120, 1536));
        assert_eq!(c.vision.fullatt_block_indexes.len(), 32);
        assert_eq!(ACTIVATIONS[c.vision.act], "quick_gelu");
        assert_eq!((c.tokens.image, c.tokens.eos.as_slice()), (151_655, &[151_645][..]));

        let c = parse(QWEN25_VL_7B).unwrap();
        assert_eq!(c.arch, Arch::Qwen25Vl);
        assert_eq!((c.text.head_dim(), c.text.num_key_value_heads, c.text.tie_word_embeddings), (128, 4, false));
        assert_eq!((c.vision.embed_dim, c.vision.intermediate_size, c.vision.out_hidden_size), (1280, 3420, 3584));
        assert_eq!((c.vision.window_size, c.vision.fullatt_block_indexes.as_slice()), (112, &[7, 15, 23, 31][..]));
        assert_eq!(ACTIVATIONS[c.vision.act], "silu");
        assert_eq!(c.text.mrope_section, [16, 24, 24]);
    }

    #[test]
    fn bad_configs_name_the_field() {
        let e = parse(&QWEN25_VL_7B.replace("[16, 24, 24]", "[16, 24, 20]")).unwrap_err().to_string();
        assert!(e.contains("mrope_section"), "{e}");
        let e =
            parse(&QWEN25_VL_7B.replace(
                r#""hidden_act": "silu", "hidden_size": 1280"#,
                r#""hidden_act": "relu6", "hidden_size": 1280"#,
            ));
        assert!(e.unwrap_err().to_string().contains("vision_config.hidden_act"));
        let e = parse(&QWEN2_VL_2B.replace(r#""depth": 32, "#, "")).unwrap_err().to_string();
        assert!(e.contains("vision_config.depth"), "{e}");
        let e = parse(&QWEN2_VL_2B.replace(r#""num_hidden_layers": 28,"#, "")).unwrap_err().to_string();
        assert!(e.contains("num_hidden_layers"), "{e}");
        // Zero heads was a division by zero; a sliding window or another rope type would be silently wrong.
        let e = parse(&QWEN2_VL_2B.replace(r#""num_attention_heads": 12"#, r#""num_attention_heads": 0"#));
        assert!(e.unwrap_err().to_string().contains("`num_attention_heads` must be at least 1"));
        let e = parse(&QWEN2_VL_2B.replace(r#""use_sliding_window": false"#, r#""use_sliding_window": true"#));
        assert!(e.unwrap_err().to_string().contains("use_sliding_window"));
        let e = parse(&QWEN2_VL_2B.replace(r#""type": "mrope""#, r#""type": "yarn""#)).unwrap_err().to_string();
        assert!(e.contains("rope type `yarn`"), "{e}");
        let e = parse(&QWEN2_VL_2B.replace(r#""image_token_id": 151655"#, r#""image_token_id": 999999"#));
        assert!(
            e.unwrap_err().to_string().contains("`image_token_id` = 999999 is outside the 151936-token vocabulary")
        );
        let e = parse(&QWEN2_VL_2B.replace(r#""rope_theta": 1000000.0"#, r#""rope_theta": -1"#)).unwrap_err();
        assert!(e.to_string().contains("rope_theta"), "{e}");
    }

    #[test]
    fn transformers_5_rope_parameters_and_their_precedence() {
        // transformers 5: no top-level rope_theta or rope_scaling; both inside text_config.rope_parameters.
        let v5 = QWEN2_VL_2B.replace(r#""rope_theta": 1000000.0, "#, "").replace(
            r#""rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]}"#,
            r#""text_config": {"rope_parameters": {"rope_theta": 10000.0, "mrope_section": [16, 24, 24],
                "rope_type": "default"}}"#,
        );
        let c = parse(&v5).unwrap();
        assert_eq!((c.text.rope_theta, c.text.mrope_section.as_slice()), (10_000.0, &[16, 24, 24][..]));
        // A layout mix: rope_parameters' theta wins over a disagreeing top-level rope_theta, and its section over
        // rope_scaling's.
        let mixed = QWEN2_VL_2B.replace(
            r#""vocab_size": 151936"#,
            r#""vocab_size": 151936, "rope_parameters": {"rope_theta": 5000.0, "mrope_section": [8, 28, 28]}"#,
        );
        let c = parse(&mixed).unwrap();
        assert_eq!((c.text.rope_theta, c.text.mrope_section.as_slice()), (5000.0, &[8, 28, 28][..]));
        // The legacy flat form keeps its separate rope_theta.
        assert_eq!(parse(QWEN2_VL_2B).unwrap().text.rope_theta, 1_000_000.0);
        // The vision tower's rotary base: 10000 unless transformers 5's vision rope_parameters say otherwise; other
        // rope types and bad values refused by name.
        assert_eq!(parse(QWEN2_VL_2B).unwrap().vision.rope_theta, 10_000.0);
        let vision = |rope: &str| {
            let at = r#""temporal_patch_size": 2}"#;
            QWEN2_VL_2B.replace(at, &format!(r#""temporal_patch_size": 2, "rope_parameters": {rope}}}"#))
        };
        let c = parse(&vision(r#"{"rope_theta": 500.0, "rope_type": "axial"}"#)).unwrap();
        assert_eq!((c.vision.rope_theta, c.text.rope_theta), (500.0, 1_000_000.0));
        let e = parse(&vision(r#"{"rope_theta": 500.0, "rope_type": "yarn"}"#)).unwrap_err().to_string();
        assert!(e.contains("vision rope type `yarn`"), "{e}");
        let e = parse(&vision(r#"{"rope_theta": "big"}"#)).unwrap_err().to_string();
        assert!(e.contains("vision_config.rope_parameters.rope_theta"), "{e}");
        let e = parse(&vision(r#"{"rope_theta": 0.5}"#)).unwrap_err().to_string();
        assert!(e.contains("must be a finite number > 1"), "{e}");
    }
}
