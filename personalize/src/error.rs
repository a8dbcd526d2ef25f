//! Errors of personalization: every one names the store, file, concept or field involved.

use std::path::PathBuf;

use repic_data::DataError;
use repic_models::ModelError;

/// A store operation, a retrieval or a reasoning step failed.
#[derive(Debug, thiserror::Error)]
pub enum PersonalizeError {
    /// The database refused (locked past the busy timeout, corrupt, full disk, ...).
    #[error("{}: {msg}", path.display())]
    Sqlite {
        /// The store's database file.
        path: PathBuf,
        /// SQLite's message.
        msg: String,
    },
    /// The file system refused.
    #[error("{}: {error}", path.display())]
    Io {
        /// File involved.
        path: PathBuf,
        /// Underlying error.
        error: std::io::Error,
    },
    /// An image file is missing, unreadable, not an image, or of an unsupported format.
    #[error("{}: {msg}", path.display())]
    Image {
        /// The image file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A value given by the user or read from a file is out of range or malformed.
    #[error("{field}: {msg}")]
    Invalid {
        /// Which value (`key`, `image[1]`, `concept_dict["<bo>"].info`, `--top-k`, ...).
        field: String,
        /// What is wrong.
        msg: String,
    },
    /// A concept key is already in the store.
    #[error("concept {0} is already in the store (edit it, or remove it first)")]
    Duplicate(String),
    /// No concept has this key.
    #[error("no concept {0} in the store")]
    Unknown(String),
    /// The store was made by a newer repic, or is not a repic store.
    #[error("{}: {msg}", path.display())]
    Store {
        /// The store folder.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A data file (database.json, queries) could not be read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The encoder or the VLM failed.
    #[error(transparent)]
    Model(#[from] ModelError),
}

impl PersonalizeError {
    /// Wrap an I/O error with its path.
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        PersonalizeError::Io { path: path.into(), error }
    }

    /// An invalid value.
    pub fn invalid(field: impl Into<String>, msg: impl Into<String>) -> Self {
        PersonalizeError::Invalid { field: field.into(), msg: msg.into() }
    }
}

/// Results of this crate.
pub type Result<T, E = PersonalizeError> = std::result::Result<T, E>;
