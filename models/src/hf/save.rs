//! Writing Hugging Face checkpoint files: safetensors in the PyTorch layout (keys renamed, shapes restored) and
//! folders filled in a staging directory and renamed into place.

use std::path::Path;

use burn::module::Module;
use burn::store::{
    BurnToPyTorchAdapter, ChainAdapter, KeyRemapper, ModuleAdapter, ModuleSnapshot, ModuleStore, SafetensorsStore,
    TensorSnapshot,
};
use burn::tensor::backend::Backend;

use crate::ModelError;

/// Gives tensors at the listed paths their checkpoint shape (Linear-held conv weights, 1-element scalars).
#[derive(Clone)]
struct ShapeAdapter {
    shapes: Vec<(String, Vec<usize>)>,
}

impl ModuleAdapter for ShapeAdapter {
    fn adapt(&self, s: &TensorSnapshot) -> TensorSnapshot {
        let path = s.full_path();
        match self.shapes.iter().find(|(p, _)| *p == path) {
            Some((_, shape)) => super::load::relayout(s, s.dtype, shape.clone()),
            None => s.clone(),
        }
    }

    fn clone_box(&self) -> Box<dyn ModuleAdapter> {
        Box::new(self.clone())
    }
}

/// Write `module`'s tensors to `file` in PyTorch layout, renaming keys with `key_map` (regex, replacement)
/// and reshaping the tensors in `shapes`.
pub fn save_weights<B: Backend, M: Module<B> + ModuleSnapshot<B>>(
    module: &M,
    file: &Path,
    key_map: &[(&str, &str)],
    shapes: Vec<(String, Vec<usize>)>,
) -> Result<(), ModelError> {
    let err = |msg: String| ModelError::Config { path: file.into(), msg };
    let mut remap = KeyRemapper::new();
    for (from, to) in key_map {
        remap = remap.add_pattern(*from, *to).map_err(|e| err(format!("key pattern {from}: {e}")))?;
    }
    let adapter = ChainAdapter::new(BurnToPyTorchAdapter, ShapeAdapter { shapes });
    // transformers refuses safetensors files whose `format` metadata is not `pt`.
    let mut store = SafetensorsStore::from_file(file.to_path_buf())
        .with_to_adapter(adapter)
        .remap(remap)
        .metadata("format", "pt")
        .overwrite(true);
    store.collect_from::<B, M>(module).map_err(|e| err(format!("writing safetensors: {e}")))
}

/// Fill a staging folder next to `out` with `fill`, then rename it to `out` (replacing an existing `out` only
/// when `overwrite`): a reader never sees a half-written folder.
pub fn write_dir_atomically<E: From<ModelError>>(
    out: &Path,
    overwrite: bool,
    fill: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    if out.exists() && !overwrite {
        return Err(ModelError::Config { path: out.into(), msg: "already exists".into() }.into());
    }
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let io = |p: &Path, e| E::from(ModelError::io(p, e));
    std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
    let stage = tempfile::Builder::new().prefix(".repic-save-").tempdir_in(parent).map_err(|e| io(parent, e))?;
    fill(stage.path())?;
    let staged = stage.keep();
    if out.exists() {
        let old = staged.with_extension("old");
        std::fs::rename(out, &old).map_err(|e| io(out, e))?;
        std::fs::rename(&staged, out).map_err(|e| io(out, e))?;
        // What was replaced may have been a file (`--force` over a file) or a folder.
        let removed = if old.is_dir() { std::fs::remove_dir_all(&old) } else { std::fs::remove_file(&old) };
        removed.map_err(|e| io(&old, e))?;
    } else {
        std::fs::rename(&staged, out).map_err(|e| io(out, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_replaces_a_file_or_a_folder_and_leaves_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let fill = |text: &'static str| {
            move |stage: &Path| -> Result<(), ModelError> {
                std::fs::write(stage.join("a.txt"), text).map_err(|e| ModelError::io(stage, e))
            }
        };
        std::fs::write(&out, "a file in the way").unwrap();
        assert!(write_dir_atomically(&out, false, fill("x")).is_err(), "no overwrite without asking");
        write_dir_atomically(&out, true, fill("first")).unwrap();
        write_dir_atomically(&out, true, fill("second")).unwrap();
        assert_eq!(std::fs::read_to_string(out.join("a.txt")).unwrap(), "second");
        let names: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["out"], "no staging or .old left behind");
    }
}
