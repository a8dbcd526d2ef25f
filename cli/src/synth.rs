//! `repic synth`: write a synthetic personalization data set.

use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use repic_data::synth::{SynthConfig, TaskMix, generate, total_images};

/// Arguments of `repic synth`.
#[derive(clap::Args)]
pub struct Args {
    /// Output folder (must not exist unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Seed: the same seed and options give byte-identical output.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Number of personal concepts (4 to 175).
    #[arg(long, default_value_t = 12)]
    concepts: usize,
    /// Reference images per concept.
    #[arg(long, default_value_t = 2)]
    refs: usize,
    /// Training records (tasks drawn by --mix).
    #[arg(long, default_value_t = 240)]
    records: usize,
    /// Held-out records per task (OCT, VLT, ICT, multi ICT).
    #[arg(long, default_value_t = 20)]
    eval_records: usize,
    /// Held-out captioning queries per split (1, 2 and 4 concepts).
    #[arg(long, default_value_t = 20)]
    eval_queries: usize,
    /// Side of query scenes in pixels (multiples of 28 keep boxes exact for Qwen-VL).
    #[arg(long, default_value_t = 224)]
    scene_size: u32,
    /// Side of reference images in pixels.
    #[arg(long, default_value_t = 112)]
    ref_size: u32,
    /// Most distractor objects per scene.
    #[arg(long, default_value_t = 2)]
    max_distractors: usize,
    /// Task shares, e.g. `oct=0.345,vlt=0.345,ict=0.263,ict_multi=0.047` (RePIC's mix, the default).
    #[arg(long, value_parser = TaskMix::parse)]
    mix: Option<TaskMix>,
    /// Give every concept its own body colour and distractors the colours no concept has (recognition by colour
    /// alone; at most 10 concepts).
    #[arg(long)]
    distinct_colours: bool,
    /// Flat grey backgrounds at one brightness (no gradients, noise or lighting changes).
    #[arg(long)]
    plain_background: bool,
    /// OCT scenes show one object (the concept, or another concept when the answer is no) and no distractors.
    #[arg(long)]
    oct_single_object: bool,
    /// Also write this many one-object "is it <colour>?" warm-up records (train/look_records.jsonl, plus
    /// --eval-records held out in eval/look_records.jsonl).
    #[arg(long, default_value_t = 0)]
    look_records: usize,
    /// Look records show a random concept's reference image first and ask about the second image.
    #[arg(long, requires = "look_records")]
    look_reference: bool,
    /// Replace an existing output folder.
    #[arg(long)]
    force: bool,
}

/// Run `repic synth`.
pub fn run(a: Args) -> anyhow::Result<()> {
    let cfg = SynthConfig {
        seed: a.seed,
        concepts: a.concepts,
        refs_per_concept: a.refs,
        train_records: a.records,
        eval_records: a.eval_records,
        eval_queries: a.eval_queries,
        scene_size: a.scene_size,
        ref_size: a.ref_size,
        max_distractors: a.max_distractors,
        mix: a.mix.unwrap_or_default(),
        distinct_colours: a.distinct_colours,
        plain_background: a.plain_background,
        oct_single_object: a.oct_single_object,
        look_records: a.look_records,
        look_reference: a.look_reference,
    };
    let bar = ProgressBar::new(total_images(&cfg) as u64);
    bar.set_style(ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} images ({elapsed})")?);
    bar.set_message("rendering");
    let manifest = generate(&cfg, &a.out, a.force, &mut |n| bar.set_position(n as u64))
        .with_context(|| format!("repic synth --out {}", a.out.display()))?;
    bar.finish_and_clear();
    tracing::info!(out = %a.out.display(), files = manifest.files.len(), "wrote synthetic data set");
    for (k, v) in &manifest.counts {
        println!("{k:>22}: {v}");
    }
    Ok(())
}
