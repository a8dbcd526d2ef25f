//! Tokenizer (`tokenizer.json` through the `tokenizers` crate) and the checkpoint's chat template rendered
//! with minijinja; image placeholders expanded to the right number of `<|image_pad|>` tokens.

use std::path::Path;

use minijinja::{Environment, context};
use serde_json::{Value, json};
use tokenizers::Tokenizer;

use crate::ModelError;

/// One piece of a chat message.
#[derive(Clone, Debug, PartialEq)]
pub enum ChatPart {
    /// An image (its processed size decides the number of pad tokens).
    Image,
    /// Text.
    Text(String),
}

/// A chat message.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// Interleaved images and text.
    pub content: Vec<ChatPart>,
}

impl ChatMessage {
    /// A user turn with `images` images first, then `text` (the RePIC training and `repic generate` layout).
    pub fn user_with_images(images: usize, text: impl Into<String>) -> Self {
        let mut content = vec![ChatPart::Image; images];
        content.push(ChatPart::Text(text.into()));
        ChatMessage { role: "user".into(), content }
    }
}

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
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String, ModelError> {
        let msgs: Vec<Value> = messages
            .iter()
            .map(|m| {
                let content: Vec<Value> = m
                    .content
                    .iter()
                    .map(|p| match p {
                        ChatPart::Image => json!({"type": "image"}),
                        ChatPart::Text(t) => json!({"type": "text", "text": t}),
                    })
                    .collect();
                json!({"role": m.role, "content": content})
            })
            .collect();
        let mut env = Environment::new();
        env.add_template("chat", &self.template).map_err(tok_err)?;
        let tmpl = env.get_template("chat").map_err(tok_err)?;
        tmpl.render(context! { messages => msgs, add_generation_prompt => add_generation_prompt }).map_err(tok_err)
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
