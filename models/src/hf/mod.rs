//! Hugging Face checkpoint files: safetensors weights read into and written from burn modules.

pub mod load;
pub mod save;
