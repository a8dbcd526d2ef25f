//! A whole checkpoint folder: model, config, tokenizer, image processor and stop tokens, and turning a chat
//! into model input.

use std::path::Path;

use burn::tensor::backend::Backend;
use repic_data::{Message, chat_images};
use serde_json::Value;

use crate::{ChatTokenizer, Engine, ModelError, ProcessorConfig, QwenVl, VlInput};

/// Everything needed to run a Qwen2-VL / Qwen2.5-VL checkpoint.
pub struct Checkpoint<B: Backend> {
    /// The model (with its configuration: `model.config()`).
    pub model: QwenVl<B>,
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
        let model = QwenVl::load(dir, device)?;
        let tokenizer = ChatTokenizer::load(dir)?;
        let processor = ProcessorConfig::load(dir)?;
        let generation = std::fs::read_to_string(dir.join("generation_config.json"))
            .ok()
            .and_then(|s| serde_json::from_str::<Value>(&s).ok());
        let mut stop_tokens = crate::config::token_ids(generation.as_ref().and_then(|g| g.get("eos_token_id")));
        if stop_tokens.is_empty() {
            stop_tokens = model.config().tokens.eos.clone();
        }
        Ok(Checkpoint { model, tokenizer, processor, stop_tokens })
    }

    /// The inference engine over this checkpoint (decoding text, checking stop strings) on `device`.
    pub fn engine<'a>(&'a self, device: &'a B::Device) -> Engine<'a, B> {
        Engine::new(&self.model, device).with_tokenizer(&self.tokenizer)
    }

    /// Render `messages` (with the generation prompt), process their images (paths relative to `image_root`,
    /// in order) and tokenize with the right number of image pad tokens.
    pub fn prepare(&self, messages: &[Message], image_root: &Path) -> Result<PreparedPrompt, ModelError> {
        let prompt = self.tokenizer.render(messages, true)?;
        let processed = chat_images(messages)
            .into_iter()
            .map(|p| {
                let path = image_root.join(p);
                if !path.is_file() {
                    return Err(ModelError::Image { path, msg: "does not exist".into() });
                }
                self.processor.process_file(&path)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let merge = self.model.config().vision.spatial_merge_size;
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
