//! Data formats of repic: RePIC training records, the chat message type and RePIC's prompts, the RAP concept database, query lists and caption
//! result files, and a synthetic personalization data generator. See `shared/specs/data-and-eval.md`.
//!
//! Nothing here knows about tensors; the record's ground truth and reward method come from `repic-rewards`.
//!
//! ```
//! use std::path::Path;
//! use repic_data::{GroundTruth, Method, Part, PromptBuilder, parse_records};
//!
//! let jsonl = r#"{"image": ["ref.png", "query.png"], "problem": "Is <bo> here?", "solution": "yes", "accu_reward_method": "yes_no"}"#;
//! let records = parse_records(jsonl, Path::new("train.jsonl"))?;
//! assert_eq!(records[0].method, Method::YesNo);
//! assert_eq!(records[0].solution, GroundTruth::Text("yes".into()));
//! let turn = &PromptBuilder::new(0).build(&records[0], 0)[0];
//! assert_eq!(turn.content[0], Part::Image("ref.png".into()));
//! # Ok::<(), repic_data::DataError>(())
//! ```

mod atomic;
pub mod chat;
mod database;
mod error;
mod json;
pub mod lock;
mod prompt;
mod queries;
mod records;
pub mod synth;

pub use atomic::{write_atomic, write_json_atomic};
pub use chat::{Message, Part, Role, chat_images};
pub use database::{Concept, ConceptDb, Fingerprint, Images, Info};
pub use error::DataError;
pub use prompt::{
    CAPTION_SYSTEM, ICT_SUFFIXES, PromptBuilder, PromptReference, caption_prompt, reference_parts, reference_turn,
    task_suffix,
};
pub use queries::{
    CaptionResult, QueryList, QuerySets, load_caption_results, load_query_list, parse_caption_results,
    parse_query_list, save_query_list,
};
pub use records::{Record, RecordFormat, check_images, load_records, parse_records, save_records};
pub use repic_rewards::{GroundTruth, Method};
