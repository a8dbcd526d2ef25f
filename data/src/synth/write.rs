//! A staging folder beside the output that is renamed into place only when everything is written.

use std::path::{Path, PathBuf};

use image::RgbImage;
use serde::Serialize;

use crate::atomic::to_pretty_json;
use crate::lock::FileLock;
use crate::{DataError, Record, RecordFormat, save_records};

/// Files being written for one data set.
pub(super) struct Staging<'p> {
    /// Held while writing: a second generation into the same folder is refused.
    _lock: FileLock,
    out: PathBuf,
    dir: Option<tempfile::TempDir>,
    files: Vec<String>,
    progress: &'p mut dyn FnMut(usize),
    images: usize,
}

impl<'p> Staging<'p> {
    /// A new staging folder next to `out`; it is deleted unless [`Staging::commit`] runs.
    pub fn new(out: &Path, progress: &'p mut dyn FnMut(usize)) -> Result<Self, DataError> {
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(|e| DataError::io(&parent, e))?;
        let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let lock = FileLock::acquire(&parent.join(format!(".{name}.lock")), out)?;
        // Staging folders of generations that were killed (the lock says none is running now).
        let stale = format!(".{name}.partial-");
        for entry in std::fs::read_dir(&parent).map_err(|e| DataError::io(&parent, e))?.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&stale) {
                std::fs::remove_dir_all(entry.path()).map_err(|e| DataError::io(entry.path(), e))?;
            }
        }
        let dir = tempfile::Builder::new()
            .prefix(&format!(".{name}.partial-"))
            .tempdir_in(&parent)
            .map_err(|e| DataError::io(&parent, e))?;
        Ok(Staging { _lock: lock, out: out.to_path_buf(), dir: Some(dir), files: Vec::new(), progress, images: 0 })
    }

    fn path(&mut self, rel: &str) -> Result<PathBuf, DataError> {
        let root = self.dir.as_ref().map(|d| d.path().to_path_buf()).unwrap_or_default();
        let p = root.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
        }
        self.files.push(rel.to_string());
        Ok(p)
    }

    /// Save a PNG.
    pub fn png(&mut self, rel: &str, img: &RgbImage) -> Result<(), DataError> {
        let p = self.path(rel)?;
        img.save(&p).map_err(|e| DataError::Invalid { path: p.clone(), msg: format!("writing PNG: {e}") })?;
        self.images += 1;
        (self.progress)(self.images);
        Ok(())
    }

    /// Save pretty JSON.
    pub fn json<T: Serialize + ?Sized>(&mut self, rel: &str, value: &T) -> Result<(), DataError> {
        let p = self.path(rel)?;
        std::fs::write(&p, to_pretty_json(value)).map_err(|e| DataError::io(&p, e))
    }

    /// Save records as JSONL.
    pub fn records(&mut self, rel: &str, records: &[Record]) -> Result<(), DataError> {
        let p = self.path(rel)?;
        save_records(&p, records, RecordFormat::Jsonl)
    }

    /// Relative paths written so far.
    pub fn files(&self) -> &[String] {
        &self.files
    }

    /// Move the staging folder to the output path (replacing an old one when `force`).
    pub fn commit(mut self, force: bool) -> Result<(), DataError> {
        let dir = self.dir.take().map(tempfile::TempDir::keep).unwrap_or_default();
        let io = |e| DataError::io(&self.out, e);
        if self.out.exists() && force {
            let old = dir.with_extension("old");
            std::fs::rename(&self.out, &old).map_err(io)?;
            std::fs::rename(&dir, &self.out).map_err(io)?;
            std::fs::remove_dir_all(&old).map_err(io)?;
        } else {
            std::fs::rename(&dir, &self.out).map_err(io)?;
        }
        Ok(())
    }
}
