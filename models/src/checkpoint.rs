//! A whole checkpoint folder: model, config, tokenizer, image processor and stop tokens, and turning a chat
//! into model input.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use serde_json::Value;

use crate::{ChatMessage, ChatPart, ChatTokenizer, Engine, ModelError, ProcessorConfig, QwenVl, QwenVlConfig, VlInput};

/// Everything needed to run a Qwen2-VL / Qwen2.5-VL checkpoint.
pub struct Checkpoint<B: Backend> {
    /// The model.
    pub model: QwenVl<B>,
    /// Its configuration.
    pub cfg: QwenVlConfig,
    /// Tokenizer and chat template.
    pub tokenizer: ChatTokenizer,
    /// Image processor settings.
    pub processor: ProcessorConfig,
    /// Tokens that end generation (`generation_config.json`, else `config.json`).
    pub stop_tokens: Vec<u32>,
}

/// A chat turned into model input, with the rendered prompt.
pub struct PreparedPrompt {
    /// The templated prompt text (one `<|image_pad|>` per image).
    pub prompt: String,
    /// Model input.
    pub input: VlInput,
    /// Width and height of each image after resizing (the frame of Qwen2.5-VL box coordinates).
    pub sizes: Vec<(u32, u32)>,
}

impl<B: Backend> Checkpoint<B> {
    /// Load a checkpoint folder onto `device`.
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self, ModelError> {
        let (model, cfg) = crate::load_qwen_vl(dir, device)?;
        let tokenizer = ChatTokenizer::load(dir)?;
        let processor = ProcessorConfig::load(dir)?;
        let generation = std::fs::read_to_string(dir.join("generation_config.json"))
            .ok()
            .and_then(|s| serde_json::from_str::<Value>(&s).ok());
        let mut stop_tokens = crate::config::token_ids(generation.as_ref().and_then(|g| g.get("eos_token_id")));
        if stop_tokens.is_empty() {
            stop_tokens = cfg.tokens.eos.clone();
        }
        Ok(Checkpoint { model, cfg, tokenizer, processor, stop_tokens })
    }

    /// The inference engine over this checkpoint (decoding text, checking stop strings) on `device`.
    pub fn engine<'a>(&'a self, device: &'a B::Device) -> Engine<'a, B> {
        Engine::new(&self.model, &self.cfg, device).with_tokenizer(&self.tokenizer)
    }

    /// Render `messages` (with the generation prompt), process the images (one per [`ChatPart::Image`], in
    /// order) and tokenize with the right number of image pad tokens.
    pub fn prepare(&self, messages: &[ChatMessage], images: &[PathBuf]) -> Result<PreparedPrompt, ModelError> {
        let slots = messages.iter().flat_map(|m| &m.content).filter(|p| **p == ChatPart::Image).count();
        if slots != images.len() {
            return Err(ModelError::Input(format!("{slots} image slots in the chat for {} images", images.len())));
        }
        let prompt = self.tokenizer.render(messages, true)?;
        let processed = images.iter().map(|p| self.processor.process_file(p)).collect::<Result<Vec<_>, _>>()?;
        let merge = self.cfg.vision.spatial_merge_size;
        let pads: Vec<usize> = processed.iter().map(|p| p.tokens(merge)).collect();
        let ids = self.tokenizer.encode_with_images(&prompt, &pads)?;
        let input = VlInput {
            ids,
            pixels: processed.iter().flat_map(|p| p.patches.iter().copied()).collect(),
            grids: processed.iter().map(|p| p.grid).collect(),
        };
        let sizes = processed.iter().map(|p| p.resized).collect();
        Ok(PreparedPrompt { prompt, input, sizes })
    }
}
