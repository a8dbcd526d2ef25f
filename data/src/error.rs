//! Errors of the data layer; every one names the file, and the line and field where there is one.

use std::path::PathBuf;

/// A data file could not be read, parsed or written.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file system refused.
    #[error("{}: {error}", path.display())]
    Io {
        /// File involved.
        path: PathBuf,
        /// Underlying error (part of the message, so not repeated as a source).
        error: std::io::Error,
    },
    /// The text is not valid JSON (or TOML) at this line.
    #[error("{}:{line}: {msg}", path.display())]
    Syntax {
        /// File involved.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// Parser message.
        msg: String,
    },
    /// One field of one record is missing or malformed.
    #[error("{}:{line}: field `{field}`: {msg}", path.display())]
    Field {
        /// File involved.
        path: PathBuf,
        /// 1-based line where the record starts.
        line: usize,
        /// Field name.
        field: String,
        /// What is wrong.
        msg: String,
    },
    /// The file is well-formed but inconsistent (e.g. a database entry pointing at a missing concept).
    #[error("{}: {msg}", path.display())]
    Invalid {
        /// File involved.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
}

impl DataError {
    /// Wrap an I/O error with its path.
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        DataError::Io { path: path.into(), error }
    }

    /// A field error.
    pub fn field(path: impl Into<PathBuf>, line: usize, field: &str, msg: impl Into<String>) -> Self {
        DataError::Field { path: path.into(), line, field: field.into(), msg: msg.into() }
    }

    /// A JSON syntax error, with serde_json's line.
    pub fn json(path: impl Into<PathBuf>, e: &serde_json::Error) -> Self {
        DataError::Syntax { path: path.into(), line: e.line(), msg: e.to_string() }
    }
}
