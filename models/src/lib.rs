//! Multimodal models for repic on burn: Qwen2-VL / Qwen2.5-VL (vision tower, Qwen2 decoder with M-RoPE),
//! loaded from Hugging Face checkpoint folders. Generic over `B: Backend`; the binary picks the backend.

pub mod backend;
mod checkpoint;
pub mod clip;
pub mod config;
mod error;
pub mod generate;
pub mod load;
pub mod processor;
pub mod qwen;
pub mod resize;
pub mod save;
pub mod tokenizer;

pub use backend::{DefaultBackend, default_device};
pub use checkpoint::{Checkpoint, PreparedPrompt};
pub use clip::{Clip, ClipConfig, ClipProcessor, ClipTokenizer, load_clip};
pub use config::{Arch, QwenVlConfig};
pub use error::ModelError;
pub use generate::{GenerateOptions, Generation, generate};
pub use processor::{ProcessedImage, ProcessorConfig, smart_resize};
pub use qwen::{QwenVl, VlInput};
pub use save::save_qwen_vl;
pub use tokenizer::{ChatMessage, ChatPart, ChatTokenizer};

use std::path::Path;

use burn::tensor::backend::Backend;

/// Load a Qwen2-VL / Qwen2.5-VL checkpoint folder (config.json + safetensors) onto `device`.
pub fn load_qwen_vl<B: Backend>(dir: &Path, device: &B::Device) -> Result<(QwenVl<B>, QwenVlConfig), ModelError> {
    let cfg = QwenVlConfig::load(dir)?;
    let mut model = QwenVl::new(&cfg, device);
    let ignore: &[&str] = if cfg.text.tie_word_embeddings { &["lm_head.weight"] } else { &[] };
    load::load_weights(&mut model, dir, &load::QWEN_KEY_MAP, ignore)?;
    Ok((model, cfg))
}
