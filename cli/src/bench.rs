//! `repic bench`: generation throughput of a checkpoint on this machine — full recomputation per token vs the
//! KV cache, and a GRPO group sampled from one prefill. Timings are medians over repeats; nothing here is a test.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;

use crate::prompt::load_prompt;
use repic_models::{
    Checkpoint, DefaultBackend as Backend, GenerateOptions, SamplingOptions, VlInput, default_device as device,
    generate, generate_group,
};

/// Arguments of `repic bench`.
#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint folder.
    #[arg(long)]
    model: PathBuf,
    /// Images of the prompt (repeat for several).
    #[arg(long = "image")]
    images: Vec<PathBuf>,
    /// The user's text.
    #[arg(long, default_value = "Describe the image in detail.")]
    prompt: String,
    /// Tokens to generate per run (no early stop).
    #[arg(long, default_value_t = 32)]
    new_tokens: usize,
    /// Group size for the grouped run.
    #[arg(long, default_value_t = 8)]
    group: usize,
    /// Repeats per measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time(repeats: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let mut t = Vec::with_capacity(repeats);
    for _ in 0..repeats.max(1) {
        let start = Instant::now();
        f()?;
        t.push(start.elapsed().as_secs_f64());
    }
    Ok(median(t))
}

/// Greedy decoding by rerunning the model over the whole sequence for every token (the no-cache baseline).
fn recompute(ckpt: &Checkpoint<Backend>, input: &VlInput, n: usize) -> anyhow::Result<()> {
    let dev = device();
    let mut cur = input.clone();
    for _ in 0..n {
        let logits = ckpt.model.logits(&cur, &ckpt.cfg, &dev)?;
        let t = logits.dims()[0];
        let next = logits.narrow(0, t - 1, 1).argmax(1).into_scalar();
        cur.ids.push(u32::try_from(next as i64).context("token id")?);
    }
    Ok(())
}

/// Run `repic bench`.
pub fn run(a: Args) -> anyhow::Result<()> {
    let dev = device();
    let (ckpt, prepared) = load_prompt(&a.model, &a.images, None, a.prompt.clone())?;
    let input = &prepared.input;
    let n = a.new_tokens;
    let greedy = GenerateOptions { max_new_tokens: n, ..Default::default() };
    let sampled = GenerateOptions {
        max_new_tokens: n,
        sampling: SamplingOptions { temperature: 1.0, ..Default::default() },
        ..Default::default()
    };
    let prefill = GenerateOptions { max_new_tokens: 1, ..Default::default() };
    let t_prefill = time(a.repeats, || Ok(generate(&ckpt.model, &ckpt.cfg, input, &prefill, &dev).map(drop)?))?;
    let t_full = time(a.repeats, || recompute(&ckpt, input, n))?;
    let t_cache = time(a.repeats, || Ok(generate(&ckpt.model, &ckpt.cfg, input, &greedy, &dev).map(drop)?))?;
    let t_group =
        time(a.repeats, || Ok(generate_group(&ckpt.model, &ckpt.cfg, input, a.group, &sampled, &dev).map(drop)?))?;
    println!(
        "prompt: {} tokens, {} image(s); {n} new tokens; median of {} runs",
        input.ids.len(),
        a.images.len(),
        a.repeats
    );
    println!("{:<38} {:>10} {:>12}", "run", "seconds", "tokens/s");
    let row = |name: &str, secs: f64, toks: usize| println!("{name:<38} {secs:>10.3} {:>12.1}", toks as f64 / secs);
    row("prefill + 1 token", t_prefill, 1);
    row("greedy, full recomputation per token", t_full, n);
    row("greedy, KV cache", t_cache, n);
    row(&format!("group of {} sampled, shared prefill", a.group), t_group, n * a.group);
    Ok(())
}
