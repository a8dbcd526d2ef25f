//! Reading JSON arrays element by element, with the 1-based line where each element starts.

use std::path::Path;

use serde_json::Value;
use serde_json::value::RawValue;

use crate::DataError;

/// The elements of the JSON array `src`, each with the line it starts on. Linear in the size of `src`: lines
/// are counted from one element to the next, never again from the start.
pub(crate) fn array_items(src: &str, path: &Path) -> Result<Vec<(usize, Value)>, DataError> {
    let raws: Vec<&RawValue> = serde_json::from_str(src).map_err(|e| DataError::json(path, &e))?;
    let (mut counted, mut line) = (0usize, 1usize);
    raws.iter()
        .map(|raw| {
            let offset = raw.get().as_ptr() as usize - src.as_ptr() as usize;
            line += src.as_bytes()[counted..offset].iter().filter(|&&b| b == b'\n').count();
            counted = offset;
            let v = serde_json::from_str(raw.get()).map_err(|e| DataError::json(path, &e))?;
            Ok((line, v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_carry_the_line_they_start_on() {
        let src = "[\n  {\"a\": 1},\n\n  {\"a\":\n 2}, {\"a\": 3}\n]";
        let items = array_items(src, Path::new("x.json")).unwrap();
        let lines: Vec<usize> = items.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [2, 4, 5]);
        assert_eq!(items[1].1["a"], 2);
    }
}
