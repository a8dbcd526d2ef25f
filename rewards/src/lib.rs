//! Reward functions for personalization RL (RePIC) and preference assessment (PreferThinker).
//!
//! Every reward is a pure function of the decoded completion, the record's ground truth and options; see
//! `shared/specs/rewards.md`. [`RewardSet`] combines several functions with weights and named ablations, and
//! [`Method`] is the `accu_reward_method` vocabulary that training records use to pick their reward.
//!
//! ```
//! use repic_rewards::{GroundTruth, Method, RewardConfig, RewardSet, Sample};
//!
//! let set = RewardSet::from_config(&RewardConfig::default())?; // RePIC's OCT + VLT + ICT
//! let gt = GroundTruth::Box(vec![10, 10, 110, 110]);
//! let score = set.score(r#"{"bbox_2d": [12, 9, 108, 111]}"#, &Sample::new(Method::Iou, &gt))?;
//! assert_eq!(score.total, 1.0);
//! assert_eq!(score.per_fn, [None, Some(1.0), None, None]); // oct, vlt, ict, ict_multi
//! # Ok::<(), repic_rewards::RewardError>(())
//! ```

mod config;
mod error;
mod format;
mod ict;
mod method;
mod oct;
mod prefer;
mod set;
mod vlt;

pub use config::{AblationMode, IctOptions, LengthUnit, OctOptions, RewardConfig, VltAnchor, VltCoords, VltOptions};
pub use error::RewardError;
pub use format::{FormatOptions, format_reward};
pub use ict::{ict_multi_reward, ict_reward};
pub use method::{GroundTruth, Method, Sample};
pub use oct::{first_yes_no, oct_reward};
pub use prefer::{
    PROFILE_DIMENSIONS, Profile, extract_answer, parse_profile, prefer_accuracy_reward, prefer_format_reward,
    profile_similarity,
};
pub use set::{BUILTIN, NAMED_SETS, Reward, RewardSet, SampleScore, builtin_reward};
pub use vlt::{BoxXyxy, from_norm1000, iou, parse_box, parse_boxes, vlt_reward};
