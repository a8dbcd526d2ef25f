//! `repic`: post-training and serving personalized multimodal models. This binary is the user's edge:
//! argument parsing, logging and progress; the work happens in the library crates.

mod ablate;
mod ask;
mod bench;
mod bench_retrieve;
mod bench_serve;
mod compare;
mod data_cmd;
mod db;
mod demo;
mod eval_cmd;
mod eval_store;
mod export;
mod generate;
mod machine;
mod plot;
mod prefer;
mod prompt;
mod recognize;
mod retrieve;
mod score;
mod serve;
mod synth;
mod train;

use clap::{Parser, Subcommand};

/// repic: RL post-training of multimodal LMs for personalization (RePIC), and the tools around it.
#[derive(Parser)]
#[command(name = "repic", version, about, long_about = None)]
struct Cli {
    /// Log filter (also read from RUST_LOG), e.g. `info`, `repic=debug`.
    #[arg(long, global = true, default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a synthetic personalization data set (concepts, scenes, RePIC records, database, queries).
    Synth(synth::Args),
    /// Score a captioning result file: precision, recall and F1 of concept mentions (RePIC's scorer).
    Score(score::Args),
    /// Generate text with a Qwen2-VL / Qwen2.5-VL checkpoint from images and a prompt.
    Generate(generate::Args),
    /// Write a checkpoint back as a Hugging Face folder (loads in transformers).
    Export(export::Args),
    /// Measure throughput on this machine (`repic bench generate`).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// The whole method on this CPU: synthetic concepts, a tiny model, SFT, GRPO, and a before/after table.
    Demo(demo::Args),
    /// Post-train a checkpoint with GRPO (RePIC rewards) or SFT from a TOML config.
    Train(train::Args),
    /// Score a checkpoint's greedy answers to RePIC records with the training rewards (per-task accuracy).
    Eval(eval_cmd::Args),
    /// Compare two models' answers to the same records (`repic eval --out` files): per task, what the second
    /// fixed and broke, with the exact McNemar p.
    Compare(compare::Args),
    /// Reward ablations at the demo's scale: every variant x seed trained from a shared warm start, evaluated,
    /// reported as tables (mean ± std, paired differences with McNemar p) and bar charts; resumable.
    Ablate(ablate::Args),
    /// Redraw a training run's plot (rewards, KL and loss over steps) from its metrics.jsonl.
    Plot(plot::Args),
    /// The concept store: create, import/export database.json, add, edit, remove, list, embed.
    #[command(subcommand)]
    Db(db::DbCommand),
    /// Answer a question about an image with the concepts of a store (RAP retrieval + RePIC's prompt).
    Ask(ask::Args),
    /// Which concept of a store is in an image (R2P: shortlist, reasoning, verification, pairwise), with its trace.
    Recognize(recognize::Args),
    /// PreferThinker: which of two images a user prefers, from images they like and dislike.
    Prefer(prefer::Args),
    /// Serve the model behind an OpenAI-compatible API (/v1/chat/completions, /v1/models) with continuous
    /// batching.
    Serve(serve::Args),
    /// Retrieve concepts for a query image and text (RAP: names first, then nearest images; or R2P).
    Retrieve(retrieve::Args),
    /// Inspect and convert RePIC record files.
    #[command(subcommand)]
    Data(data_cmd::DataCommand),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&cli.log))?;
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
    match cli.command {
        Command::Synth(a) => synth::run(a),
        Command::Score(a) => score::run(a),
        Command::Data(c) => data_cmd::run(c),
        Command::Db(c) => db::run(c),
        Command::Retrieve(a) => retrieve::run(a),
        Command::Ask(a) => ask::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Prefer(a) => prefer::run(a),
        Command::Recognize(a) => recognize::run(a),
        Command::Generate(a) => generate::run(a),
        Command::Export(a) => export::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Train(a) => train::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Plot(a) => plot::run(a),
        Command::Eval(a) => eval_cmd::run(a),
        Command::Compare(a) => compare::run(a),
        Command::Ablate(a) => ablate::run(a),
    }
}
