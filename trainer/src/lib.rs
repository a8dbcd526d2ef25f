//! GRPO post-training of Qwen2-VL / Qwen2.5-VL with RePIC's rewards (and the SFT warm start), on burn.
//! `shared/specs/grpo.md` is the contract: group rollouts from one identical prompt, group-normalised
//! advantages, the clipped objective with a k3 KL penalty to the adapters-off reference, four aggregations.
//!
//! Layout: `config` (TOML), `rollout` (record -> prompt -> G samples + rewards), `loss` (advantages, the
//! objective, aggregations), `grpo` / `sft` (one optimizer step each), `state` (model, optimizer, schedule,
//! checkpoints of a run), `metrics` (what a step measured) and `log` (where it is written), `run` (the loop).

pub mod checkpoint;
pub mod config;
pub mod contrastive;
mod error;
pub mod grad_clip;
pub mod grpo;
pub mod lock;
pub mod log;
pub mod loss;
pub mod metrics;
pub mod plot;
pub mod rollout;
pub mod run;
pub mod schedule;
pub mod sft;
pub mod source;
pub mod state;

pub use config::TrainConfig;
pub use error::TrainError;
pub use metrics::Metrics;
pub use run::{Plan, RunSummary, train};
pub use source::ModelSource;
pub use state::Trainer;
