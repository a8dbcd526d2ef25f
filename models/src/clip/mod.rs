//! CLIP (vision and text towers, projections, L2-normalised embeddings) loaded from a Hugging Face CLIP
//! checkpoint, with its image processor (resize shortest side, centre crop, CLIP normalisation): the retrieval
//! encoder of RAP and R2P.

mod config;
mod model;
mod processor;
mod save;
mod tokenizer;

pub use config::{ClipConfig, TowerConfig};
pub use model::{
    Clip, ClipAttention, ClipEncoder, ClipLayer, ClipMlp, ClipText, ClipVision, TextEmbeddings, VisionEmbeddings,
};
pub use processor::{ClipProcessor, CropSize, ShortestEdge};
pub use save::save_clip;
pub use tokenizer::ClipTokenizer;
