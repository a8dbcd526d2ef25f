//! CLIP's tokenizer.

use std::path::Path;

use crate::ModelError;

/// CLIP's tokenizer (`tokenizer.json`, whose post-processor adds the start and end tokens).
pub struct ClipTokenizer(tokenizers::Tokenizer);

impl ClipTokenizer {
    /// Load `tokenizer.json` from a checkpoint folder.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let path = dir.join("tokenizer.json");
        tokenizers::Tokenizer::from_file(&path)
            .map(ClipTokenizer)
            .map_err(|e| ModelError::Tokenizer(format!("{}: {e}", path.display())))
    }

    /// Token ids of `text` with start and end tokens.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        Ok(self.0.encode(text, true).map_err(|e| ModelError::Tokenizer(e.to_string()))?.get_ids().to_vec())
    }
}
