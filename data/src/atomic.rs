//! Atomic file writes: a temporary file in the target's folder, flushed, then renamed over the target.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::DataError;

/// Write `bytes` to `path` atomically: readers see the old file or the complete new one, never a half.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".repic-tmp-");
    // A temporary file is private (0600) by default; the written file gets the mode any new file gets here
    // (0666 less the umask), as users expect of an output.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let mut tmp = builder.tempfile_in(dir).map_err(|e| DataError::io(dir, e))?;
    tmp.write_all(bytes).map_err(|e| DataError::io(path, e))?;
    tmp.as_file().sync_all().map_err(|e| DataError::io(path, e))?;
    tmp.persist(path).map_err(|e| DataError::io(path, e.error))?;
    Ok(())
}

/// Serialize `value` as pretty JSON (4-space indent, as the RePIC/RAP files) and write it atomically.
pub fn write_json_atomic<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), DataError> {
    write_atomic(path, &to_pretty_json(value))
}

/// Pretty JSON with a 4-space indent and a final newline.
pub(crate) fn to_pretty_json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    value.serialize(&mut ser).expect("serializing in-memory JSON values cannot fail");
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/db.json");
        write_atomic(&p, b"first version, long").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["db.json"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Whatever the umask, group and others may read unless it forbids it; never the temp file's 0600.
            let probe = dir.path().join("probe");
            std::fs::write(&probe, b"").unwrap();
            let want = std::fs::metadata(&probe).unwrap().permissions().mode() & 0o777;
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, want);
        }
    }
}
