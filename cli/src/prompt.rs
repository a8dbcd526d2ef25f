//! Loading what `--model` / `--adapter` name and turning command-line images and text into model input (shared by
//! `repic generate`, `repic bench`, `repic eval`, `repic export`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use repic_data::Message;
use repic_models::{Checkpoint, DefaultBackend as Backend, PreparedPrompt, default_device as device};
use repic_trainer::ModelSource;

/// `--model` and `--adapter`, as every command that loads a model takes them.
#[derive(clap::Args)]
pub struct ModelArgs {
    /// Model folder, PEFT adapter folder, a run's checkpoint-N/ or a run folder (its newest checkpoint).
    #[arg(long)]
    pub model: PathBuf,
    /// A PEFT LoRA adapter folder to put on the model.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
}

impl ModelArgs {
    /// Load what they name.
    pub fn load(&self) -> anyhow::Result<Checkpoint<Backend>> {
        load_model(&self.model, self.adapter.as_deref())
    }
}

/// Load what `--model` (and `--adapter`) name: a model folder, a PEFT adapter, a run's checkpoint or a run.
pub fn load_model(model: &Path, adapter: Option<&Path>) -> anyhow::Result<Checkpoint<Backend>> {
    let source = ModelSource::resolve(model, adapter)?;
    if let Some(a) = &source.adapter {
        tracing::info!("base model {} with the adapter {}", source.base.display(), a.display());
    }
    source.load::<Backend>(&device()).with_context(|| format!("loading {}", model.display()))
}

/// Load `model` (a model folder, an adapter, a checkpoint or a run folder, and an adapter on top) and prepare one user
/// turn (`images` first, then `prompt`), after an optional system message.
pub fn load_prompt(
    model: &ModelArgs,
    images: &[PathBuf],
    system: Option<String>,
    prompt: String,
) -> anyhow::Result<(Checkpoint<Backend>, PreparedPrompt)> {
    let ckpt = model.load()?;
    let mut messages = Vec::new();
    if let Some(s) = system {
        messages.push(Message::system(s));
    }
    // Paths as given: relative ones resolve against the working directory.
    let paths = images.iter().map(|p| p.to_string_lossy().into_owned());
    messages.push(Message::user_with_images(paths, prompt));
    let prepared = ckpt.prepare(&messages, Path::new(""))?;
    Ok((ckpt, prepared))
}
