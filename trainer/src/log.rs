//! Step metrics to `metrics.jsonl` (one JSON object per step) and to a TensorBoard event file (scalar
//! summaries in TFRecord framing: length, masked CRC-32C, `Event` protobuf, masked CRC-32C), and the sample
//! table to `samples.jsonl`. `scripts/read_tensorboard.py` reads the events back with TensorBoard's reader.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::TrainError;
use crate::metrics::Metrics;

/// TFRecord's masked CRC-32C.
fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c::crc32c(data);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field_bytes(field: u32, bytes: &[u8], out: &mut Vec<u8>) {
    varint(u64::from(field << 3 | 2), out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// An `Event` protobuf: wall time, step, and either the file version or a summary of scalar values.
fn event(wall_time: f64, step: i64, file_version: Option<&str>, scalars: &[(&str, f32)]) -> Vec<u8> {
    let mut e = Vec::new();
    e.push(1 << 3 | 1); // wall_time: double
    e.extend_from_slice(&wall_time.to_le_bytes());
    varint(2 << 3, &mut e); // step: int64
    varint(step as u64, &mut e);
    if let Some(v) = file_version {
        field_bytes(3, v.as_bytes(), &mut e);
    }
    if !scalars.is_empty() {
        let mut summary = Vec::new();
        for (tag, value) in scalars {
            let mut v = Vec::new();
            field_bytes(1, tag.as_bytes(), &mut v);
            v.push(2 << 3 | 5); // simple_value: float
            v.extend_from_slice(&value.to_le_bytes());
            field_bytes(1, &v, &mut summary);
        }
        field_bytes(5, &summary, &mut e);
    }
    e
}

/// Writes TensorBoard scalars into `events.out.tfevents.<time>.<host>.<pid>.<n>` of a log folder (TensorBoard's
/// own naming: a restart within the same second never reuses a file).
pub struct EventWriter {
    file: BufWriter<File>,
    path: PathBuf,
}

impl EventWriter {
    /// A new event file in `dir`.
    pub fn create(dir: &Path) -> Result<Self, TrainError> {
        std::fs::create_dir_all(dir).map_err(|e| TrainError::Io { path: dir.into(), source: e })?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let host: String =
            repic_data::lock::host_name().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
        let host = if host.is_empty() { "repic".to_string() } else { host };
        let (path, file) = (0u32..)
            .map(|n| {
                let name = format!("events.out.tfevents.{}.{host}.{}.{n}", now.as_secs(), std::process::id());
                let path = dir.join(name);
                let file = OpenOptions::new().write(true).create_new(true).open(&path);
                (path, file)
            })
            .find(|(_, f)| !matches!(f, Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists))
            .ok_or_else(|| TrainError::Run(format!("{}: no free event file name", dir.display())))?;
        let file = file.map_err(|e| TrainError::Io { path: path.clone(), source: e })?;
        let mut w = EventWriter { file: BufWriter::new(file), path };
        w.record(&event(now.as_secs_f64(), 0, Some("brain.Event:2"), &[]))?;
        Ok(w)
    }

    fn record(&mut self, data: &[u8]) -> Result<(), TrainError> {
        let len = (data.len() as u64).to_le_bytes();
        let io = |e| TrainError::Io { path: self.path.clone(), source: e };
        let mut buf = Vec::with_capacity(data.len() + 16);
        buf.extend_from_slice(&len);
        buf.extend_from_slice(&masked_crc(&len).to_le_bytes());
        buf.extend_from_slice(data);
        buf.extend_from_slice(&masked_crc(data).to_le_bytes());
        self.file.write_all(&buf).map_err(io)?;
        self.file.flush().map_err(|e| TrainError::Io { path: self.path.clone(), source: e })
    }

    /// Write one step's scalars.
    pub fn scalars(&mut self, step: usize, values: &[(&str, f32)]) -> Result<(), TrainError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
        self.record(&event(now, step as i64, None, values))
    }
}

/// Appends JSON lines to a file.
pub struct JsonLines {
    file: BufWriter<File>,
    path: PathBuf,
}

impl JsonLines {
    /// Open `path` for appending (created if missing).
    pub fn append(path: &Path) -> Result<Self, TrainError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| TrainError::Io { path: path.into(), source: e })?;
        Ok(JsonLines { file: BufWriter::new(file), path: path.into() })
    }

    /// Write one line.
    pub fn write(&mut self, v: &serde_json::Value) -> Result<(), TrainError> {
        let io = |e| TrainError::Io { path: self.path.clone(), source: e };
        writeln!(self.file, "{v}").map_err(io)?;
        self.file.flush().map_err(|e| TrainError::Io { path: self.path.clone(), source: e })
    }
}

/// Keep only the lines of a JSONL file whose `"step"` is at most `step` (a resumed run rewrites what follows).
pub fn truncate_after(path: &Path, step: usize) -> Result<(), TrainError> {
    let Ok(src) = std::fs::read_to_string(path) else { return Ok(()) };
    let kept: String = src
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.get("step").and_then(serde_json::Value::as_f64))
                .is_some_and(|s| s <= step as f64)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    repic_data::write_atomic(path, kept.as_bytes()).map_err(TrainError::from)
}

/// All sinks of a run's metrics.
pub struct MetricsLog {
    jsonl: JsonLines,
    samples: JsonLines,
    events: EventWriter,
}

impl MetricsLog {
    /// Open the sinks in `output_dir` (TensorBoard events under `output_dir/tensorboard/`).
    pub fn open(output_dir: &Path) -> Result<Self, TrainError> {
        Ok(MetricsLog {
            jsonl: JsonLines::append(&output_dir.join("metrics.jsonl"))?,
            samples: JsonLines::append(&output_dir.join("samples.jsonl"))?,
            events: EventWriter::create(&output_dir.join("tensorboard"))?,
        })
    }

    /// Record one step's metrics.
    pub fn step(&mut self, step: usize, m: &Metrics) -> Result<(), TrainError> {
        let mut v = serde_json::Map::new();
        v.insert("step".into(), step.into());
        for (k, x) in m {
            v.insert(k.clone(), serde_json::json!(x));
        }
        self.jsonl.write(&serde_json::Value::Object(v))?;
        let scalars: Vec<(&str, f32)> = m.iter().map(|(k, x)| (k.as_str(), *x as f32)).collect();
        self.events.scalars(step, &scalars)
    }

    /// Record sample completions with their rewards.
    pub fn sample(&mut self, v: serde_json::Value) -> Result<(), TrainError> {
        self.samples.write(&v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_files_created_in_one_second_never_overwrite_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = EventWriter::create(dir.path()).unwrap();
        let mut b = EventWriter::create(dir.path()).unwrap();
        a.scalars(1, &[("loss", 1.0)]).unwrap();
        b.scalars(1, &[("loss", 2.0)]).unwrap();
        assert_ne!(a.path, b.path);
        let names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        let pid = format!(".{}.", std::process::id());
        assert!(names.iter().all(|n| n.starts_with("events.out.tfevents.") && n.contains(&pid)), "{names:?}");
    }

    #[test]
    fn masked_crc_and_protobuf_bytes_by_hand() {
        // CRC-32C("123456789") = 0xE3069283 (the standard check value); masked as TFRecord does.
        let c: u32 = 0xE306_9283;
        assert_eq!(crc32c::crc32c(b"123456789"), c);
        // Masked: rotate right by 15, add 0xa282ead8 (computed by hand: 0xc78ab0e5).
        assert_eq!(masked_crc(b"123456789"), 0xc78a_b0e5);
        // step 300 is the varint ac 02; tag "a" with 1.0f32 = 00 00 80 3f.
        let e = event(0.0, 300, None, &[("a", 1.0)]);
        let want: Vec<u8> = [
            vec![0x09],
            vec![0; 8],
            vec![0x10, 0xac, 0x02],
            vec![0x2a, 0x0a, 0x0a, 0x08, 0x0a, 0x01, b'a', 0x15, 0x00, 0x00, 0x80, 0x3f],
        ]
        .concat();
        assert_eq!(e, want);
    }
}
