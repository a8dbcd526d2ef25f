//! Loading a checkpoint and turning command-line images and text into its model input (shared by
//! `repic generate` and `repic bench`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use repic_data::Message;
use repic_models::{Checkpoint, DefaultBackend as Backend, PreparedPrompt, default_device as device};

/// Load the checkpoint in `model` and prepare one user turn (`images` first, then `prompt`), after an optional
/// system message.
pub fn load_prompt(
    model: &Path,
    images: &[PathBuf],
    system: Option<String>,
    prompt: String,
) -> anyhow::Result<(Checkpoint<Backend>, PreparedPrompt)> {
    let ckpt = Checkpoint::<Backend>::load(model, &device()).with_context(|| format!("loading {}", model.display()))?;
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
