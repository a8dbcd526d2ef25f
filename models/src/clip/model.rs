//! CLIP's towers: a ViT image encoder and a causal text encoder, each projected and L2-normalised.

use std::path::Path;

use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, Linear};
use burn::tensor::activation::{gelu, sigmoid, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};

use super::config::{ClipConfig, TowerConfig};
use crate::ModelError;
use crate::qwen2_vl::{Norm, linear};

/// Self-attention of a CLIP layer.
#[derive(Module, Debug)]
pub struct ClipAttention<B: Backend> {
    /// Query.
    pub q_proj: Linear<B>,
    /// Key.
    pub k_proj: Linear<B>,
    /// Value.
    pub v_proj: Linear<B>,
    /// Output.
    pub out_proj: Linear<B>,
    heads: usize,
}

/// MLP of a CLIP layer.
#[derive(Module, Debug)]
pub struct ClipMlp<B: Backend> {
    /// First layer.
    pub fc1: Linear<B>,
    /// Second layer.
    pub fc2: Linear<B>,
    quick: bool,
}

/// A pre-norm transformer layer.
#[derive(Module, Debug)]
pub struct ClipLayer<B: Backend> {
    /// Attention.
    pub self_attn: ClipAttention<B>,
    /// Norm before attention.
    pub layer_norm1: Norm<B>,
    /// MLP.
    pub mlp: ClipMlp<B>,
    /// Norm before the MLP.
    pub layer_norm2: Norm<B>,
}

/// The layer stack.
#[derive(Module, Debug)]
pub struct ClipEncoder<B: Backend> {
    /// Layers.
    pub layers: Vec<ClipLayer<B>>,
}

/// Vision embeddings: class token, patches, positions.
#[derive(Module, Debug)]
pub struct VisionEmbeddings<B: Backend> {
    /// Class token.
    pub class_embedding: Param<Tensor<B, 1>>,
    /// Patch projection (HF Conv2d, reshaped on load).
    pub patch_embedding: Linear<B>,
    /// Learned positions.
    pub position_embedding: Embedding<B>,
}

/// The vision tower (HF `vision_model`).
#[derive(Module, Debug)]
pub struct ClipVision<B: Backend> {
    /// Embeddings.
    pub embeddings: VisionEmbeddings<B>,
    /// Norm before the encoder (HF's spelling).
    pub pre_layrnorm: Norm<B>,
    /// Encoder.
    pub encoder: ClipEncoder<B>,
    /// Norm of the pooled class token.
    pub post_layernorm: Norm<B>,
}

/// Text embeddings.
#[derive(Module, Debug)]
pub struct TextEmbeddings<B: Backend> {
    /// Tokens.
    pub token_embedding: Embedding<B>,
    /// Positions.
    pub position_embedding: Embedding<B>,
}

/// The text tower (HF `text_model`).
#[derive(Module, Debug)]
pub struct ClipText<B: Backend> {
    /// Embeddings.
    pub embeddings: TextEmbeddings<B>,
    /// Encoder (causal).
    pub encoder: ClipEncoder<B>,
    /// Final norm.
    pub final_layer_norm: Norm<B>,
}

/// CLIP with both towers and projections (HF `CLIPModel`).
#[derive(Module, Debug)]
pub struct Clip<B: Backend> {
    /// Vision tower.
    pub vision_model: ClipVision<B>,
    /// Text tower.
    pub text_model: ClipText<B>,
    /// Image projection.
    pub visual_projection: Linear<B>,
    /// Text projection.
    pub text_projection: Linear<B>,
    /// Temperature (log scale).
    pub logit_scale: Param<Tensor<B, 1>>,
    /// The configuration the model was built from.
    #[module(skip)]
    cfg: ClipConfig,
}

fn encoder<B: Backend>(c: &TowerConfig, device: &B::Device) -> ClipEncoder<B> {
    let d = c.hidden_size;
    let layers = (0..c.num_hidden_layers)
        .map(|_| ClipLayer {
            self_attn: ClipAttention {
                q_proj: linear(d, d, true, device),
                k_proj: linear(d, d, true, device),
                v_proj: linear(d, d, true, device),
                out_proj: linear(d, d, true, device),
                heads: c.num_attention_heads,
            },
            layer_norm1: Norm::layer(d, c.layer_norm_eps, device),
            mlp: ClipMlp {
                fc1: linear(d, c.intermediate_size, true, device),
                fc2: linear(c.intermediate_size, d, true, device),
                quick: c.hidden_act == "quick_gelu",
            },
            layer_norm2: Norm::layer(d, c.layer_norm_eps, device),
        })
        .collect();
    ClipEncoder { layers }
}

impl<B: Backend> ClipEncoder<B> {
    fn forward(&self, mut x: Tensor<B, 3>, mask: Option<&Tensor<B, 3, Bool>>) -> Tensor<B, 3> {
        for l in &self.layers {
            x = x.clone() + l.self_attn.forward(l.layer_norm1.forward(x), mask);
            let h = l.layer_norm2.forward(x.clone());
            let a = l.mlp.fc1.forward(h);
            let a = if l.mlp.quick { a.clone() * sigmoid(a * 1.702) } else { gelu(a) };
            x = x + l.mlp.fc2.forward(a);
        }
        x
    }
}

impl<B: Backend> ClipAttention<B> {
    fn forward(&self, x: Tensor<B, 3>, mask: Option<&Tensor<B, 3, Bool>>) -> Tensor<B, 3> {
        let [b, t, d] = x.dims();
        let hd = d / self.heads;
        let split = |y: Tensor<B, 3>| y.reshape([b, t, self.heads, hd]).swap_dims(1, 2);
        let q = split(self.q_proj.forward(x.clone()));
        let k = split(self.k_proj.forward(x.clone()));
        let v = split(self.v_proj.forward(x));
        let mut s = q.matmul(k.swap_dims(2, 3)) * (hd as f64).powf(-0.5);
        if let Some(m) = mask {
            let m = m.clone().unsqueeze_dim::<4>(1).expand(s.dims());
            s = s.mask_fill(m, f32::NEG_INFINITY);
        }
        let o = softmax(s, 3).matmul(v).swap_dims(1, 2).reshape([b, t, d]);
        self.out_proj.forward(o)
    }
}

fn l2_normalise<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let n = x.clone().square().sum_dim(1).sqrt();
    x / n
}

impl<B: Backend> Clip<B> {
    /// A randomly initialised CLIP for `cfg`.
    pub fn new(cfg: &ClipConfig, device: &B::Device) -> Self {
        let (v, t) = (&cfg.vision, &cfg.text);
        let patches = (v.image_size / v.patch_size).pow(2);
        Clip {
            vision_model: ClipVision {
                embeddings: VisionEmbeddings {
                    class_embedding: Param::from_tensor(Tensor::zeros([v.hidden_size], device)),
                    patch_embedding: linear(v.num_channels * v.patch_size * v.patch_size, v.hidden_size, false, device),
                    position_embedding: EmbeddingConfig::new(patches + 1, v.hidden_size).init(device),
                },
                pre_layrnorm: Norm::layer(v.hidden_size, v.layer_norm_eps, device),
                encoder: encoder(v, device),
                post_layernorm: Norm::layer(v.hidden_size, v.layer_norm_eps, device),
            },
            text_model: ClipText {
                embeddings: TextEmbeddings {
                    token_embedding: EmbeddingConfig::new(t.vocab_size, t.hidden_size).init(device),
                    position_embedding: EmbeddingConfig::new(t.max_position_embeddings, t.hidden_size).init(device),
                },
                encoder: encoder(t, device),
                final_layer_norm: Norm::layer(t.hidden_size, t.layer_norm_eps, device),
            },
            visual_projection: linear(v.hidden_size, cfg.projection_dim, false, device),
            text_projection: linear(t.hidden_size, cfg.projection_dim, false, device),
            logit_scale: Param::from_tensor(Tensor::zeros([1], device)),
            cfg: cfg.clone(),
        }
    }

    /// Load a CLIP checkpoint folder (config.json + safetensors) onto `device`.
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self, ModelError> {
        let cfg = ClipConfig::load(dir)?;
        let mut model = Clip::new(&cfg, device);
        let ignore = ["text_model.embeddings.position_ids", "vision_model.embeddings.position_ids"];
        crate::hf::load::load_weights(&mut model, dir, &[], &ignore)?;
        Ok(model)
    }

    /// The configuration the model was built from.
    pub fn config(&self) -> &ClipConfig {
        &self.cfg
    }

    /// L2-normalised image embeddings `[N, projection_dim]` for preprocessed images `[N, C*S*S]` (CHW).
    pub fn image_embeds(&self, pixels: Tensor<B, 2>) -> Tensor<B, 2> {
        let v = &self.cfg.vision;
        let (n, c, s, p) = (pixels.dims()[0], v.num_channels, v.image_size, v.patch_size);
        let g = s / p;
        // [N, C, g, p, g, p] -> [N, g, g, C, p, p]: one row per patch, flattened as the conv weight.
        let patches = pixels.reshape([n * c * g, p, g, p]).swap_dims(1, 2).reshape([n, c, g * g, p * p]);
        let patches = patches.swap_dims(1, 2).reshape([n, g * g, c * p * p]);
        let e = &self.vision_model.embeddings;
        let x = e.patch_embedding.forward(patches);
        let cls = e.class_embedding.val().reshape([1, 1, v.hidden_size]).repeat_dim(0, n);
        let x = Tensor::cat(vec![cls, x], 1);
        let pos = Tensor::<B, 1, Int>::arange(0..(g * g + 1) as i64, &x.device()).unsqueeze::<2>();
        let x = x + e.position_embedding.forward(pos);
        let h = self.vision_model.encoder.forward(self.vision_model.pre_layrnorm.forward(x), None);
        let pooled = self.vision_model.post_layernorm.forward(h.narrow(1, 0, 1).reshape([n, v.hidden_size]));
        l2_normalise(self.visual_projection.forward(pooled))
    }

    /// L2-normalised text embedding `[1, projection_dim]` of one token sequence (with its start/end tokens).
    pub fn text_embed(&self, ids: &[u32]) -> Result<Tensor<B, 2>, ModelError> {
        let t = &self.cfg.text;
        if ids.is_empty() || ids.len() > t.max_position_embeddings {
            return Err(ModelError::Input(format!(
                "CLIP text takes 1 to {} tokens, got {}",
                t.max_position_embeddings,
                ids.len()
            )));
        }
        let dev = self.logit_scale.val().device();
        let n = ids.len();
        let tok = Tensor::<B, 2, Int>::from_data(
            TensorData::new(ids.iter().map(|&x| i64::from(x)).collect::<Vec<_>>(), [1, n]),
            &dev,
        );
        let pos = Tensor::<B, 1, Int>::arange(0..n as i64, &dev).unsqueeze::<2>();
        let e = &self.text_model.embeddings;
        let x = e.token_embedding.forward(tok) + e.position_embedding.forward(pos);
        let mask = Tensor::<B, 2, Bool>::tril_mask([n, n], 0, &dev).unsqueeze::<3>();
        let h = self.text_model.final_layer_norm.forward(self.text_model.encoder.forward(x, Some(&mask)));
        // Pooled position: the first end-of-text token (the largest id for legacy configs with eos id 2).
        let at = match t.eos_token_id {
            Some(2) | None => {
                ids.iter().enumerate().max_by_key(|(i, v)| (**v, std::cmp::Reverse(*i))).map_or(0, |(i, _)| i)
            }
            Some(eos) => ids.iter().position(|&v| i64::from(v) == eos).unwrap_or(0),
        };
        let pooled = h.narrow(1, at, 1).reshape([1, t.hidden_size]);
        Ok(l2_normalise(self.text_projection.forward(pooled)))
    }
}
