//! `repic bench generate`: generation throughput of a checkpoint on this machine, for a batch of copies of one
//! prompt or a GRPO group sampled from one prefill, with the KV cache or (`--no-cache`) by full recomputation.
//! Timings cover generation only (not loading or image preprocessing); medians over repeats; nothing here is a
//! test. `scripts/bench_transformers_generate.py` times transformers on the same settings.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::prompt::load_prompt;
use repic_models::{
    Checkpoint, DefaultBackend as Backend, GenerateOptions, SamplingOptions, VlInput, default_device as device,
};

/// Benchmarks.
#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Tokens per second of generation (batch or group), one image prompt by default.
    Generate(Args),
    /// Serving throughput and latency over loopback for 1, 8, 32 and 100 concurrent clients.
    Serve(crate::bench_serve::Args),
    /// Latency of one retrieval query against 1k, 10k and 100k concepts (synthetic embeddings).
    Retrieve(crate::bench_retrieve::Args),
}

/// Arguments of `repic bench generate`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: crate::prompt::ModelArgs,
    /// Images of the prompt (repeat for several).
    #[arg(long = "image")]
    images: Vec<PathBuf>,
    /// The user's text.
    #[arg(long, default_value = "Describe the image in detail.")]
    prompt: String,
    /// Copies of the prompt decoded as one batch (each prefilled).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    batch: u32,
    /// Samples of the prompt decoded from one shared prefill (a GRPO group); excludes --batch > 1.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    group: u32,
    /// Tokens generated per sequence (no early stop).
    #[arg(long, default_value_t = 64)]
    new_tokens: usize,
    /// Sampling temperature (0: greedy).
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Timed repeats after one warm-up run (the median is reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    repeats: u32,
    /// Greedy decoding of one sequence by recomputing the whole sequence per token (the no-cache baseline).
    #[arg(long)]
    no_cache: bool,
    /// Print {"tokens_per_second", "seconds", "new_tokens"} as JSON.
    #[arg(long)]
    json: bool,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Greedy decoding by rerunning the model over the whole sequence for every token (the no-cache baseline).
fn recompute(ckpt: &Checkpoint<Backend>, input: &VlInput, n: usize) -> anyhow::Result<()> {
    let dev = device();
    let mut cur = input.clone();
    for _ in 0..n {
        let logits = ckpt.model.logits(&cur, &dev)?;
        let t = logits.dims()[0];
        let next = logits.narrow(0, t - 1, 1).argmax(1).into_scalar();
        cur.ids.push(u32::try_from(next as i64).context("token id")?);
    }
    Ok(())
}

/// Run a benchmark.
pub fn run(c: BenchCommand) -> anyhow::Result<()> {
    match c {
        BenchCommand::Generate(a) => generate(a),
        BenchCommand::Retrieve(a) => crate::bench_retrieve::run(a),
        BenchCommand::Serve(a) => crate::bench_serve::run(a),
    }
}

fn generate(a: Args) -> anyhow::Result<()> {
    if a.batch > 1 && a.group > 1 {
        bail!("--batch and --group measure different things; give one of them");
    }
    if a.no_cache && (a.batch > 1 || a.group > 1) {
        bail!("--no-cache measures one greedy sequence; drop --batch/--group");
    }
    let dev = device();
    let (ckpt, prepared) = load_prompt(&a.model, &a.images, None, a.prompt.clone())?;
    let input = &prepared.input;
    let n = a.new_tokens;
    let opts = GenerateOptions {
        max_new_tokens: n,
        sampling: SamplingOptions { temperature: a.temperature, ..Default::default() },
        ..Default::default()
    };
    let engine = ckpt.engine(&dev);
    let batch = vec![input.clone(); a.batch as usize];
    let once = || -> anyhow::Result<usize> {
        if a.no_cache {
            recompute(&ckpt, input, n)?;
            return Ok(n);
        }
        let outs = if a.group > 1 {
            engine.generate_group(input, a.group as usize, &opts)?
        } else {
            engine.generate_batch(&batch, &opts)?
        };
        Ok(outs.iter().map(|o| o.tokens.len()).sum())
    };
    once()?;
    let mut times = Vec::new();
    let mut tokens = 0;
    for _ in 0..a.repeats {
        let start = Instant::now();
        tokens = once()?;
        times.push(start.elapsed().as_secs_f64());
    }
    let secs = median(times);
    let tps = tokens as f64 / secs;
    if a.json {
        println!("{}", serde_json::json!({"tokens_per_second": tps, "seconds": secs, "new_tokens": tokens}));
    } else {
        let what = match (a.no_cache, a.group > 1) {
            (true, _) => "1 sequence, full recomputation per token".to_string(),
            (false, true) => format!("group of {} from one prefill, KV cache", a.group),
            (false, false) => format!("batch of {}, KV cache", a.batch),
        };
        println!(
            "{what}: prompt {} tokens, {} image(s), {tokens} new tokens in {secs:.3} s = {tps:.1} tokens/s (median of {})",
            input.ids.len(),
            a.images.len(),
            a.repeats
        );
    }
    Ok(())
}
