//! GRPO post-training of Qwen2-VL / Qwen2.5-VL with RePIC's rewards (and the SFT warm start), on burn.
//! `shared/specs/grpo.md` is the contract: group rollouts from one identical prompt, group-normalised
//! advantages, the clipped objective with a k3 KL penalty to the adapters-off reference, four aggregations.

pub mod checkpoint;
pub mod clip;
pub mod config;
mod error;
pub mod loss;
pub mod metrics;
pub mod plot;
pub mod schedule;
pub mod sft;
pub mod state;

pub use config::TrainConfig;
pub use error::TrainError;
pub mod grpo;
pub mod rollout;

pub use grpo::Metrics;
pub use state::Trainer;
pub mod run;

pub use run::{Plan, RunSummary, train};
