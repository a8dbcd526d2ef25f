//! The personalized VLM as RAP's detector: it is asked for the boxes of the store's categories in the query
//! (RePIC's VLT answer format), and its boxes, mapped to the query's pixels (Qwen2-VL answers in 0..1000,
//! Qwen2.5-VL in pixels of the image as resized for it), become the retrieval crops.

use std::path::Path;

use burn::tensor::backend::Backend;
use repic_data::Message;
use repic_models::{Arch, Checkpoint};
use repic_rewards::VltCoords;
use serde::Serialize;

use crate::Result;
use crate::crops::CropSource;
use crate::vlm::greedy;

/// The grounding question for `categories` (RePIC's VLT suffix asks for JSON).
pub fn grounding_question(categories: &[String]) -> String {
    let what = if categories.is_empty() { "object".to_string() } else { categories.join(" and every ") };
    format!(
        "Give the bounding box of every {what} in the image. For bounding box coordinates, return the final \
         answer in JSON format."
    )
}

/// The VLM's grounding answer and the crop source it gives.
#[derive(Clone, Debug, Serialize)]
pub struct Grounding {
    /// The model's answer.
    pub answer: String,
    /// How its boxes map to the query (for [`crate::Retriever::rap`]).
    #[serde(skip)]
    pub crops: CropSource,
}

/// Ask `ckpt` where the `categories` are in the image file `query`.
pub fn ground<B: Backend>(
    ckpt: &Checkpoint<B>,
    query: &Path,
    categories: &[String],
    device: &B::Device,
) -> Result<Grounding> {
    let turn = Message::user_with_images([query.to_string_lossy().into_owned()], grounding_question(categories));
    let (answer, prepared) = greedy(ckpt, &[turn], 128, 1.0, device)?;
    let crops = match ckpt.model.config().arch {
        Arch::Qwen2Vl => CropSource::Grounding { answer: answer.clone(), coords: VltCoords::Norm1000, seen_as: None },
        Arch::Qwen25Vl => CropSource::Grounding {
            answer: answer.clone(),
            coords: VltCoords::Absolute,
            seen_as: prepared.sizes.first().copied(),
        },
    };
    Ok(Grounding { answer, crops })
}
