//! `repic eval`: greedy answers of a checkpoint (optionally with a PEFT adapter) to RePIC-format records, scored
//! with the training rewards (per task the mean of each reward function) and judged by repic-eval's rule of a
//! correct answer (the share correct).

use std::path::PathBuf;

use anyhow::Context;
use repic_data::load_records;
use repic_eval::records::score_answers;
use repic_eval::runner::{AnswerOptions, answer_records};
use repic_models::default_device;
use repic_rewards::{RewardConfig, RewardSet};
use repic_trainer::TrainConfig;

/// Arguments of `repic eval`: records (no subcommand), or a store-backed benchmark.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    /// A personalization benchmark with a concept store (without one: the records given by --records).
    #[command(subcommand)]
    task: Option<crate::eval_store::Task>,
    /// Model folder, PEFT adapter folder, a run's checkpoint-N/ or a run folder (its newest checkpoint).
    #[arg(long, required = true)]
    model: Option<PathBuf>,
    /// A PEFT LoRA adapter folder to load on top of the checkpoint.
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// Records (RePIC JSON / JSONL).
    #[arg(long, required = true)]
    records: Option<PathBuf>,
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

/// Run `repic eval`.
pub fn run(a: Args) -> anyhow::Result<()> {
    if let Some(task) = a.task {
        return crate::eval_store::run(task);
    }
    let (Some(model), Some(records_file)) = (a.model, a.records) else {
        anyhow::bail!("repic eval needs --model and --records (or a subcommand: caption, recognition, preference)");
    };
    let reward_cfg = match &a.config {
        Some(p) => TrainConfig::load(p, &[])?.rewards,
        None => RewardConfig::default(),
    };
    let rewards = RewardSet::from_config(&reward_cfg)?;
    let mut records = load_records(&records_file)?;
    records.truncate(a.limit.unwrap_or(records.len()));
    let root = match a.image_root {
        Some(r) => r,
        None => records_file.parent().map(PathBuf::from).unwrap_or_default(),
    };
    let dev = default_device();
    let ckpt = crate::prompt::load_model(&model, a.adapter.as_deref())?;
    let opts =
        AnswerOptions { seed: a.seed, max_new_tokens: a.max_new_tokens, batch: a.batch, repetition_penalty: 1.0 };
    let answers =
        answer_records(&ckpt, &records, &root, opts, &dev).with_context(|| format!("{}", records_file.display()))?;
    let report = score_answers(&records, &answers, &rewards).with_context(|| format!("{}", records_file.display()))?;
    if let Some(out) = &a.out {
        let mut lines = String::new();
        for row in &report.rows {
            lines.push_str(&serde_json::to_string(row)?);
            lines.push('\n');
        }
        repic_data::write_atomic(out, lines.as_bytes())?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report.tasks)?);
        return Ok(());
    }
    println!("{:<16} {:>8} {:>9}  mean rewards", "task", "records", "correct %");
    for (task, t) in &report.tasks {
        let means: Vec<String> = t.rewards.iter().map(|(k, v)| format!("{k} {v:.3}")).collect();
        println!("{task:<16} {:>8} {:>9.1}  {}", t.records, t.percent_correct(), means.join(", "));
    }
    Ok(())
}
