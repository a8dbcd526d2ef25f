//! The run folder is one process's: an exclusive lock on it (a second run into the same `output_dir` is refused,
//! naming the holder, before it writes anything), and, once held, the leftovers of runs that were killed while
//! staging a file or a checkpoint are removed.

use std::path::Path;

use repic_data::lock::FileLock;

use crate::TrainError;

/// The lock file inside a run folder.
pub const LOCK_FILE: &str = ".repic-run.lock";

/// Hidden names of staging and pruning leftovers in a run folder.
const LEFTOVERS: [&str; 3] = [".repic-save-", ".repic-tmp-", ".repic-pruned-"];

/// A held lock on a run folder; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct RunLock(FileLock);

impl RunLock {
    /// Take the lock on `dir` (created if missing), then remove what killed runs left half-written there.
    pub fn acquire(dir: &Path) -> Result<Self, TrainError> {
        std::fs::create_dir_all(dir).map_err(|e| TrainError::Io { path: dir.into(), source: e })?;
        let lock = FileLock::acquire(&dir.join(LOCK_FILE), dir)?;
        for entry in std::fs::read_dir(dir).map_err(|e| TrainError::Io { path: dir.into(), source: e })?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if LEFTOVERS.iter().any(|p| name.starts_with(p)) {
                let path = entry.path();
                tracing::info!("removing {} (left by an interrupted run)", path.display());
                let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
                removed.map_err(|e| TrainError::Io { path, source: e })?;
            }
        }
        Ok(RunLock(lock))
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_is_named_and_leftovers_are_cleared() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("run");
        std::fs::create_dir_all(run.join(".repic-save-abc/model")).unwrap();
        std::fs::write(run.join(".repic-tmp-xyz"), "half").unwrap();
        std::fs::create_dir_all(run.join(".repic-pruned-checkpoint-2")).unwrap();
        std::fs::create_dir_all(run.join("checkpoint-4")).unwrap();
        let first = RunLock::acquire(&run).unwrap();
        let mut names: Vec<String> =
            std::fs::read_dir(&run).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        names.sort();
        assert_eq!(names, [LOCK_FILE, "checkpoint-4"]);
        let e = RunLock::acquire(&run).unwrap_err().to_string();
        assert!(e.contains(&format!("in use by process {}", std::process::id())), "{e}");
        assert!(first.path().ends_with(LOCK_FILE));
        drop(first);
        RunLock::acquire(&run).unwrap();
    }
}
