//! Evaluation of personalized models, as a library the CLI, the demo and the coming ablation runner call:
//! multi-concept captioning precision / recall / F1 with RePIC's official rules and a name-aware variant
//! (`shared/specs/data-and-eval.md`, `caption_scorer`), the captioning benchmark (`captioning`), a model's
//! answers to records (`runner`) judged by one rule of a correct answer (`answers`) and scored with the
//! training rewards (`records`), the held-out suite of a synthetic data folder (`held_out`), and paired
//! comparisons of two models on the same items (`paired`).
//!
//! ```
//! use repic_data::CaptionResult;
//! use repic_eval::score_official;
//!
//! let r = |gt: &[&str], caption: &str| CaptionResult {
//!     image: "q.jpg".into(),
//!     concepts: gt.iter().map(|s| s.to_string()).collect(),
//!     caption: caption.into(),
//!     question: "Give a caption of the image.".into(),
//! };
//! // <b> is missed in the first caption; the second names <a>, which is not its ground truth (a MISS).
//! let results = [r(&["<a>", "<b>"], "<a> is eating."), r(&["<c>"], "Here is <a>.")];
//! let s = score_official(&results, true);
//! assert_eq!((s.slots, s.correct, s.predicted), (3, 1, 2));
//! assert_eq!(s.rounded(), (50.0, 33.3, 40.0));
//! ```

pub mod ablation;
pub mod answers;
mod caption_scorer;
pub mod captioning;
mod error;
pub mod held_out;
pub mod paired;
pub mod personalized;
pub mod records;
pub mod runner;

pub use answers::{Accuracy, RecordAccuracy, answer_correct, record_correct};
pub use caption_scorer::{
    CaptionScores, CaseRule, Scorer, official_recalled, score_captions, score_name_aware, score_official,
};
pub use error::EvalError;
