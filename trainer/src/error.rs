//! Errors of the trainer; each names the file or key involved.

use std::path::PathBuf;

/// What can go wrong while configuring or running training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A config file or override is invalid.
    #[error("{}: {msg}", path.display())]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong, naming the key.
        msg: String,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Model loading, generation or scoring failed.
    #[error(transparent)]
    Model(#[from] repic_models::ModelError),
    /// Training data is invalid.
    #[error(transparent)]
    Data(#[from] repic_data::DataError),
    /// A reward could not be computed.
    #[error(transparent)]
    Reward(#[from] repic_rewards::RewardError),
    /// Anything else, described.
    #[error("{0}")]
    Run(String),
}
