//! The OpenAI chat-completions wire format as vLLM, SGLang and TGI accept it: the request (text and
//! `image_url` parts with base64 `data:` URLs), the response, the streamed chunks and the error object.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// An API error: HTTP status, message, and the request field it concerns.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// What is wrong.
    pub message: String,
    /// The field (`messages[0].content[1].image_url`), if one.
    pub param: Option<String>,
}

impl ApiError {
    /// A 400 about `param`.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError { status: 400, message: message.into(), param: Some(param.into()) }
    }

    /// The 429 of a full queue.
    pub fn busy() -> Self {
        ApiError { status: 429, message: "the server is busy; retry shortly".into(), param: None }
    }

    /// The OpenAI error object.
    pub fn body(&self) -> Value {
        let kind = match self.status {
            401 => "authentication_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            400..=499 => "invalid_request_error",
            _ => "server_error",
        };
        json!({"error": {"message": self.message, "type": kind, "param": self.param, "code": null}})
    }
}

/// `stop`: one string or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// One.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// `stream_options`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamOptions {
    /// Send a last chunk with `usage`.
    pub include_usage: Option<bool>,
}

/// `POST /v1/chat/completions`. Fields OpenAI defines that repic does not implement are accepted only at
/// their neutral values; fields OpenAI does not define are refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    /// Model name (any value: the server serves one model).
    pub model: Option<String>,
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Most new tokens (older name).
    pub max_tokens: Option<u64>,
    /// Most new tokens.
    pub max_completion_tokens: Option<u64>,
    /// Sampling temperature (0: greedy).
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Top-k sampling (vLLM's extension; 0 or -1: off).
    pub top_k: Option<i64>,
    /// Repetition penalty (vLLM's extension).
    pub repetition_penalty: Option<f64>,
    /// Stop strings (at most 4).
    pub stop: Option<Stop>,
    /// Seed of the sampler.
    pub seed: Option<u64>,
    /// Choices.
    pub n: Option<u64>,
    /// Server-sent events.
    pub stream: Option<bool>,
    /// Streaming options.
    pub stream_options: Option<StreamOptions>,
    /// End-user id (logged only).
    pub user: Option<String>,
    /// Keep generating after the end-of-sequence token (vLLM's extension; for benchmarks of fixed length).
    pub ignore_eos: Option<bool>,
    /// Only 0 is supported.
    pub frequency_penalty: Option<f64>,
    /// Only 0 is supported.
    pub presence_penalty: Option<f64>,
    /// Return each generated token's log-probability (non-streamed answers).
    pub logprobs: Option<bool>,
    /// repic's extension: personalization settings.
    pub repic: Option<RepicOptions>,
}

/// `repic`: how a request is personalized (when the server has a concept store).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepicOptions {
    /// Retrieve concepts and put them into the prompt (default true).
    pub personalize: Option<bool>,
    /// Concepts retrieved by image (default 1; names in the text come on top).
    pub top_k: Option<usize>,
}

/// One message.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// Text, or a list of parts.
    pub content: Content,
    /// Participant name (ignored).
    pub name: Option<String>,
}

/// A message's content.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Text and image parts.
    Parts(Vec<ContentPart>),
}

/// One content part.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ContentPart {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// An image as a `data:` URL.
    ImageUrl {
        /// `{"url": "data:image/png;base64,...", "detail": ...}`.
        image_url: ImageUrl,
    },
}

/// `image_url`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageUrl {
    /// The URL (only base64 `data:` URLs).
    pub url: String,
    /// Ignored.
    pub detail: Option<String>,
}

/// Decode a `data:image/...;base64,` URL into image bytes, checked to decode as PNG or JPEG within `max_bytes`;
/// returns the bytes and the file extension.
pub fn decode_data_url(url: &str, max_bytes: usize, param: &str) -> Result<(Vec<u8>, &'static str), ApiError> {
    let Some(rest) = url.strip_prefix("data:") else {
        let what = if url.starts_with("http://") || url.starts_with("https://") { "remote URLs" } else { "paths" };
        return Err(ApiError::invalid(param, format!("{what} are not fetched; send the image as a base64 data: URL")));
    };
    let (meta, payload) = rest.split_once(',').ok_or_else(|| ApiError::invalid(param, "a data: URL needs a comma"))?;
    if !meta.ends_with(";base64") {
        return Err(ApiError::invalid(param, "only base64 data: URLs are supported"));
    }
    if payload.len() / 4 * 3 > max_bytes + 3 {
        return Err(ApiError::invalid(param, format!("the image is larger than {max_bytes} bytes")));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload.trim())
        .map_err(|e| ApiError::invalid(param, format!("not valid base64: {e}")))?;
    if bytes.len() > max_bytes {
        return Err(ApiError::invalid(param, format!("the image is larger than {max_bytes} bytes")));
    }
    let ext = repic_personalize::store::check_image_bytes(&bytes).map_err(|e| ApiError::invalid(param, e))?;
    Ok((bytes, ext))
}

/// Token counts of a response.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Generated tokens.
    pub completion_tokens: usize,
    /// Both.
    pub total_tokens: usize,
}
