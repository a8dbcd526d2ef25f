//! Helpers shared by the model tests: fixture folders and the transformers reference outputs recorded in them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use repic_models::VlInput;
use safetensors::SafeTensors;
use serde_json::Value;

/// The backend of the tests.
pub type B = repic_models::DefaultBackend;

/// The folder of a fixture checkpoint.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// reference.safetensors + reference.json of a fixture.
pub struct Reference {
    bytes: Vec<u8>,
    /// reference.json
    pub meta: Value,
}

impl Reference {
    pub fn load(dir: &Path) -> Self {
        let bytes = std::fs::read(dir.join("reference.safetensors")).unwrap();
        let meta = serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
        Reference { bytes, meta }
    }

    pub fn tensor(&self, key: &str) -> Option<(Vec<usize>, Vec<f64>)> {
        let st = SafeTensors::deserialize(&self.bytes).unwrap();
        let t = st.tensor(key).ok()?;
        let raw = t.data();
        let vals: Vec<f64> = match t.dtype() {
            safetensors::Dtype::F32 => {
                raw.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64).collect()
            }
            safetensors::Dtype::I64 => {
                raw.chunks(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64).collect()
            }
            other => panic!("unexpected dtype {other:?}"),
        };
        Some((t.shape().to_vec(), vals))
    }

    pub fn input(&self, case: &str) -> VlInput {
        let ids = self.tensor(&format!("{case}.input_ids")).unwrap().1.iter().map(|&x| x as u32).collect();
        let (pixels, grids) = match self.tensor(&format!("{case}.pixel_values")) {
            Some((_, px)) => {
                let g = self.tensor(&format!("{case}.image_grid_thw")).unwrap().1;
                let grids = g.chunks(3).map(|c| [c[0] as usize, c[1] as usize, c[2] as usize]).collect();
                (px.iter().map(|&x| x as f32).collect(), grids)
            }
            None => (Vec::new(), Vec::new()),
        };
        VlInput { ids, pixels, grids }
    }
}

/// Largest absolute difference; NaN counts as infinite.
pub fn max_diff(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    // NaN anywhere counts as an infinite difference (f64::max would silently skip it).
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - y).abs())
        .fold(0.0, |m, d| if d.is_nan() { f64::INFINITY } else { m.max(d) })
}
