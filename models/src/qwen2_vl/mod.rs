//! Qwen2-VL / Qwen2.5-VL: vision tower, Qwen2 decoder with M-RoPE, image features spliced at
//! `<|image_pad|>` positions.

mod adapters;
pub mod config;
mod norm;
pub mod processor;
pub mod rope;
pub mod save;
mod text;
pub mod tiny;
mod vision;

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::IndexingUpdateOp;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

pub use norm::Norm;
pub use text::TextModel;
pub use vision::Vision;

use std::path::Path;

use crate::ModelError;
use crate::engine::KvCache;
use crate::lora::Lora;
use config::QwenVlConfig;
use rope::{Positions, mrope_tables, rope_index};

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
    /// The configuration the model was built from.
    #[module(skip)]
    cfg: QwenVlConfig,
}

/// New positions for every row of a [`KvCache`], the input of one model step.
#[derive(Clone, Debug)]
pub struct Step<B: Backend> {
    /// Input embeddings `[rows, T, d]`.
    pub embeds: Tensor<B, 3>,
    /// The (temporal, height, width) M-RoPE position of each new position, one entry per row.
    pub positions: Vec<Positions>,
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
            cfg: cfg.clone(),
        }
    }

    /// Load a Qwen2-VL / Qwen2.5-VL checkpoint folder (config.json + safetensors) onto `device`.
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self, ModelError> {
        let cfg = QwenVlConfig::load(dir)?;
        let mut model = QwenVl::new(&cfg, device);
        let ignore: &[&str] = if cfg.text.tie_word_embeddings { &["lm_head.weight"] } else { &[] };
        crate::hf::load::load_weights(&mut model, dir, &crate::hf::load::QWEN_KEY_MAP, ignore)?;
        Ok(model)
    }

    /// The configuration the model was built from.
    pub fn config(&self) -> &QwenVlConfig {
        &self.cfg
    }

    /// One step of the decoder: run `step`'s new positions against `cache` (appending their keys and values;
    /// the cache masks padding and the future) and return the final hidden states `[rows, T, d]`. An empty
    /// cache takes one row per row of the step.
    pub fn forward(&self, step: Step<B>, cache: &mut KvCache<B>) -> Result<Tensor<B, 3>, ModelError> {
        let [rows, t, _] = step.embeds.dims();
        if step.positions.len() != rows || step.positions.iter().any(|p| p.iter().any(|axis| axis.len() != t)) {
            return Err(ModelError::Input(format!("a step of {rows} x {t} embeddings needs as many positions")));
        }
        let device = step.embeds.device();
        let mask = cache.begin_step(rows, t, &device)?;
        let tc = &self.cfg.text;
        let mut all: Positions = [Vec::new(), Vec::new(), Vec::new()];
        for p in &step.positions {
            for (axis, values) in all.iter_mut().zip(p) {
                axis.extend_from_slice(values);
            }
        }
        let (cos, sin) = mrope_tables::<B>(&all, tc.head_dim(), tc.rope_theta, &tc.mrope_section, &device);
        let (cos, sin) = (cos.reshape([rows, t, tc.head_dim()]), sin.reshape([rows, t, tc.head_dim()]));
        Ok(self.model.forward(step.embeds, &cos, &sin, mask.as_ref(), cache))
    }

    /// The prefill step of one prompt (`[1, T, d]` embeddings with the image features, M-RoPE positions) and its
    /// rope delta: the text token after the prompt's `T` tokens sits at position `T + delta` on every axis.
    pub fn prompt_step(&self, input: &VlInput, device: &B::Device) -> Result<(Step<B>, i64), ModelError> {
        let embeds = self.embed(input, device)?;
        let (pos, delta) = self.positions(input)?;
        Ok((Step { embeds, positions: vec![pos] }, delta))
    }

    /// The prefill step of several prompts of any lengths: each gets a row of `cache` (which must be empty),
    /// left-padded to the longest, padded slots at position 0 and masked by the cache. Returns the step and each
    /// row's next text position (prompt length + rope delta).
    pub fn batch_step(
        &self,
        inputs: &[VlInput],
        cache: &mut KvCache<B>,
        device: &B::Device,
    ) -> Result<(Step<B>, Vec<i64>), ModelError> {
        if !cache.is_empty() || cache.rows() > 0 {
            return Err(ModelError::Input("a batch is prefilled into an empty cache".into()));
        }
        if inputs.iter().any(|i| i.ids.is_empty()) {
            return Err(ModelError::Input("an empty prompt".into()));
        }
        let width = inputs.iter().map(|i| i.ids.len()).max().unwrap_or(0);
        let (mut xs, mut positions, mut next) = (Vec::new(), Vec::new(), Vec::new());
        for input in inputs {
            let pad = width - input.ids.len();
            cache.allocate(pad)?;
            let x = self.embed(input, device)?;
            let (pos, delta) = self.positions(input)?;
            let d = x.dims()[2];
            xs.push(if pad > 0 { Tensor::cat(vec![Tensor::zeros([1, pad, d], device), x], 1) } else { x });
            positions.push(pos.map(|axis| std::iter::repeat_n(0, pad).chain(axis).collect()));
            next.push(input.ids.len() as i64 + delta);
        }
        Ok((Step { embeds: Tensor::cat(xs, 0), positions }, next))
    }

    /// M-RoPE positions of a prompt and its rope delta (`get_rope_index`).
    pub fn positions(&self, input: &VlInput) -> Result<(Positions, i64), ModelError> {
        let c = &self.cfg;
        rope_index(&input.ids, c.tokens.image, &input.grids, c.vision.spatial_merge_size).map_err(ModelError::Input)
    }

    /// A decode step: one text token per row, `tokens[i]` at text position `positions[i]` (the same on the three
    /// M-RoPE axes).
    pub fn token_step(&self, tokens: &[u32], positions: &[i64], device: &B::Device) -> Step<B> {
        let embeds = self.embed_tokens(tokens, device).reshape([tokens.len(), 1, self.cfg.text.hidden_size]);
        let positions = positions.iter().map(|&p| [vec![p], vec![p], vec![p]]).collect();
        Step { embeds, positions }
    }

    /// Token embeddings `[1, n, d]` of `ids` (no image features).
    pub fn embed_tokens(&self, ids: &[u32], device: &B::Device) -> Tensor<B, 3> {
        let n = ids.len();
        let ids: Vec<i64> = ids.iter().map(|&x| i64::from(x)).collect();
        self.model.embed_tokens.forward(Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [1, n]), device))
    }

    /// A fresh cache for this model's decoder.
    pub fn new_cache(&self) -> KvCache<B> {
        KvCache::new(self.cfg.text.num_hidden_layers)
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
    pub fn embed(&self, input: &VlInput, device: &B::Device) -> Result<Tensor<B, 3>, ModelError> {
        let cfg = &self.cfg;
        let t = input.ids.len();
        let mut x = self.embed_tokens(&input.ids, device);
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
    pub fn logits(&self, input: &VlInput, device: &B::Device) -> Result<Tensor<B, 2>, ModelError> {
        let h = self.hidden(input, device)?;
        let [_, t, d] = h.dims();
        Ok(self.project(h.reshape([t, d])))
    }

    /// Final hidden states `[1, T, d]` for one prompt.
    pub fn hidden(&self, input: &VlInput, device: &B::Device) -> Result<Tensor<B, 3>, ModelError> {
        if input.ids.is_empty() {
            return Err(ModelError::Input("an empty prompt".into()));
        }
        let (step, _) = self.prompt_step(input, device)?;
        self.forward(step, &mut self.new_cache())
    }

    /// Logits `[N, vocab]` at the chosen positions of one prompt (e.g. the answer position of a yes/no question
    /// for recognition or R2P's letter choice); only those rows go through the output projection.
    pub fn logits_at(
        &self,
        input: &VlInput,
        positions: &[usize],
        device: &B::Device,
    ) -> Result<Tensor<B, 2>, ModelError> {
        let t = input.ids.len();
        if let Some(&bad) = positions.iter().find(|&&p| p >= t) {
            return Err(ModelError::Input(format!("position {bad} is outside the {t}-token prompt")));
        }
        let h = self.hidden(input, device)?;
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
