//! `repic demo`: the whole method on this CPU in minutes. Synthetic concepts (`repic synth`), a byte-level BPE
//! tokenizer trained on their text, a tiny Qwen2-VL from scratch, an SFT warm start on half of the records, an
//! evaluation, GRPO with RePIC's rewards (configs/demo.toml), the same evaluation again, and a table of
//! SFT-only vs SFT+GRPO on held-out queries (also `summary.json`).

pub(crate) mod personalize;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use burn::backend::Autodiff;
use burn::tensor::backend::Backend as _;
use repic_data::synth::{SynthConfig, TaskMix, generate};
use repic_data::{ConceptDb, RecordFormat, load_records, save_records};
use repic_models::{Checkpoint, DefaultBackend as Backend, TinySpec, create_tiny_checkpoint, default_device};
use repic_trainer::TrainConfig;

use crate::train::StepBar;
use repic_eval::held_out::{self, HeldOut, ROWS, evaluate_held_out};
use repic_eval::paired::PairedChange;

/// The demo's GRPO config; paths are filled in at run time.
pub(crate) const DEMO_TOML: &str = include_str!("../../../configs/demo.toml");

/// Arguments of `repic demo`.
#[derive(clap::Args)]
pub struct Args {
    /// Output folder (data, models, logs, summary.json).
    #[arg(long, default_value = "repic-demo")]
    out: PathBuf,
    /// A smaller run (about 3 minutes here) that checks every stage; its numbers are not meaningful.
    #[arg(long)]
    quick: bool,
    /// Seed of data, weights and training.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Replace an existing output folder.
    #[arg(long)]
    force: bool,
    /// Training records to generate (default: 960; 48 with --quick).
    #[arg(long)]
    records: Option<usize>,
    /// Epochs of the look warm-up (default: 16; 1 with --quick).
    #[arg(long)]
    look_epochs: Option<usize>,
    /// SFT epochs over the first half of the records (default: 6; 2 with --quick).
    #[arg(long)]
    sft_epochs: Option<usize>,
    /// GRPO optimizer steps (default: 400; 4 with --quick).
    #[arg(long)]
    grpo_steps: Option<usize>,
    /// Task shares of the training records (as `repic synth --mix`; default oct=0.45,vlt=0.1,ict=0.2,ict_multi=0.25).
    #[arg(long, value_parser = TaskMix::parse)]
    mix: Option<TaskMix>,
    /// Keep the data and the SFT model of an earlier run in --out and redo only the evaluation, GRPO and the
    /// table (for tuning the GRPO phase; the data and SFT options are then ignored).
    #[arg(long, conflicts_with = "force")]
    reuse_sft: bool,
    /// Also mix the look warm-up records into the RePIC SFT (not only before it).
    #[arg(long)]
    look_in_sft: bool,
    /// Look records show a random concept's reference image before the object (`repic synth --look-reference`).
    #[arg(long)]
    look_reference: bool,
    /// Override a key of the GRPO config (configs/demo.toml), as `repic train --set`; repeatable.
    #[arg(long = "grpo-set", value_name = "KEY=VALUE")]
    grpo_set: Vec<String>,
}

/// Sizes of a demo run.
pub(crate) struct Plan {
    synth: SynthConfig,
    look_epochs: usize,
    sft_epochs: usize,
    pub(crate) grpo_steps: usize,
}

impl Plan {
    pub(crate) fn new(quick: bool, seed: u64) -> Self {
        let synth = SynthConfig {
            seed,
            concepts: if quick { 6 } else { 8 },
            refs_per_concept: 1,
            train_records: if quick { 48 } else { 960 },
            // Held-out sets are cheap to evaluate (about 20 s per model at these sizes) and do not change the
            // training data: 384 OCT records and 672 caption names keep each figure's standard error near 2.
            eval_records: if quick { 4 } else { 384 },
            eval_queries: if quick { 2 } else { 96 },
            scene_size: 112,
            ref_size: 56,
            max_distractors: 1,
            // More OCT and fewer VLT records than RePIC's mix: the tiny model learns recognition from scratch.
            mix: TaskMix { oct: 0.45, vlt: 0.1, ict: 0.2, ict_multi: 0.25 },
            // Recognition by body colour on flat grey: what a model trained from scratch in minutes can learn.
            distinct_colours: true,
            plain_background: true,
            // Reading one object is learnt long before searching a scene for one (docs/demo-notes.md).
            oct_single_object: true,
            look_records: if quick { 16 } else { 420 },
            look_reference: false,
        };
        Plan {
            synth,
            // 16 epochs: at 8 the look loss still falls and the seeds read 56-73 of 96 held-out colours.
            look_epochs: if quick { 1 } else { 16 },
            sft_epochs: if quick { 2 } else { 6 },
            grpo_steps: if quick { 4 } else { 400 },
        }
    }

    /// The plan of `repic demo` with its options applied.
    fn from_args(a: &Args) -> Self {
        let mut plan = Plan::new(a.quick, a.seed);
        if let Some(n) = a.records {
            plan.synth.train_records = n;
        }
        if let Some(m) = &a.mix {
            plan.synth.mix = m.clone();
        }
        plan.synth.look_reference = a.look_reference;
        plan.look_epochs = a.look_epochs.unwrap_or(plan.look_epochs);
        plan.sft_epochs = a.sft_epochs.unwrap_or(plan.sft_epochs);
        plan.grpo_steps = a.grpo_steps.unwrap_or(plan.grpo_steps);
        plan
    }
}

/// Every text the model will read or write: the tokenizer's training corpus.
fn corpus(data: &Path) -> anyhow::Result<Vec<String>> {
    let mut texts = Vec::new();
    for f in ["train/records.jsonl", "eval/records.jsonl", "train/look_records.jsonl"] {
        for r in load_records(&data.join(f))? {
            texts.push(r.problem.clone());
            texts.push(repic_trainer::sft::sft_answer(&r));
        }
    }
    let db = ConceptDb::load(&data.join("database_rap.json"))?;
    for (key, c) in &db.concept_dict {
        texts.push(format!("1. Name: {key}, Info: {}", c.info.as_text()));
    }
    texts.push(repic_data::CAPTION_SYSTEM.into());
    texts.push(format!("This is the query image. {}", held_out::QUESTION));
    texts.push(repic_models::tiny::TEMPLATE_WORDS.into());
    Ok(texts)
}

fn config(extra: &[String]) -> anyhow::Result<TrainConfig> {
    Ok(TrainConfig::parse(DEMO_TOML, Path::new("configs/demo.toml"), extra)?)
}

pub(crate) fn path_value(p: &Path) -> String {
    format!("{:?}", p.to_string_lossy())
}

pub(crate) fn train(cfg: TrainConfig, label: &str) -> anyhow::Result<PathBuf> {
    let t = &cfg.train;
    if t.max_steps > 0 {
        tracing::info!("{label}: {} steps", t.max_steps);
    } else {
        tracing::info!("{label}: {} epochs", t.num_train_epochs);
    }
    let mut bar = StepBar::new();
    let out =
        repic_trainer::train::<Autodiff<Backend>>(cfg, false, default_device(), &mut |m, s, t| bar.update(m, s, t))?;
    bar.finish();
    Ok(out.checkpoint)
}

/// Full supervised fine-tuning of `model` on `records` (vision tower included: it starts random); returns the
/// trained model's folder.
fn sft(model: &Path, out: &Path, records: &Path, data: &Path, epochs: usize, seed: u64) -> anyhow::Result<PathBuf> {
    let cfg = config(&[
        "mode=\"sft\"".into(),
        "finetune=\"full\"".into(),
        "freeze_vision=false".into(),
        format!("seed={seed}"),
        format!("model={}", path_value(model)),
        format!("output_dir={}", path_value(out)),
        format!("data.train={}", path_value(records)),
        format!("data.image_root={}", path_value(data)),
        "optim.learning_rate=3e-3".into(),
        "optim.lr_scheduler_type=\"linear\"".into(),
        "optim.warmup_ratio=0.05".into(),
        // Small batches and a short second-moment memory (beta2 0.95): reading the image is learnt in a sudden
        // transition after many steps, and Adam's default 0.999 delays it (measured, docs/demo-notes.md).
        "train.prompts_per_step=4".into(),
        "optim.adam_beta2=0.95".into(),
        "train.max_steps=0".into(),
        format!("train.num_train_epochs={epochs}"),
    ])?;
    let label = format!("SFT {}", out.file_name().unwrap_or_default().to_string_lossy());
    Ok(train(cfg, &label)?.join("model"))
}

/// Steps 1-3: data, tokenizer and model, SFT warm start; returns the SFT model's folder.
fn prepare(a: &Args, plan: &Plan, data: &Path, dev: &burn::tensor::Device<Backend>) -> anyhow::Result<PathBuf> {
    if a.out.exists() {
        if !a.force {
            bail!("{} exists; pass --force to replace it or choose another --out", a.out.display());
        }
        std::fs::remove_dir_all(&a.out).with_context(|| format!("removing {}", a.out.display()))?;
    }
    warm_start(&a.out, plan, data, a.seed, a.look_in_sft, dev)
}

/// Steps 1-3 into `out`: data (in `data`), tokenizer and model, SFT warm start; returns the SFT model's folder.
pub(crate) fn warm_start(
    out: &Path,
    plan: &Plan,
    data: &Path,
    seed: u64,
    look_in_sft: bool,
    dev: &burn::tensor::Device<Backend>,
) -> anyhow::Result<PathBuf> {
    tracing::info!("1/6 synthetic concepts and records -> {}", data.display());
    generate(&plan.synth, data, false, &mut |_| {})?;
    // SFT warm start on the first half of the records; GRPO sees all of them.
    let records = load_records(&data.join("train/records.jsonl"))?;
    let sft_records = out.join("sft_records.jsonl");
    let mut sft_set = records[..records.len() / 2].to_vec();
    if look_in_sft {
        sft_set.extend(load_records(&data.join("train/look_records.jsonl"))?);
    }
    save_records(&sft_records, &sft_set, RecordFormat::Jsonl)?;
    tracing::info!("2/6 tokenizer and tiny Qwen2-VL from scratch");
    let init = out.join("model-init");
    let spec = TinySpec::default();
    create_tiny_checkpoint::<Backend>(&corpus(data)?, &spec, &init, false, dev)?;
    tracing::info!("3/6 SFT warm start: seeing one object, then the RePIC tasks");
    let seen = sft(&init, &out.join("look"), &data.join("train/look_records.jsonl"), data, plan.look_epochs, seed)?;
    sft(&seen, &out.join("sft"), &sft_records, data, plan.sft_epochs, seed)
}

/// The SFT model of an earlier demo run in `out` (`--reuse-sft`).
pub(crate) fn reused_sft(out: &Path) -> anyhow::Result<PathBuf> {
    let (_, dir) = repic_trainer::checkpoint::list_checkpoints(&out.join("sft"))
        .pop()
        .with_context(|| format!("--reuse-sft: no SFT checkpoint in {}", out.join("sft").display()))?;
    tracing::info!("reusing the data and the SFT model {} (steps 1-3 skipped)", dir.display());
    Ok(dir.join("model"))
}

/// Run `repic demo`.
pub fn run(a: Args) -> anyhow::Result<()> {
    let start = Instant::now();
    let dev = default_device();
    Backend::seed(&dev, a.seed);
    let data = a.out.join("data");
    let plan = Plan::from_args(&a);
    let sft_model = if a.reuse_sft { reused_sft(&a.out)? } else { prepare(&a, &plan, &data, &dev)? };
    tracing::info!("4/6 evaluating the SFT model");
    let sft_ckpt = Checkpoint::<Backend>::load(&sft_model, &dev)?;
    let sft = evaluate_held_out(&sft_ckpt, &data, &a.out.join("captions_sft.json"), &dev)?;
    drop(sft_ckpt);
    tracing::info!("5/6 GRPO with RePIC's rewards");
    let grpo_out = a.out.join("grpo");
    let grpo_cfg = config(
        &[
            format!("seed={}", a.seed),
            format!("model={}", path_value(&sft_model)),
            format!("output_dir={}", path_value(&grpo_out)),
            format!("data.train={}", path_value(&data.join("train/records.jsonl"))),
            format!("data.image_root={}", path_value(&data)),
            format!("train.max_steps={}", plan.grpo_steps),
        ]
        .into_iter()
        .chain(a.grpo_set.iter().cloned())
        .collect::<Vec<_>>(),
    )?;
    if grpo_out.exists() {
        std::fs::remove_dir_all(&grpo_out).with_context(|| format!("removing {}", grpo_out.display()))?;
    }
    let trained = train(grpo_cfg, "GRPO")?;
    tracing::info!("6/6 evaluating the GRPO model");
    // The checkpoint folder holds the full model or the adapter (on the run's model, the SFT one).
    let grpo_ckpt = crate::prompt::load_model(&trained, None)?;
    let grpo = evaluate_held_out(&grpo_ckpt, &data, &a.out.join("captions_grpo.json"), &dev)?;
    report(&a.out, &sft, &grpo, start.elapsed().as_secs_f64())?;
    let personal = personalize::run_stage(&a.out, &data, &grpo_ckpt, a.quick, a.seed)?;
    add_to_summary(&a.out, "personalize", personal, start.elapsed().as_secs_f64())?;
    Ok(())
}

/// Add a later stage's figures under `key` to `summary.json`, with the run's seconds so far.
fn add_to_summary(out: &Path, key: &str, value: serde_json::Value, seconds: f64) -> anyhow::Result<()> {
    let path = out.join("summary.json");
    let mut summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    summary[key] = value;
    summary["seconds"] = seconds.into();
    repic_data::write_atomic(&path, serde_json::to_string_pretty(&summary)?.as_bytes())?;
    println!("{seconds:.0} s in all; summary: {}", path.display());
    Ok(())
}

/// Print the table and write `summary.json`.
fn report(out: &Path, sft: &HeldOut, grpo: &HeldOut, seconds: f64) -> anyhow::Result<()> {
    let (sft_m, grpo_m) = (&sft.metrics, &grpo.metrics);
    println!();
    println!("{:<32} {:>10} {:>12}", "held-out metric", "SFT", "SFT+GRPO");
    for (key, label) in ROWS {
        println!("{label:<32} {:>10.1} {:>12.1}", sft_m.get(key), grpo_m.get(key));
    }
    // The same items judged for both models: what GRPO fixed and broke, and whether that split is chance.
    let oct = PairedChange::new(&sft.oct_correct, &grpo.oct_correct).map_err(anyhow::Error::msg)?;
    let names = PairedChange::new(&sft.names_recalled, &grpo.names_recalled).map_err(anyhow::Error::msg)?;
    for (what, c) in [("OCT answers", &oct), ("caption names recalled", &names)] {
        let p = repic_eval::ablation::p_text(c.p_value);
        println!("{what}, GRPO fixed / broke: {} / {} of {} (exact McNemar p = {p})", c.fixed, c.broken, c.items);
    }
    println!();
    println!("{:.0} s in all. TensorBoard: tensorboard --logdir {}", seconds, out.display());
    println!("plots: {} and {}", out.join("sft/training.png").display(), out.join("grpo/training.png").display());
    // Figures depend on the machine (SIMD width and cache-sized blocking change float sums): say which.
    let machine = crate::machine::Machine::here();
    println!("machine: {machine}");
    let summary = serde_json::json!({
        "sft": sft_m, "grpo": grpo_m, "oct_paired": oct, "recall_paired": names, "seconds": seconds,
        "machine": machine
    });
    let text = serde_json::to_string_pretty(&summary)?;
    repic_data::write_atomic(&out.join("summary.json"), text.as_bytes())?;
    println!("summary: {}", out.join("summary.json").display());
    Ok(())
}
