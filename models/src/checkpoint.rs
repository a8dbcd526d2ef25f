//! A whole checkpoint folder: model, config, tokenizer, image processor and stop tokens, and turning a chat
//! into model input.

use std::path::Path;

use burn::tensor::backend::Backend;
use repic_data::{Message, chat_images};
use serde_json::Value;

use crate::{ChatTokenizer, Engine, ModelError, ProcessorConfig, QwenVl, SamplingOptions, VlInput};

/// The sampling a `generation_config.json` asks for, as transformers reads it (`None`: no file, greedy).
pub fn sampling_defaults(generation: Option<&Value>) -> Result<SamplingOptions, String> {
    let Some(g) = generation else { return Ok(SamplingOptions::default()) };
    let num = |k: &str, default: f64| -> Result<f64, String> {
        match g.get(k) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| format!("`{k}` must be a number, got {v}")),
        }
    };
    let repetition_penalty = num("repetition_penalty", 1.0)?;
    let do_sample = match g.get("do_sample") {
        None | Some(Value::Null) => false,
        Some(v) => v.as_bool().ok_or_else(|| format!("`do_sample` must be true or false, got {v}"))?,
    };
    let s = if do_sample {
        let top_k = num("top_k", 50.0)?;
        if top_k < 0.0 || top_k.fract() != 0.0 {
            return Err(format!("`top_k` must be a whole number >= 0, got {top_k}"));
        }
        SamplingOptions {
            temperature: num("temperature", 1.0)?,
            top_k: (top_k > 0.0).then_some(top_k as usize),
            top_p: num("top_p", 1.0)?,
            repetition_penalty,
        }
    } else {
        SamplingOptions { repetition_penalty, ..SamplingOptions::default() }
    };
    s.validate()?;
    Ok(s)
}

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
    /// How the checkpoint's authors meant it to be sampled (`generation_config.json`, as transformers applies it
    /// when a caller gives nothing): greedy unless `do_sample`; then its temperature, top_p, top_k (50 unless
    /// set) and repetition penalty.
    pub sampling: SamplingOptions,
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
        let gen_path = dir.join("generation_config.json");
        let generation = match std::fs::read_to_string(&gen_path) {
            Ok(s) => Some(
                serde_json::from_str::<Value>(&s)
                    .map_err(|e| ModelError::Config { path: gen_path.clone(), msg: e.to_string() })?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(ModelError::io(gen_path, e)),
        };
        let sampling = sampling_defaults(generation.as_ref())
            .map_err(|msg| ModelError::Config { path: dir.join("generation_config.json"), msg })?;
        let mut stop_tokens = crate::config::token_ids(generation.as_ref().and_then(|g| g.get("eos_token_id")));
        if stop_tokens.is_empty() {
            stop_tokens = model.config().tokens.eos.clone();
        }
        Ok(Checkpoint { model, tokenizer, processor, stop_tokens, sampling })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Result<SamplingOptions, String> {
        sampling_defaults(Some(&serde_json::from_str(src).unwrap()))
    }

    #[test]
    fn generation_config_defaults_as_transformers_applies_them() {
        // Qwen2-VL-7B-Instruct's file: sampling, but nearly greedy.
        let qwen = r#"{"bos_token_id": 151643, "do_sample": true, "eos_token_id": [151645, 151643],
            "repetition_penalty": 1.05, "temperature": 0.1, "top_k": 1, "top_p": 0.001}"#;
        let s = parse(qwen).unwrap();
        assert_eq!((s.temperature, s.top_k, s.top_p, s.repetition_penalty), (0.1, Some(1), 0.001, 1.05));
        // do_sample unset: greedy, the penalty still applies; top_k defaults to 50 when sampling.
        let s = parse(r#"{"temperature": 0.7, "repetition_penalty": 1.1}"#).unwrap();
        assert_eq!((s.temperature, s.top_k, s.repetition_penalty), (0.0, None, 1.1));
        assert_eq!(parse(r#"{"do_sample": true}"#).unwrap().top_k, Some(50));
        assert_eq!(parse(r#"{"do_sample": true, "top_k": 0}"#).unwrap().top_k, None);
        assert_eq!(sampling_defaults(None).unwrap(), SamplingOptions::default());
        assert!(parse(r#"{"do_sample": true, "top_p": 1.5}"#).unwrap_err().contains("top_p"));
        assert!(parse(r#"{"do_sample": "yes"}"#).unwrap_err().contains("do_sample"));
        assert!(parse(r#"{"do_sample": true, "top_k": 2.5}"#).unwrap_err().contains("top_k"));
    }
}
