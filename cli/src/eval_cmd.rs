//! `repic eval`: greedy answers of a checkpoint (optionally with a PEFT adapter) to RePIC-format records, scored
//! with the training rewards: per task the mean of each reward function and the share of records solved.

use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::tensor::backend::Backend;
use indexmap::IndexMap;
use repic_data::{PromptBuilder, Record, load_records};
use repic_eval::runner::generate_greedy;
use repic_models::{Checkpoint, DefaultBackend, Generation, default_device};
use repic_rewards::{RewardConfig, RewardSet, Sample};
use repic_trainer::TrainConfig;
use serde::Serialize;

/// Arguments of `repic eval`.
#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint folder (Hugging Face layout).
    #[arg(long)]
    model: PathBuf,
    /// A PEFT LoRA adapter folder to load on top of the checkpoint.
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// Records (RePIC JSON / JSONL).
    #[arg(long)]
    records: PathBuf,
    /// Folder the records' image paths are relative to (default: the records file's folder).
    #[arg(long)]
    image_root: Option<PathBuf>,
    /// A training config whose [rewards] table scores the answers (default: the full RePIC set).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Evaluate only the first N records.
    #[arg(long)]
    limit: Option<usize>,
    /// Prompts decoded together.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Most tokens per answer.
    #[arg(long, default_value_t = 64)]
    max_new_tokens: usize,
    /// Seed of the prompts' random task suffixes.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write every answer with its scores here (JSONL).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// The figures of one task.
#[derive(Clone, Debug, Default, Serialize)]
struct TaskSummary {
    records: usize,
    /// Records whose every applicable reward is 1.
    solved: usize,
    /// Mean score per reward function (only functions that apply to the task).
    rewards: IndexMap<String, f64>,
}

/// What [`answer_records`] returns, one entry per record.
pub struct Answers {
    /// The greedy generations.
    pub gens: Vec<Generation>,
    /// Width and height of the query image as the model saw it.
    pub sizes: Vec<Option<(u32, u32)>>,
}

/// Greedy answers of `ckpt` to every record, each with its training prompt (random task suffix from `seed`
/// and the record's index, images under `image_root`), decoded `batch` at a time; also the size of each
/// record's query image as the model saw it (for box rewards).
pub fn answer_records<B: Backend>(
    ckpt: &Checkpoint<B>,
    records: &[Record],
    image_root: &Path,
    seed: u64,
    max_new_tokens: usize,
    batch: usize,
    device: &B::Device,
) -> anyhow::Result<Answers> {
    let builder = PromptBuilder::new(seed);
    let mut inputs = Vec::with_capacity(records.len());
    let mut sizes = Vec::with_capacity(records.len());
    for i in 0..records.len() {
        let p = repic_trainer::rollout::prepare(ckpt, records, i, i as u64, &builder, image_root)?;
        sizes.push(p.image_size);
        inputs.push(p.input);
    }
    let gens = generate_greedy(&ckpt.engine(device), &inputs, &ckpt.stop_tokens, max_new_tokens, batch)?;
    Ok(Answers { gens, sizes })
}

/// Run `repic eval`.
pub fn run(a: Args) -> anyhow::Result<()> {
    let reward_cfg = match &a.config {
        Some(p) => TrainConfig::load(p, &[])?.rewards,
        None => RewardConfig::default(),
    };
    let rewards = RewardSet::from_config(&reward_cfg)?;
    let mut records = load_records(&a.records)?;
    records.truncate(a.limit.unwrap_or(records.len()));
    let root = match a.image_root {
        Some(r) => r,
        None => a.records.parent().map(PathBuf::from).unwrap_or_default(),
    };
    let dev = default_device();
    let mut ckpt = Checkpoint::<DefaultBackend>::load(&a.model, &dev)?;
    if let Some(adapter) = &a.adapter {
        repic_models::load_peft(&mut ckpt.model, adapter, &dev)
            .with_context(|| format!("loading the adapter {}", adapter.display()))?;
    }
    let Answers { gens, sizes } = answer_records(&ckpt, &records, &root, a.seed, a.max_new_tokens, a.batch, &dev)
        .with_context(|| format!("{}", a.records.display()))?;
    let names = rewards.names();
    let mut tasks: IndexMap<String, TaskSummary> = IndexMap::new();
    let mut lines = String::new();
    for (i, ((r, g), size)) in records.iter().zip(&gens).zip(&sizes).enumerate() {
        let sample = Sample {
            method: r.method,
            solution: &r.solution,
            image_size: *size,
            completion_tokens: Some(g.tokens.len()),
        };
        let score = rewards.score(&g.text, &sample).with_context(|| format!("record {i}"))?;
        let t = tasks.entry(r.method.to_string()).or_default();
        t.records += 1;
        t.solved += usize::from(score.per_fn.iter().flatten().all(|&s| s >= 1.0));
        for (name, s) in names.iter().zip(&score.per_fn) {
            if let Some(s) = s {
                *t.rewards.entry((*name).to_string()).or_default() += f64::from(*s);
            }
        }
        if a.out.is_some() {
            let row = serde_json::json!({"index": i, "method": r.method.to_string(), "completion": g.text,
                "reward": score.total, "rewards": names.iter().zip(&score.per_fn).collect::<IndexMap<_, _>>()});
            lines.push_str(&row.to_string());
            lines.push('\n');
        }
    }
    for t in tasks.values_mut() {
        t.rewards.values_mut().for_each(|v| *v /= t.records as f64);
    }
    if let Some(out) = &a.out {
        repic_data::write_atomic(out, lines.as_bytes())?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&tasks)?);
        return Ok(());
    }
    println!("{:<16} {:>8} {:>9}  mean rewards", "task", "records", "solved %");
    for (task, t) in &tasks {
        let solved = 100.0 * t.solved as f64 / t.records.max(1) as f64;
        let means: Vec<String> = t.rewards.iter().map(|(k, v)| format!("{k} {v:.3}")).collect();
        println!("{task:<16} {:>8} {solved:>9.1}  {}", t.records, means.join(", "));
    }
    Ok(())
}
