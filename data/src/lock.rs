//! Exclusive locks on outputs two processes could write at once (a training run's folder, a synthetic data
//! set): the operating system holds the lock on an open file and drops it when the process ends, however it
//! ends, so a lock is never stale; the file names the holder for the message a second process gets.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::DataError;

/// This machine's host name (empty where the system does not say), as lock files and log file names give it.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_string()
}

/// A held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct FileLock {
    _file: File,
    path: PathBuf,
    /// Whether releasing removes the file (not for waited locks: a waiter holds the same file open).
    remove: bool,
}

impl FileLock {
    /// Take the lock file `path` (created if missing, in an existing folder) for writing `what`; refuses,
    /// naming the holder, while another process has it.
    pub fn acquire(path: &Path, what: &Path) -> Result<Self, DataError> {
        let io = |e| DataError::io(path, e);
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                file.read_to_string(&mut holder).ok();
                let holder = holder.trim();
                let holder = if holder.is_empty() { "another process".to_string() } else { holder.to_string() };
                return Err(DataError::Invalid {
                    path: what.into(),
                    msg: format!(
                        "in use by {holder} (lock {}); wait for it to end or choose another output",
                        path.display()
                    ),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let me = format!("process {} on {}", std::process::id(), host_name());
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(me.as_bytes()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(FileLock { _file: file, path: path.into(), remove: true })
    }

    /// Wait until the lock file `path` (created if missing) is free, then hold it: short critical sections that
    /// several processes take in turn (appending a result line). The file stays when released.
    pub fn wait(path: &Path) -> Result<Self, DataError> {
        let io = |e| DataError::io(path, e);
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io)?;
        file.lock().map_err(io)?;
        Ok(FileLock { _file: file, path: path.into(), remove: false })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FileLock {
    /// The file goes while the lock is still held (a process that opened it meanwhile fails its `try_lock`);
    /// a killed process leaves it behind, unlocked, for the next holder to reuse.
    fn drop(&mut self) {
        if self.remove {
            std::fs::remove_file(&self.path).ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_by_name_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let (lock, run) = (dir.path().join(".run.lock"), dir.path().join("run"));
        let first = FileLock::acquire(&lock, &run).unwrap();
        let e = FileLock::acquire(&lock, &run).unwrap_err().to_string();
        assert!(e.contains(&format!("process {}", std::process::id())) && e.contains("in use"), "{e}");
        assert!(e.starts_with(&run.display().to_string()), "{e}");
        assert_eq!(first.path(), lock);
        drop(first);
        assert!(!lock.exists(), "a released lock leaves no file");
        // A file left by a killed holder is not a lock (the OS let go of it): the next process takes it.
        std::fs::write(&lock, "process 1 on elsewhere").unwrap();
        let again = FileLock::acquire(&lock, &run).unwrap();
        assert_eq!(
            std::fs::read_to_string(again.path()).unwrap(),
            format!("process {} on {}", std::process::id(), host_name())
        );
    }
}
