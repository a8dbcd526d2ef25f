//! Qwen2-VL / Qwen2.5-VL: vision tower, Qwen2 decoder with M-RoPE, image features spliced at
//! `<|image_pad|>` positions.

mod adapters;
mod norm;
pub mod rope;
mod text;
mod vision;

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::IndexingUpdateOp;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};

pub use norm::Norm;
pub use text::{KvCache, TextModel};
pub use vision::Vision;

use crate::ModelError;
use crate::config::QwenVlConfig;
use crate::lora::Lora;

/// A randomly initialised Linear layer (weights are then loaded from a checkpoint).
pub(crate) fn linear<B: Backend>(i: usize, o: usize, bias: bool, device: &B::Device) -> Linear<B> {
    burn::nn::LinearConfig::new(i, o).with_bias(bias).init(device)
}

/// A Qwen2-VL / Qwen2.5-VL model (HF `Qwen2VLForConditionalGeneration` / `Qwen2_5_VLForConditionalGeneration`).
#[derive(Module, Debug)]
pub struct QwenVl<B: Backend> {
    /// Vision tower (HF `visual`).
    pub visual: Vision<B>,
    /// Decoder (HF `model`).
    pub model: TextModel<B>,
    /// Output projection; `None` when tied to the embedding.
    pub lm_head: Option<Linear<B>>,
    /// LoRA adapter of the output projection (PEFT `lm_head`), tied or not.
    pub lm_head_lora: Option<Lora<B>>,
    /// The head was tied and merging its adapter gave it its own weight (unmerging ties it again).
    head_untied: bool,
}

/// One prompt ready for the model: token ids and, per image, its flattened patches and (t, h, w) grid.
#[derive(Clone, Debug, Default)]
pub struct VlInput {
    /// Token ids, with `t*h*w/4` image pad tokens per image.
    pub ids: Vec<u32>,
    /// Flattened patches of all images, row-major `[patches, C*T*P*P]`.
    pub pixels: Vec<f32>,
    /// Patch grid of each image.
    pub grids: Vec<[usize; 3]>,
}

impl<B: Backend> QwenVl<B> {
    /// A randomly initialised model for `cfg`.
    pub fn new(cfg: &QwenVlConfig, device: &B::Device) -> Self {
        let lm_head =
            (!cfg.text.tie_word_embeddings).then(|| linear(cfg.text.hidden_size, cfg.text.vocab_size, false, device));
        QwenVl {
            visual: Vision::new(&cfg.vision, cfg.arch, device),
            model: TextModel::new(&cfg.text, device),
            lm_head,
            lm_head_lora: None,
            head_untied: false,
        }
    }

    /// Image features for the images of `input` (`[pads, d]`), or `None` without images.
    pub fn image_features(&self, input: &VlInput, device: &B::Device) -> Option<Tensor<B, 2>> {
        if input.grids.is_empty() {
            return None;
        }
        let rows: usize = input.grids.iter().map(|g| g[0] * g[1] * g[2]).sum();
        let width = input.pixels.len() / rows.max(1);
        let px = Tensor::from_data(TensorData::new(input.pixels.clone(), [rows, width]), device);
        Some(self.visual.forward(px, &input.grids))
    }

    /// Input embeddings `[1, T, d]`: token embeddings with image features at the image pad positions.
    pub fn embed(&self, input: &VlInput, cfg: &QwenVlConfig, device: &B::Device) -> Result<Tensor<B, 3>, ModelError> {
        let t = input.ids.len();
        let ids: Vec<i64> = input.ids.iter().map(|&x| i64::from(x)).collect();
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [1, t]), device);
        let mut x = self.model.embed_tokens.forward(ids);
        let pads: Vec<i64> =
            input.ids.iter().enumerate().filter(|(_, id)| **id == cfg.tokens.image).map(|(i, _)| i as i64).collect();
        match self.image_features(input, device) {
            Some(feats) => {
                let n = feats.dims()[0];
                if n != pads.len() {
                    return Err(ModelError::Input(format!(
                        "the prompt has {} image pad tokens but the images give {n} features",
                        pads.len()
                    )));
                }
                // Zero the pad rows, then add the features into them (exact, and differentiable).
                let keep: Vec<f32> =
                    input.ids.iter().map(|&id| if id == cfg.tokens.image { 0.0 } else { 1.0 }).collect();
                let keep = Tensor::<B, 2>::from_data(TensorData::new(keep, [t, 1]), device);
                let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(pads, [n]), device);
                let d = x.dims()[2];
                x = (x.reshape([t, d]) * keep).select_assign(0, idx, feats, IndexingUpdateOp::Add).reshape([1, t, d]);
            }
            None if !pads.is_empty() => {
                return Err(ModelError::Input(format!("the prompt has {} image pad tokens but no image", pads.len())));
            }
            None => {}
        }
        Ok(x)
    }

    /// Logits `[T, vocab]` of every position for one prompt (full causal pass, no cache).
    pub fn logits(&self, input: &VlInput, cfg: &QwenVlConfig, device: &B::Device) -> Result<Tensor<B, 2>, ModelError> {
        let h = self.hidden(input, cfg, device)?;
        let [_, t, d] = h.dims();
        Ok(self.project(h.reshape([t, d])))
    }

    /// Final hidden states `[1, T, d]` for one prompt.
    pub fn hidden(&self, input: &VlInput, cfg: &QwenVlConfig, device: &B::Device) -> Result<Tensor<B, 3>, ModelError> {
        let x = self.embed(input, cfg, device)?;
        let (pos, _) = rope::rope_index(&input.ids, cfg.tokens.image, &input.grids, cfg.vision.spatial_merge_size)
            .map_err(ModelError::Input)?;
        let tc = &cfg.text;
        let (cos, sin) = rope::mrope_tables::<B>(&pos, tc.head_dim(), tc.rope_theta, &tc.mrope_section, device);
        let t = input.ids.len();
        // true above the diagonal: the future is masked
        let mask = Tensor::<B, 2, Bool>::tril_mask([t, t], 0, device).unsqueeze::<3>();
        Ok(self.model.forward(x, &cos.unsqueeze(), &sin.unsqueeze(), Some(&mask), None))
    }

    /// Logits `[N, vocab]` at the chosen positions of one prompt (e.g. the answer position of a yes/no question
    /// for recognition or R2P's letter choice); only those rows go through the output projection.
    pub fn logits_at(
        &self,
        input: &VlInput,
        positions: &[usize],
        cfg: &QwenVlConfig,
        device: &B::Device,
    ) -> Result<Tensor<B, 2>, ModelError> {
        let t = input.ids.len();
        if let Some(&bad) = positions.iter().find(|&&p| p >= t) {
            return Err(ModelError::Input(format!("position {bad} is outside the {t}-token prompt")));
        }
        let h = self.hidden(input, cfg, device)?;
        let d = h.dims()[2];
        let idx: Vec<i64> = positions.iter().map(|&p| p as i64).collect();
        let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [positions.len()]), device);
        Ok(self.project(h.reshape([t, d]).select(0, idx)))
    }

    /// Hidden states `[N, d]` -> logits `[N, vocab]` (with the head's adapter update when it has one).
    pub fn project(&self, h: Tensor<B, 2>) -> Tensor<B, 2> {
        let update = self.lm_head_lora.as_ref().and_then(|l| l.forward(h.clone()));
        let logits = match &self.lm_head {
            Some(l) => l.forward(h),
            None => h.matmul(self.model.embed_tokens.weight.val().transpose()),
        };
        match update {
            Some(u) => logits + u,
            None => logits,
        }
    }
}
