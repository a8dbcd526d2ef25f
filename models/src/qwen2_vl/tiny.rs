//! Tiny Qwen2-VL checkpoints made from scratch (the CPU demo, tests): a byte-level BPE tokenizer trained with the
//! `tokenizers` crate on a corpus, Qwen's special tokens and chat template, a Qwen2-VL config of the given sizes,
//! and randomly initialised weights, written as a Hugging Face folder that every repic command (and
//! transformers) loads.

use std::path::Path;

use burn::tensor::backend::Backend;
use serde_json::json;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, TokenizerBuilder};

use super::QwenVl;
use super::config::QwenVlConfig;
use crate::ModelError;

/// Qwen2-VL's chat template.
pub const QWEN2_VL_CHAT_TEMPLATE: &str = include_str!("chat_template.jinja");

/// The words the chat template writes around turns, special tokens left out: put it in a tokenizer's corpus
/// so that the template's text tokenizes well.
pub const TEMPLATE_WORDS: &str = "system\nYou are a helpful assistant.\nuser\nassistant\n";

/// Qwen's special tokens, in id order after training (ids 0..).
pub const SPECIAL_TOKENS: [&str; 7] = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
];

/// Sizes of a tiny checkpoint.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TinySpec {
    /// Target BPE vocabulary size (special tokens included).
    pub vocab_size: usize,
    /// Decoder width.
    pub hidden_size: usize,
    /// Decoder layers.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Key/value heads (grouped-query attention).
    pub kv_heads: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Vision blocks.
    pub vision_depth: usize,
    /// Vision width.
    pub vision_dim: usize,
    /// Vision heads.
    pub vision_heads: usize,
    /// Image processor pixel bounds (the number of image tokens follows from them).
    pub min_pixels: usize,
    /// See `min_pixels`.
    pub max_pixels: usize,
}

impl Default for TinySpec {
    fn default() -> Self {
        TinySpec {
            vocab_size: 1024,
            hidden_size: 128,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            intermediate_size: 256,
            vision_depth: 2,
            vision_dim: 64,
            vision_heads: 4,
            min_pixels: 56 * 56,
            max_pixels: 112 * 112,
        }
    }
}

/// Train the tokenizer on `corpus` and write `tokenizer.json` into `dir`; returns the vocabulary size.
fn train_tokenizer(corpus: &[String], vocab_size: usize, dir: &Path) -> Result<usize, ModelError> {
    let err = |e: tokenizers::Error| ModelError::Tokenizer(e.to_string());
    let specials: Vec<AddedToken> = SPECIAL_TOKENS.iter().map(|t| AddedToken::from(*t, true)).collect();
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(specials)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut tokenizer = TokenizerBuilder::<BPE, NormalizerWrapper, ByteLevel, ByteLevel, ByteLevel>::new()
        .with_model(BPE::default())
        .with_normalizer(None)
        .with_pre_tokenizer(Some(ByteLevel::new(false, true, true)))
        .with_post_processor(Some(ByteLevel::new(false, true, true)))
        .with_decoder(Some(ByteLevel::new(false, true, true)))
        .build()
        .map_err(err)?;
    tokenizer.train(&mut trainer, corpus.iter()).map_err(err)?;
    let path = dir.join("tokenizer.json");
    tokenizer.save(&path, false).map_err(|e| ModelError::Tokenizer(format!("{}: {e}", path.display())))?;
    Ok(tokenizer.get_vocab_size(true))
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<(), ModelError> {
    let text = serde_json::to_string_pretty(v).map_err(|e| ModelError::Input(e.to_string()))?;
    std::fs::write(path, text).map_err(|e| ModelError::io(path, e))
}

/// Write a tiny Qwen2-VL checkpoint folder `out` (atomically; replaced only if `overwrite`) whose tokenizer is
/// trained on `corpus`, with randomly initialised weights (the backend's generator: seed it for reproducible
/// weights).
pub fn create_tiny_checkpoint<B: Backend>(
    corpus: &[String],
    spec: &TinySpec,
    out: &Path,
    overwrite: bool,
    device: &B::Device,
) -> Result<(), ModelError> {
    let sizes = [spec.hidden_size, spec.heads, spec.kv_heads, spec.vision_dim, spec.vision_heads, spec.layers];
    if sizes.contains(&0) {
        return Err(ModelError::Input("tiny model: every size must be at least 1".into()));
    }
    let divides = spec.hidden_size.is_multiple_of(spec.heads)
        && spec.heads.is_multiple_of(spec.kv_heads)
        && spec.vision_dim.is_multiple_of(spec.vision_heads);
    if !divides {
        return Err(ModelError::Input("tiny model: heads must divide the widths, kv_heads the heads".into()));
    }
    let head_dim = spec.hidden_size / spec.heads;
    if !head_dim.is_multiple_of(4) {
        return Err(ModelError::Input(format!("tiny model: head dim {head_dim} is not a multiple of 4 (M-RoPE)")));
    }
    let spec_dir = tempfile::tempdir().map_err(|e| ModelError::io(std::env::temp_dir(), e))?;
    let dir = spec_dir.path();
    let vocab = train_tokenizer(corpus, spec.vocab_size, dir)?;
    let id = |t: &str| SPECIAL_TOKENS.iter().position(|s| *s == t).unwrap_or(0);
    // M-RoPE halves: temporal gets a quarter, height and width the rest (Qwen2-VL: 16/24/24 of 64).
    let half = head_dim / 2;
    let t = half / 4;
    let hw = (half - t) / 2;
    let section = [t, hw, half - t - hw];
    let config = json!({
        "architectures": ["Qwen2VLForConditionalGeneration"],
        "model_type": "qwen2_vl",
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.intermediate_size,
        "num_hidden_layers": spec.layers,
        "num_attention_heads": spec.heads,
        "num_key_value_heads": spec.kv_heads,
        "vocab_size": vocab,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "rope_scaling": {"type": "mrope", "rope_type": "default", "mrope_section": section},
        "hidden_act": "silu",
        "tie_word_embeddings": true,
        "bos_token_id": id("<|endoftext|>"),
        "eos_token_id": id("<|im_end|>"),
        "vision_start_token_id": id("<|vision_start|>"),
        "vision_end_token_id": id("<|vision_end|>"),
        "image_token_id": id("<|image_pad|>"),
        "video_token_id": id("<|video_pad|>"),
        "torch_dtype": "float32",
        "vision_config": {
            "depth": spec.vision_depth,
            "embed_dim": spec.vision_dim,
            "hidden_size": spec.hidden_size,
            "hidden_act": "quick_gelu",
            "mlp_ratio": 2,
            "num_heads": spec.vision_heads,
            "in_chans": 3,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2
        }
    });
    write_json(&dir.join("config.json"), &config)?;
    write_json(
        &dir.join("generation_config.json"),
        &json!({"bos_token_id": id("<|endoftext|>"), "eos_token_id": [id("<|im_end|>"), id("<|endoftext|>")]}),
    )?;
    write_json(
        &dir.join("tokenizer_config.json"),
        &json!({
            "chat_template": QWEN2_VL_CHAT_TEMPLATE,
            "eos_token": "<|im_end|>",
            "pad_token": "<|endoftext|>",
            "model_max_length": 4096,
            "tokenizer_class": "Qwen2Tokenizer",
            "clean_up_tokenization_spaces": false
        }),
    )?;
    write_json(
        &dir.join("preprocessor_config.json"),
        &json!({
            "image_processor_type": "Qwen2VLImageProcessor",
            "processor_class": "Qwen2VLProcessor",
            "do_convert_rgb": true, "do_normalize": true, "do_rescale": true, "do_resize": true,
            "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_std": [0.26862954, 0.26130258, 0.27577711],
            "min_pixels": spec.min_pixels, "max_pixels": spec.max_pixels,
            "merge_size": 2, "patch_size": 14, "temporal_patch_size": 2, "resample": 3,
            "rescale_factor": 1.0 / 255.0
        }),
    )?;
    let cfg = QwenVlConfig::load(dir)?;
    let model = QwenVl::<B>::new(&cfg, device);
    super::save::save_qwen_vl(&model, dir, out, overwrite)
}
