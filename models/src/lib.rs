//! Multimodal models for repic on burn: Qwen2-VL / Qwen2.5-VL (vision tower, Qwen2 decoder with M-RoPE) and
//! CLIP, loaded from Hugging Face checkpoint folders, LoRA adapters in PEFT's layout, and the inference engine
//! (key/value cache, sampler, generation, scoring) over the model's one step call. Generic over `B: Backend`;
//! the binary picks the backend.
//!
//! Layout: `qwen2_vl/` and `clip/` hold one model each (config, processor, layers); `engine/` runs a model;
//! `hf/` reads and writes safetensors; `lora/` holds adapters and PEFT folders; `chat_template` renders the
//! chat message type of `repic-data` for a checkpoint.
//!
//! ```no_run
//! use repic_data::Message;
//! use repic_models::{Checkpoint, DefaultBackend, GenerateOptions, default_device};
//!
//! let dev = default_device();
//! let ckpt = Checkpoint::<DefaultBackend>::load("Qwen2.5-VL-7B-Instruct".as_ref(), &dev)?;
//! let chat = [Message::user_with_images(["photo.jpg"], "Who is this?")];
//! let prompt = ckpt.prepare(&chat, ".".as_ref())?;
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
mod chat_template;
mod checkpoint;
pub mod clip;
pub mod engine;
mod error;
pub mod hf;
pub mod lora;
pub mod qwen2_vl;
pub mod resize;

pub use backend::{BACKEND_NAME, DefaultBackend, default_device};
pub use chat_template::ChatTokenizer;
pub use checkpoint::{Checkpoint, PreparedPrompt, sampling_defaults};
pub use clip::{Clip, ClipConfig, ClipProcessor, ClipTokenizer, TowerConfig, save_clip};
pub use engine::{
    CandidateScores, Engine, Finish, GenerateOptions, Generation, KvCache, SamplingOptions, ScoreOptions, Scored, SeqId,
};
pub use error::ModelError;
pub use lora::peft::{load_peft, read_peft_config, save_peft};
pub use lora::{AdapterBank, Lora, LoraConfig, LoraLinear, LoraTargets};
pub use qwen2_vl::config::{self, Arch, QwenVlConfig};
pub use qwen2_vl::processor::{self, ProcessedImage, ProcessorConfig, smart_resize};
pub use qwen2_vl::save::save_qwen_vl;
pub use qwen2_vl::tiny::{self, TinySpec, create_tiny_checkpoint};
pub use qwen2_vl::{QwenVl, Step, VlInput};
