//! Where a model to run comes from: a Hugging Face folder, a PEFT adapter folder (its base named in
//! `adapter_config.json`), a run's `checkpoint-N/` (full model or adapter; an adapter's base is the run's
//! `model`), or a run folder (its newest complete checkpoint). Every command that takes `--model` resolves it
//! here, with `--adapter` for an explicit adapter.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use repic_models::{Checkpoint, load_peft};

use crate::TrainError;
use crate::checkpoint::list_checkpoints;

/// A base model folder and the adapter to put on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelSource {
    /// A Hugging Face Qwen2-VL / Qwen2.5-VL folder.
    pub base: PathBuf,
    /// A PEFT adapter folder for it.
    pub adapter: Option<PathBuf>,
}

fn bad(path: &Path, msg: impl Into<String>) -> TrainError {
    TrainError::Config { path: path.into(), msg: msg.into() }
}

impl ModelSource {
    /// Resolve `--model` (and an explicit `--adapter`).
    pub fn resolve(model: &Path, adapter: Option<&Path>) -> Result<Self, TrainError> {
        let found = Self::from_path(model)?;
        match adapter {
            None => Ok(found),
            Some(_) if found.adapter.is_some() => {
                Err(bad(model, "already holds an adapter; pass its base model as --model to use another adapter"))
            }
            Some(a) => {
                if !a.join("adapter_config.json").is_file() {
                    return Err(bad(a, "is not a PEFT adapter folder (no adapter_config.json)"));
                }
                Ok(ModelSource { base: found.base, adapter: Some(a.into()) })
            }
        }
    }

    fn from_path(path: &Path) -> Result<Self, TrainError> {
        if path.join("config.json").is_file() {
            return Ok(ModelSource { base: path.into(), adapter: None });
        }
        if path.join("adapter_config.json").is_file() {
            return Ok(ModelSource { base: adapter_base(path, None)?, adapter: Some(path.into()) });
        }
        if path.join("trainer_state.json").is_file() {
            if path.join("model/config.json").is_file() {
                return Ok(ModelSource { base: path.join("model"), adapter: None });
            }
            let adapter = path.join("adapter");
            if adapter.join("adapter_config.json").is_file() {
                return Ok(ModelSource { base: adapter_base(&adapter, Some(path))?, adapter: Some(adapter) });
            }
            return Err(bad(path, "is a checkpoint without model/ or adapter/"));
        }
        if let Some((_, newest)) = list_checkpoints(path).pop() {
            return Self::from_path(&newest);
        }
        Err(bad(
            path,
            "is not a model folder (config.json), a PEFT adapter (adapter_config.json), a checkpoint \
             (trainer_state.json) or a run folder (checkpoint-N/)",
        ))
    }

    /// Load the base and put the adapter on it (its shapes checked against the base).
    pub fn load<B: Backend>(&self, device: &B::Device) -> Result<Checkpoint<B>, TrainError> {
        let mut ckpt = Checkpoint::<B>::load(&self.base, device)?;
        if let Some(a) = &self.adapter {
            load_peft(&mut ckpt.model, a, device)?;
        }
        Ok(ckpt)
    }
}

/// The base model of a PEFT folder: for a run's checkpoint, the `model` of the run's resolved config
/// (`checkpoint/config.toml`); else `base_model_name_or_path`, as a folder (as given, or below a folder above
/// the adapter).
fn adapter_base(adapter: &Path, checkpoint: Option<&Path>) -> Result<PathBuf, TrainError> {
    if let Some(cfg) = checkpoint.map(|c| c.join("config.toml")).filter(|c| c.is_file()) {
        let model = crate::TrainConfig::load(&cfg, &[])?.model;
        if model.join("config.json").is_file() {
            return Ok(model);
        }
        return Err(bad(
            &cfg,
            format!(
                "the run's model {} is not a model folder here; pass --model BASE --adapter {}",
                model.display(),
                adapter.display()
            ),
        ));
    }
    let path = adapter.join("adapter_config.json");
    let src = std::fs::read_to_string(&path).map_err(|e| TrainError::Io { path: path.clone(), source: e })?;
    let v: serde_json::Value = serde_json::from_str(&src).map_err(|e| bad(&path, e.to_string()))?;
    let name = v.get("base_model_name_or_path").and_then(|x| x.as_str()).unwrap_or_default();
    // PEFT writes what its user passed: a Hub id, or a path relative to where they ran it. Try it as given, then
    // below each folder above the adapter (a project checkout that holds both).
    let base = PathBuf::from(name);
    let candidates = std::iter::once(base.clone()).chain(adapter.ancestors().skip(1).map(|a| a.join(&base)));
    if let Some(found) = candidates.take(16).find(|c| !name.is_empty() && c.join("config.json").is_file()) {
        return Ok(found);
    }
    Err(bad(
        &path,
        format!(
            "base_model_name_or_path `{name}` is not a model folder here (no downloads); pass --model BASE --adapter {}",
            adapter.display()
        ),
    ))
}
