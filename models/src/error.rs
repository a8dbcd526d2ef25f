//! Errors of model loading and use.

use std::path::PathBuf;

/// What can go wrong loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file could not be read or written.
    #[error("{}: {error}", path.display())]
    Io {
        /// File involved.
        path: PathBuf,
        /// Underlying error.
        error: std::io::Error,
    },
    /// A configuration file is malformed or names something we do not support.
    #[error("{}: {msg}", path.display())]
    Config {
        /// File involved.
        path: PathBuf,
        /// What is wrong (names the field).
        msg: String,
    },
    /// The checkpoint's tensors do not fit the model: every missing, unexpected or misshaped tensor is listed.
    #[error("{}: checkpoint does not match the model:\n{report}", path.display())]
    Weights {
        /// Checkpoint folder.
        path: PathBuf,
        /// One line per problem tensor.
        report: String,
    },
    /// Tokenizer or chat-template failure.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Image reading or preprocessing failure.
    #[error("image {}: {msg}", path.display())]
    Image {
        /// Image file (or `<memory>`).
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// Inputs that the model cannot take (e.g. image pad count differs from the image features).
    #[error("invalid input: {0}")]
    Input(String),
}

impl ModelError {
    /// Wrap an I/O error with its path.
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        ModelError::Io { path: path.into(), error }
    }
}
