//! An exclusive lock on a run folder, so that two processes never train into one `output_dir` (their logs would
//! interleave and their checkpoints mix). The operating system holds the lock on an open file and drops it when
//! the process ends, however it ends; the file names the holder for the message a second run gets.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::TrainError;

/// The lock file inside a run folder.
pub const LOCK_FILE: &str = ".repic-run.lock";

/// A held lock on a run folder; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

impl RunLock {
    /// Take the lock on `dir` (created if missing); refuses, naming the holder, while another process has it.
    pub fn acquire(dir: &Path) -> Result<Self, TrainError> {
        std::fs::create_dir_all(dir).map_err(|e| TrainError::Io { path: dir.into(), source: e })?;
        let path = dir.join(LOCK_FILE);
        let io = |e| TrainError::Io { path: path.clone(), source: e };
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                file.read_to_string(&mut holder).ok();
                let holder = holder.trim();
                let holder = if holder.is_empty() { "another process".to_string() } else { holder.to_string() };
                return Err(TrainError::Run(format!(
                    "{} is in use by {holder} (lock {}); wait for that run to end or choose another output_dir",
                    dir.display(),
                    path.display()
                )));
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let me = format!("process {} on {}", std::process::id(), host.trim());
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(me.as_bytes()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(RunLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_by_name_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        let first = RunLock::acquire(&run).unwrap();
        let e = RunLock::acquire(&run).unwrap_err().to_string();
        assert!(e.contains(&format!("process {}", std::process::id())) && e.contains("in use"), "{e}");
        assert!(first.path().ends_with(LOCK_FILE));
        drop(first);
        RunLock::acquire(&run).unwrap();
    }
}
