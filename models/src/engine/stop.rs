//! Stop strings: generation of a row ends once its decoded tail contains one.

use crate::{ChatTokenizer, ModelError};

/// Stop strings and the tokenizer that checks them against the tail of each output.
pub(crate) struct StopStrings<'a> {
    strings: &'a [String],
    tokenizer: Option<&'a ChatTokenizer>,
    /// Tokens decoded per check: enough to cover the longest stop string.
    window: usize,
}

impl<'a> StopStrings<'a> {
    pub(crate) fn new(strings: &'a [String], tokenizer: Option<&'a ChatTokenizer>) -> Result<Self, ModelError> {
        if strings.iter().any(String::is_empty) {
            return Err(ModelError::Input("a stop string is empty".into()));
        }
        if !strings.is_empty() && tokenizer.is_none() {
            return Err(ModelError::Input("stop strings need an engine with a tokenizer".into()));
        }
        // Every token but a special one decodes to at least one character; a few extra cover those.
        let window = strings.iter().map(|s| s.chars().count()).max().unwrap_or(0) + 4;
        Ok(StopStrings { strings, tokenizer, window })
    }

    /// Whether the output `tokens` now contains a stop string. Generation stops at the first hit, so only the
    /// tail has to be decoded.
    pub(crate) fn hit(&self, tokens: &[u32]) -> Result<bool, ModelError> {
        let Some(tok) = self.tokenizer.filter(|_| !self.strings.is_empty()) else { return Ok(false) };
        let tail = tok.decode(&tokens[tokens.len().saturating_sub(self.window)..])?;
        Ok(self.strings.iter().any(|s| tail.contains(s.as_str())))
    }
}
