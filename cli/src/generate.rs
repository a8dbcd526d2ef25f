//! `repic generate`: run a Qwen2-VL / Qwen2.5-VL checkpoint on images and a prompt.

use std::path::PathBuf;

use anyhow::Context;
use repic_models::{
    ChatMessage, ChatPart, Checkpoint, DefaultBackend as Backend, GenerateOptions, SamplingOptions,
    default_device as device, generate,
};

/// Arguments of `repic generate`.
#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint folder (config.json, *.safetensors, tokenizer.json, tokenizer_config.json / chat template).
    #[arg(long)]
    model: PathBuf,
    /// An image for the user turn (repeat for several; they come before the prompt, in order).
    #[arg(long = "image")]
    images: Vec<PathBuf>,
    /// The user's text.
    #[arg(long)]
    prompt: String,
    /// An optional system message (the chat template's default otherwise).
    #[arg(long)]
    system: Option<String>,
    /// Most tokens to generate (stops earlier at an end-of-sequence token).
    #[arg(long, default_value_t = 128)]
    max_new_tokens: usize,
    /// Sampling temperature; 0 is greedy decoding.
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    /// Keep only the k most likely tokens when sampling.
    #[arg(long)]
    top_k: Option<usize>,
    /// Nucleus sampling: keep the most likely tokens up to this total probability (1 = off).
    #[arg(long, default_value_t = 1.0)]
    top_p: f64,
    /// transformers' repetition penalty on tokens already in the sequence (1 = off; PreferThinker uses 1.15).
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f64,
    /// Sampler seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print {"prompt", "input_ids", "tokens", "text", "logprobs"} as JSON (log-probs under the penalised,
    /// temperature-scaled distribution, before top-k/top-p truncation).
    #[arg(long)]
    json: bool,
}

/// Run `repic generate`.
pub fn run(a: Args) -> anyhow::Result<()> {
    let sampling = SamplingOptions {
        temperature: a.temperature,
        top_k: a.top_k,
        top_p: a.top_p,
        repetition_penalty: a.repetition_penalty,
    };
    sampling.validate().map_err(|e| anyhow::anyhow!("--{}", e.replace('_', "-")))?;
    let dev = device();
    let ckpt = Checkpoint::<Backend>::load(&a.model, &dev).with_context(|| format!("loading {}", a.model.display()))?;
    let mut messages = Vec::new();
    if let Some(s) = a.system {
        messages.push(ChatMessage { role: "system".into(), content: vec![ChatPart::Text(s)] });
    }
    let mut content: Vec<ChatPart> = a.images.iter().map(|_| ChatPart::Image).collect();
    content.push(ChatPart::Text(a.prompt));
    messages.push(ChatMessage { role: "user".into(), content });
    let prepared = ckpt.prepare(&messages, &a.images)?;
    let opts = GenerateOptions {
        max_new_tokens: a.max_new_tokens,
        sampling,
        seed: a.seed,
        stop_tokens: ckpt.stop_tokens.clone(),
    };
    let out = generate(&ckpt.model, &ckpt.cfg, &prepared.input, &opts, &dev)?;
    let text = ckpt.tokenizer.decode(&out.tokens)?;
    if a.json {
        let v = serde_json::json!({
            "prompt": prepared.prompt,
            "input_ids": prepared.input.ids,
            "tokens": out.tokens,
            "text": text,
            "logprobs": out.logprobs,
        });
        println!("{v}");
    } else {
        println!("{text}");
    }
    Ok(())
}
