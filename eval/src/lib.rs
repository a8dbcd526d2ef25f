//! Evaluation of personalized models: multi-concept captioning precision / recall / F1 with RePIC's official
//! rules and a name-aware variant (`shared/specs/data-and-eval.md`), and runners that prompt a model (RePIC's
//! captioning prompt, greedy batches) and score held-out OCT / VLT records.
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

mod caption;
pub mod paired;
pub mod runner;

pub use caption::{
    CaptionScores, CaseRule, Scorer, official_recalled, score_captions, score_name_aware, score_official,
};
