//! Reading JSON arrays element by element, with the 1-based line where each element starts.

use std::path::Path;

use serde_json::Value;
use serde_json::value::RawValue;

use crate::DataError;

/// The elements of the JSON array `src`, each with the line it starts on.
pub(crate) fn array_items(src: &str, path: &Path) -> Result<Vec<(usize, Value)>, DataError> {
    let raws: Vec<&RawValue> = serde_json::from_str(src).map_err(|e| DataError::json(path, &e))?;
    raws.iter()
        .map(|raw| {
            let offset = raw.get().as_ptr() as usize - src.as_ptr() as usize;
            let line = src.as_bytes()[..offset].iter().filter(|&&b| b == b'\n').count() + 1;
            let v = serde_json::from_str(raw.get()).map_err(|e| DataError::json(path, &e))?;
            Ok((line, v))
        })
        .collect()
}
