//! Training checkpoints (grpo.md): `output_dir/checkpoint-<step>/` holds the adapter in PEFT layout (or the
//! whole model as a Hugging Face folder when training full weights), the AdamW state, the step and the resolved
//! config. Written into a staging folder and renamed, so a folder that exists is complete; the oldest beyond
//! `save_total_limit` are removed. Sampling seeds, data order and dropout are derived from (seed, step), so the
//! step is all the RNG state a resumed run needs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW, Optimizer};
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, NamedMpkFileRecorder, Recorder};
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use repic_models::QwenVl;
use serde::{Deserialize, Serialize};

use crate::TrainError;

/// `trainer_state.json`: where a run stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer steps taken.
    pub step: usize,
    /// Rollout phases taken (one per `num_iterations` optimizer steps).
    pub rollouts: usize,
    /// Optimizer steps of the whole run.
    pub total_steps: usize,
    /// Ids of the model's float parameters in visiting order when saved (maps the optimizer state onto the
    /// parameters of a reloaded model, whose ids are new).
    pub param_order: Vec<u64>,
}

/// Ids of every float parameter of `module`, in visiting order.
pub fn param_ids<B: Backend, M: Module<B>>(module: &M) -> Vec<ParamId> {
    struct Ids(Vec<ParamId>);
    impl<B: Backend> ModuleVisitor<B> for Ids {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
            self.0.push(p.id);
        }
    }
    let mut v = Ids(Vec::new());
    module.visit(&mut v);
    v.0
}

/// The folder of the checkpoint at `step`.
pub fn checkpoint_dir(output: &Path, step: usize) -> PathBuf {
    output.join(format!("checkpoint-{step}"))
}

/// Complete checkpoints under `output`, oldest first.
pub fn list_checkpoints(output: &Path) -> Vec<(usize, PathBuf)> {
    let mut found: Vec<(usize, PathBuf)> = std::fs::read_dir(output)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let step = name.strip_prefix("checkpoint-")?.parse().ok()?;
            e.path().join("trainer_state.json").is_file().then(|| (step, e.path()))
        })
        .collect();
    found.sort();
    found
}

/// Write the optimizer state and `state` into `dir` (a staging folder).
pub fn save_optimizer<B: AutodiffBackend>(optim: &Adam<B>, state: &TrainerState, dir: &Path) -> Result<(), TrainError> {
    // Serialised in memory, then written: a failing write (a full disk) is reported as the I/O error it is,
    // not as a MessagePack error. The bytes are those NamedMpkFileRecorder reads back.
    let file = dir.join("optimizer.mpk");
    let bytes = NamedMpkBytesRecorder::<FullPrecisionSettings>::new()
        .record(optim.to_record(), ())
        .map_err(|e| TrainError::Run(format!("{}: {e}", file.display())))?;
    std::fs::write(&file, bytes).map_err(|e| TrainError::Io { path: file, source: e })?;
    let path = dir.join("trainer_state.json");
    let text = serde_json::to_string_pretty(state).map_err(|e| TrainError::Run(e.to_string()))?;
    std::fs::write(&path, text).map_err(|e| TrainError::Io { path, source: e })
}

/// Read `trainer_state.json` of a checkpoint.
pub fn read_state(dir: &Path) -> Result<TrainerState, TrainError> {
    let path = dir.join("trainer_state.json");
    let src = std::fs::read_to_string(&path).map_err(|e| TrainError::Io { path: path.clone(), source: e })?;
    serde_json::from_str(&src).map_err(|e| TrainError::Config { path, msg: e.to_string() })
}

/// The run's optimizer.
pub type Adam<B> = OptimizerAdaptor<AdamW, QwenVl<B>, B>;

/// Load the optimizer state of checkpoint `dir` into `optim`, re-keyed from the saved parameter ids to those of
/// `module` (same architecture, visited in the same order).
pub fn load_optimizer<B: AutodiffBackend>(
    optim: Adam<B>,
    module: &QwenVl<B>,
    dir: &Path,
    state: &TrainerState,
    device: &B::Device,
) -> Result<Adam<B>, TrainError> {
    let now = param_ids::<B, QwenVl<B>>(module);
    if now.len() != state.param_order.len() {
        return Err(TrainError::Run(format!(
            "{}: the checkpoint has {} parameters, the model {}",
            dir.display(),
            state.param_order.len(),
            now.len()
        )));
    }
    let map: HashMap<u64, ParamId> = state.param_order.iter().copied().zip(now).collect();
    let file = dir.join("optimizer");
    let saved: <Adam<B> as Optimizer<QwenVl<B>, B>>::Record = NamedMpkFileRecorder::<FullPrecisionSettings>::new()
        .load(file.clone(), device)
        .map_err(|e| TrainError::Run(format!("{}: {e}", file.display())))?;
    let record: <Adam<B> as Optimizer<QwenVl<B>, B>>::Record = saved
        .into_iter()
        .map(|(id, r)| {
            map.get(&id.val())
                .map(|new| (*new, r))
                .ok_or_else(|| TrainError::Run(format!("{}: optimizer state of an unknown parameter", file.display())))
        })
        .collect::<Result<_, _>>()?;
    Ok(optim.load_record(record))
}

/// Remove the oldest complete checkpoints so that at most `keep` remain (0: keep all).
pub fn prune(output: &Path, keep: usize) -> Result<(), TrainError> {
    let all = list_checkpoints(output);
    if keep == 0 || all.len() <= keep {
        return Ok(());
    }
    for (_, dir) in &all[..all.len() - keep] {
        // Renamed out of sight first: a kill while deleting must never leave a checkpoint folder that looks
        // complete (`trainer_state.json` present) but misses its weights. Leftovers go at the next start.
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let doomed = output.join(format!(".repic-pruned-{name}"));
        std::fs::rename(dir, &doomed).map_err(|e| TrainError::Io { path: dir.clone(), source: e })?;
        std::fs::remove_dir_all(&doomed).map_err(|e| TrainError::Io { path: doomed.clone(), source: e })?;
    }
    Ok(())
}
