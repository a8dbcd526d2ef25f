//! Personalization at inference (`shared/specs/personalization.md`): the concept store (SQLite + image copies +
//! embeddings; RAP/R2P `database.json` in and out), the CLIP retrieval encoder, RAP's and R2P's retrieval, and
//! the prompts that put retrieved concepts in front of the VLM.

pub mod crops;
mod encoder;
mod error;
pub mod ground;
pub mod prefer;
pub mod r2p;
pub mod retrieve;
mod retriever;
pub mod store;
mod vlm;

pub use crops::{CropBox, CropSource, crop_boxes, cut};
pub use encoder::{Encoder, SyncReport, encoder_id, encoder_stamp, open_rgb, sync_embeddings};
pub use error::{PersonalizeError, Result};
pub use retrieve::{KeyIndex, Reference, RetrieveOptions, Via, name_matches};
pub use retriever::{Retrieval, Retriever};
pub use store::{
    ConceptEdit, ConceptStore, EmbeddingKind, EncoderRef, ImageMode, ImportOptions, ImportReport, NewConcept,
    SqliteStore, StoredConcept, StoredImage,
};
pub use vlm::{LocalVlm, Vlm, greedy, option_probs};
