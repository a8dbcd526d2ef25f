//! Multimodal models for repic on burn: Qwen2-VL / Qwen2.5-VL (vision tower, Qwen2 decoder with M-RoPE),
//! loaded from Hugging Face checkpoint folders. Generic over `B: Backend`; the binary picks the backend.
//!
//! ```no_run
//! use repic_models::{ChatMessage, ChatPart, Checkpoint, DefaultBackend, GenerateOptions, default_device};
//!
//! let dev = default_device();
//! let ckpt = Checkpoint::<DefaultBackend>::load("Qwen2.5-VL-7B-Instruct".as_ref(), &dev)?;
//! let chat = [ChatMessage { role: "user".into(), content: vec![ChatPart::Image, ChatPart::Text("Who is this?".into())] }];
//! let prompt = ckpt.prepare(&chat, &["photo.jpg".into()])?;
//! let opts = GenerateOptions { max_new_tokens: 64, stop_tokens: ckpt.stop_tokens.clone(), ..Default::default() };
//! let out = ckpt.engine(&dev).generate(&prompt.input, &opts)?;
//! println!("{} ({:?})", out.text, out.finish);
//! # Ok::<(), repic_models::ModelError>(())
//! ```
//!
//! The image processor's resize rule, as transformers' `smart_resize`:
//!
//! ```
//! // 90 x 130 px with at most 15 680 pixels -> 84 x 140 (multiples of 28).
//! assert_eq!(repic_models::smart_resize(90, 130, 28, 56 * 56, 15_680), Ok((84, 140)));
//! ```

pub mod backend;
mod checkpoint;
pub mod clip;
pub mod config;
mod error;
pub mod generate;
pub mod load;
pub mod lora;
pub mod peft;
pub mod processor;
pub mod qwen;
pub mod resize;
pub mod sampling;
pub mod save;
pub mod score;
pub mod tiny;
pub mod tokenizer;

pub use backend::{DefaultBackend, default_device};
pub use checkpoint::{Checkpoint, PreparedPrompt};
pub use clip::{Clip, ClipConfig, ClipProcessor, ClipTokenizer, load_clip};
pub use config::{Arch, QwenVlConfig};
pub use error::ModelError;
pub use generate::{Engine, Finish, GenerateOptions, Generation};
pub use lora::{Lora, LoraConfig, LoraLinear, LoraTargets};
pub use peft::{load_peft, read_peft_config, save_peft};
pub use processor::{ProcessedImage, ProcessorConfig, smart_resize};
pub use qwen::{QwenVl, VlInput};
pub use sampling::SamplingOptions;
pub use save::save_qwen_vl;
pub use score::{CandidateScores, ScoreOptions, Scored};
pub use tiny::{TinySpec, create_tiny_checkpoint};
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
