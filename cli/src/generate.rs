//! `repic generate`: run a Qwen2-VL / Qwen2.5-VL checkpoint on images and a prompt.

use std::path::PathBuf;

use repic_models::{GenerateOptions, SamplingOptions, default_device as device};

use crate::prompt::load_prompt;

/// Arguments of `repic generate`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: crate::prompt::ModelArgs,
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
    /// Sampling temperature; 0 is greedy decoding. Unset sampling options come from the checkpoint's
    /// generation_config.json as transformers applies them (greedy unless it sets do_sample; then its
    /// temperature, top_p, top_k, default 50, and repetition_penalty); without that file, greedy.
    #[arg(long, allow_negative_numbers = true)]
    temperature: Option<f64>,
    /// Keep only the k most likely tokens when sampling (0 = off).
    #[arg(long, allow_negative_numbers = true)]
    top_k: Option<i64>,
    /// Nucleus sampling: keep the most likely tokens up to this total probability (1 = off).
    #[arg(long, allow_negative_numbers = true)]
    top_p: Option<f64>,
    /// transformers' repetition penalty on tokens already in the sequence (1 = off; PreferThinker uses 1.15).
    #[arg(long, allow_negative_numbers = true)]
    repetition_penalty: Option<f64>,
    /// Completions to sample from one shared prefill (a GRPO group); sample i uses seed + i. With more than one,
    /// `--json` adds a "samples" list of {"tokens", "text", "logprobs", "finish"}.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    num_samples: u32,
    /// A string that ends generation once the output contains it (repeat for several).
    #[arg(long = "stop")]
    stop: Vec<String>,
    /// End-of-sequence tokens cannot be chosen before this many new tokens (transformers' `min_new_tokens`).
    #[arg(long, default_value_t = 0)]
    min_new_tokens: usize,
    /// Sampler seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print {"prompt", "input_ids", "tokens", "text", "logprobs", "finish"} as JSON (log-probs under the
    /// penalised, temperature-scaled distribution, before top-k/top-p truncation; finish is "stop",
    /// "stop_string" or "length").
    #[arg(long)]
    json: bool,
}

/// Run `repic generate`.
pub fn run(a: Args) -> anyhow::Result<()> {
    let top_k = match a.top_k {
        Some(k) if k < 0 => anyhow::bail!("--top-k must be >= 0 (0 = off), got {k}"),
        Some(k) => Some((k > 0).then_some(k as usize)),
        None => None,
    };
    // Check what was typed before loading anything.
    let typed = SamplingOptions {
        temperature: a.temperature.unwrap_or(0.0),
        top_k: top_k.flatten(),
        top_p: a.top_p.unwrap_or(1.0),
        repetition_penalty: a.repetition_penalty.unwrap_or(1.0),
    };
    typed.validate().map_err(|e| anyhow::anyhow!("--{}", e.replace('_', "-")))?;
    anyhow::ensure!(
        a.min_new_tokens <= a.max_new_tokens,
        "--min-new-tokens {} exceeds --max-new-tokens {}",
        a.min_new_tokens,
        a.max_new_tokens
    );
    let dev = device();
    let (ckpt, prepared) = load_prompt(&a.model, &a.images, a.system, a.prompt)?;
    let d = &ckpt.sampling;
    let sampling = SamplingOptions {
        temperature: a.temperature.unwrap_or(d.temperature),
        top_k: top_k.unwrap_or(d.top_k),
        top_p: a.top_p.unwrap_or(d.top_p),
        repetition_penalty: a.repetition_penalty.unwrap_or(d.repetition_penalty),
    };
    let opts = GenerateOptions {
        max_new_tokens: a.max_new_tokens,
        sampling,
        seed: a.seed,
        stop_tokens: ckpt.stop_tokens.clone(),
        stop_strings: a.stop,
        min_new_tokens: a.min_new_tokens,
    };
    let outs = ckpt.engine(&dev).generate_group(&prepared.input, a.num_samples as usize, &opts)?;
    let sample = |o: &repic_models::Generation| serde_json::json!({"tokens": o.tokens, "text": o.text, "logprobs": o.logprobs, "finish": o.finish});
    if a.json {
        let mut v = sample(&outs[0]);
        v["prompt"] = prepared.prompt.into();
        v["input_ids"] = prepared.input.ids.into();
        if outs.len() > 1 {
            v["samples"] = outs.iter().map(sample).collect::<Vec<_>>().into();
        }
        println!("{v}");
    } else {
        for o in &outs {
            println!("{}", o.text);
        }
    }
    Ok(())
}
