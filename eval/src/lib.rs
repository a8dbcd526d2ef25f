//! Evaluation of personalized models. For now: multi-concept captioning precision / recall / F1 with RePIC's
//! official rules and a name-aware variant (`shared/specs/data-and-eval.md`).

mod caption;

pub use caption::{CaptionScores, CaseRule, Scorer, score_captions, score_name_aware, score_official};
