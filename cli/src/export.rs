//! `repic export`: load a Qwen2-VL / Qwen2.5-VL checkpoint and write it back as a Hugging Face folder
//! (f32 safetensors in the PyTorch layout plus the source's config, tokenizer and processor files).

use std::path::PathBuf;

use anyhow::Context;
use repic_models::{Checkpoint, DefaultBackend as Backend, default_device as device, save_qwen_vl};

/// Arguments of `repic export`.
#[derive(clap::Args)]
pub struct Args {
    /// Source checkpoint folder.
    #[arg(long)]
    model: PathBuf,
    /// Output folder (written into a staging folder, then renamed into place).
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing output folder.
    #[arg(long)]
    force: bool,
}

/// Run `repic export`.
pub fn run(a: Args) -> anyhow::Result<()> {
    let ckpt =
        Checkpoint::<Backend>::load(&a.model, &device()).with_context(|| format!("loading {}", a.model.display()))?;
    save_qwen_vl(&ckpt.model, &a.model, &a.out, a.force).with_context(|| format!("writing {}", a.out.display()))?;
    tracing::info!(out = %a.out.display(), "checkpoint written");
    Ok(())
}
