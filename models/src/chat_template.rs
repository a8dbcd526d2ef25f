//! Tokenizer (`tokenizer.json` through the `tokenizers` crate) and the checkpoint's chat template rendered
//! with minijinja; image placeholders expanded to the right number of `<|image_pad|>` tokens. The template is
//! the only place that knows how turns are marked up (Qwen's `<|im_start|>` ... `<|im_end|>`).

use std::path::Path;

use minijinja::{Environment, context};
use serde_json::{Value, json};
use tokenizers::Tokenizer;

use repic_data::{Message, Part};

use crate::ModelError;

/// A checkpoint's tokenizer and chat template.
pub struct ChatTokenizer {
    tokenizer: Tokenizer,
    template: String,
}

fn tok_err(e: impl std::fmt::Display) -> ModelError {
    ModelError::Tokenizer(e.to_string())
}

impl ChatTokenizer {
    /// Load `tokenizer.json` and the chat template (`chat_template.jinja`, `chat_template.json` or
    /// `tokenizer_config.json`'s `chat_template`) from a checkpoint folder.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let path = dir.join("tokenizer.json");
        let tokenizer =
            Tokenizer::from_file(&path).map_err(|e| ModelError::Tokenizer(format!("{}: {e}", path.display())))?;
        let read_json = |name: &str| -> Option<Value> {
            std::fs::read_to_string(dir.join(name)).ok().and_then(|s| serde_json::from_str(&s).ok())
        };
        let template = std::fs::read_to_string(dir.join("chat_template.jinja"))
            .ok()
            .or_else(|| read_json("chat_template.json")?.get("chat_template")?.as_str().map(String::from))
            .or_else(|| read_json("tokenizer_config.json")?.get("chat_template")?.as_str().map(String::from))
            .ok_or_else(|| ModelError::Tokenizer(format!("{}: no chat template found", dir.display())))?;
        Ok(ChatTokenizer { tokenizer, template })
    }

    /// Render the chat template (with the generation prompt when `add_generation_prompt`).
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String, ModelError> {
        let msgs: Vec<Value> = messages
            .iter()
            .map(|m| {
                let content: Vec<Value> = m
                    .content
                    .iter()
                    .map(|p| match p {
                        Part::Image(_) => json!({"type": "image"}),
                        Part::Text(t) => json!({"type": "text", "text": t}),
                    })
                    .collect();
                json!({"role": m.role.as_str(), "content": content})
            })
            .collect();
        let mut env = Environment::new();
        env.add_template("chat", &self.template).map_err(tok_err)?;
        let tmpl = env.get_template("chat").map_err(tok_err)?;
        tmpl.render(context! { messages => msgs, add_generation_prompt => add_generation_prompt }).map_err(tok_err)
    }

    /// What the template writes after an assistant turn's text, trailing whitespace trimmed (Qwen:
    /// `<|im_end|>`): a supervised answer ends with it, so the model learns to stop.
    pub fn end_of_turn(&self) -> Result<String, ModelError> {
        const MARK: &str = "\u{E000}repic-answer\u{E000}";
        let ask = [Message::user_with_images(Vec::<String>::new(), "?")];
        let asked = self.render(&ask, true)?;
        let answered = self.render(&[ask[0].clone(), Message::assistant(MARK)], false)?;
        let turn = answered.strip_prefix(asked.as_str()).and_then(|rest| rest.split_once(MARK)).ok_or_else(|| {
            ModelError::Tokenizer("the chat template renders an answer other than after the generation prompt".into())
        })?;
        Ok(turn.1.trim_end().to_string())
    }

    /// Token ids of `text` (special tokens in the text are recognised; none are added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        Ok(self.tokenizer.encode(text, false).map_err(tok_err)?.get_ids().to_vec())
    }

    /// Token ids of a rendered prompt whose k-th `<|image_pad|>` stands for `pads[k]` tokens.
    pub fn encode_with_images(&self, prompt: &str, pads: &[usize]) -> Result<Vec<u32>, ModelError> {
        const PAD: &str = "<|image_pad|>";
        let found = prompt.matches(PAD).count();
        if found != pads.len() {
            return Err(ModelError::Input(format!(
                "the prompt has {found} image placeholders for {} images",
                pads.len()
            )));
        }
        let mut expanded = String::with_capacity(prompt.len());
        for (i, piece) in prompt.split(PAD).enumerate() {
            if i > 0 {
                expanded.push_str(&PAD.repeat(pads[i - 1]));
            }
            expanded.push_str(piece);
        }
        self.encode(&expanded)
    }

    /// Text of `ids`, special tokens removed.
    pub fn decode(&self, ids: &[u32]) -> Result<String, ModelError> {
        self.tokenizer.decode(ids, true).map_err(tok_err)
    }

    /// The token string of one id (special tokens included).
    pub fn token(&self, id: u32) -> Option<String> {
        self.tokenizer.id_to_token(id)
    }
}
