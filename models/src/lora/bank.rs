//! Several adapters for one base model in one process, loaded once and switched by name: the engine facility a
//! server needs to answer each request with its own adapter. Switching builds a model view that shares the base
//! weights and the adapter weights (no copy), so switching back gives bit-identical outputs.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::backend::Backend;

use super::peft::load_peft;
use super::{Lora, LoraConfig};
use crate::{ModelError, QwenVl};

/// One loaded PEFT folder: its settings and an adapter per layer name.
type AdapterSet<B> = (LoraConfig, Vec<(String, Lora<B>)>);

/// Named sets of adapters (PEFT folders) for one base model.
#[derive(Debug, Default)]
pub struct AdapterBank<B: Backend> {
    sets: BTreeMap<String, AdapterSet<B>>,
}

impl<B: Backend> AdapterBank<B> {
    /// An empty bank.
    pub fn new() -> Self {
        AdapterBank { sets: BTreeMap::new() }
    }

    /// Load the PEFT folder `dir` as adapter `name` for `base` (its shapes are checked against it); replaces an
    /// adapter of that name.
    pub fn load(&mut self, name: &str, dir: &Path, base: &QwenVl<B>, device: &B::Device) -> Result<(), ModelError> {
        let mut model = base.without_lora();
        let cfg = load_peft(&mut model, dir, device)?;
        let layers = model.adapters().into_iter().map(|(n, l)| (n, l.clone())).collect();
        self.sets.insert(name.to_string(), (cfg, layers));
        Ok(())
    }

    /// Forget adapter `name`; whether it was there.
    pub fn unload(&mut self, name: &str) -> bool {
        self.sets.remove(name).is_some()
    }

    /// The loaded adapters' names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.sets.keys().map(String::as_str).collect()
    }

    /// The LoRA settings of adapter `name`.
    pub fn config(&self, name: &str) -> Option<&LoraConfig> {
        self.sets.get(name).map(|(c, _)| c)
    }

    /// `base` with adapter `name` on it (`None`: the base alone), sharing every weight with `base` and the bank.
    pub fn apply(&self, base: &QwenVl<B>, name: Option<&str>) -> Result<QwenVl<B>, ModelError> {
        let mut model = base.without_lora();
        if let Some(name) = name {
            let (_, layers) = self.sets.get(name).ok_or_else(|| {
                ModelError::Input(format!("no adapter named `{name}` (loaded: {})", self.names().join(", ")))
            })?;
            model.set_adapters(layers.clone())?;
        }
        Ok(model)
    }
}
