//! Errors of reward configuration and scoring.

use crate::Method;

/// What can go wrong when building a reward set or scoring a sample.
#[derive(Debug, thiserror::Error)]
pub enum RewardError {
    /// The ground truth has the wrong shape for the reward (e.g. a list given to single ICT).
    #[error("reward `{reward}` expects a ground truth of the form {expected}")]
    SolutionType {
        /// Reward function name.
        reward: &'static str,
        /// Human-readable description of the expected form.
        expected: &'static str,
    },
    /// The reward needs context the caller did not pass (image size for norm1000, token count for the gate).
    #[error("reward `{reward}` needs {what}, which the sample does not carry")]
    MissingContext {
        /// Reward function name.
        reward: &'static str,
        /// What is missing.
        what: &'static str,
    },
    /// No function of the set applies to a sample of this method.
    #[error("no reward function of the set applies to records of method `{0}`")]
    NoRewardFor(Method),
    /// Configuration problem (unknown set or function name, bad regex, negative weight...).
    #[error("reward config: {0}")]
    Config(String),
}
