//! Data formats of repic: RePIC training records, prompts, the RAP concept database, query lists and caption
//! result files, and a synthetic personalization data generator. See `shared/specs/data-and-eval.md`.
//!
//! Nothing here knows about tensors; the record's ground truth and reward method come from `repic-rewards`.

mod atomic;
mod database;
mod error;
mod json;
mod prompt;
mod queries;
mod records;
pub mod synth;

pub use atomic::{write_atomic, write_json_atomic};
pub use database::{Concept, ConceptDb, Fingerprint, Images, Info};
pub use error::DataError;
pub use prompt::{ICT_SUFFIXES, Message, Part, PromptBuilder, Role, task_suffix};
pub use queries::{CaptionResult, QueryList, QuerySets, load_caption_results, load_query_list, save_query_list};
pub use records::{Record, RecordFormat, load_records, parse_records, save_records};
pub use repic_rewards::{GroundTruth, Method};
