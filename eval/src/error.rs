//! Errors of the evaluation library.

use std::path::PathBuf;

use repic_data::DataError;
use repic_models::ModelError;
use repic_rewards::RewardError;

/// What can go wrong while evaluating a model.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The model failed (loading, an image, generation).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A data file is malformed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The concept store or retrieval failed.
    #[error(transparent)]
    Personalize(#[from] repic_personalize::PersonalizeError),
    /// A reward function refused an answer.
    #[error(transparent)]
    Reward(#[from] RewardError),
    /// One item of an evaluation failed; `what` names it (a record index, a query image).
    #[error("{what}: {source}")]
    Item {
        /// The item.
        what: String,
        /// Why.
        source: Box<EvalError>,
    },
    /// A result file could not be written.
    #[error("writing {}: {msg}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        msg: String,
    },
    /// Inputs that do not fit together.
    #[error("{0}")]
    Input(String),
}

impl EvalError {
    /// This error, said of `what`.
    pub fn of(self, what: impl Into<String>) -> Self {
        EvalError::Item { what: what.into(), source: Box::new(self) }
    }
}
