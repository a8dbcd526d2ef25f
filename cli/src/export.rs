//! `repic export`: write a model as a Hugging Face folder (f32 safetensors in the PyTorch layout plus the
//! source's config, tokenizer and processor files). With an adapter (`--adapter`, or a LoRA run's checkpoint as
//! `--model`) it is merged into the weights (PEFT's `merge_and_unload`), so transformers loads the result with no
//! PEFT; `--adapter-only` writes the PEFT folder alone, as it would be published.

use std::path::PathBuf;

use anyhow::Context;
use repic_models::save_qwen_vl;
use repic_trainer::ModelSource;

use crate::prompt::load_model;

/// Arguments of `repic export`.
#[derive(clap::Args)]
pub struct Args {
    /// Model folder, PEFT adapter folder, a run's checkpoint-N/ or a run folder (its newest checkpoint).
    #[arg(long)]
    model: PathBuf,
    /// A PEFT LoRA adapter folder to merge into the model.
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// Write the adapter alone (a PEFT folder) instead of the merged model.
    #[arg(long)]
    adapter_only: bool,
    /// Output folder (written into a staging folder, then renamed into place).
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing output folder.
    #[arg(long)]
    force: bool,
}

/// Run `repic export`.
pub fn run(a: Args) -> anyhow::Result<()> {
    let source = ModelSource::resolve(&a.model, a.adapter.as_deref())?;
    if a.adapter_only {
        let adapter =
            source.adapter.as_ref().with_context(|| format!("{} has no adapter to export", a.model.display()))?;
        // The files as trained, copied: a PEFT folder is already what PEFT and the Hub read.
        repic_models::hf::save::write_dir_atomically(&a.out, a.force, |stage| -> anyhow::Result<()> {
            for entry in std::fs::read_dir(adapter).with_context(|| format!("reading {}", adapter.display()))? {
                let entry = entry?;
                if entry.file_type()?.is_file() {
                    std::fs::copy(entry.path(), stage.join(entry.file_name()))
                        .with_context(|| format!("copying {}", entry.path().display()))?;
                }
            }
            Ok(())
        })
        .with_context(|| format!("writing {}", a.out.display()))?;
        tracing::info!(out = %a.out.display(), "adapter written");
        return Ok(());
    }
    let ckpt = load_model(&a.model, a.adapter.as_deref())?;
    let model = if source.adapter.is_some() { ckpt.model.merge_and_unload() } else { ckpt.model };
    save_qwen_vl(&model, &source.base, &a.out, a.force).with_context(|| format!("writing {}", a.out.display()))?;
    tracing::info!(out = %a.out.display(), merged = source.adapter.is_some(), "checkpoint written");
    Ok(())
}
