//! The Qwen2 decoder: GQA attention with q/k/v bias and M-RoPE, SwiGLU MLP, RMSNorm.

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig};
use burn::tensor::activation::{silu, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Tensor};

use super::config::TextConfig;
use super::linear;
use super::norm::Norm;
use super::rope::rotate;
use crate::engine::KvCache;
use crate::lora::LoraLinear;

/// Self-attention of one decoder layer.
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    /// Query projection (with bias).
    pub q_proj: LoraLinear<B>,
    /// Key projection (with bias).
    pub k_proj: LoraLinear<B>,
    /// Value projection (with bias).
    pub v_proj: LoraLinear<B>,
    /// Output projection (no bias).
    pub o_proj: LoraLinear<B>,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

/// SwiGLU MLP.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// Gate projection.
    pub gate_proj: LoraLinear<B>,
    /// Up projection.
    pub up_proj: LoraLinear<B>,
    /// Down projection.
    pub down_proj: LoraLinear<B>,
}

/// One decoder layer.
#[derive(Module, Debug)]
pub struct DecoderLayer<B: Backend> {
    /// Attention.
    pub self_attn: Attention<B>,
    /// MLP.
    pub mlp: Mlp<B>,
    /// Norm before attention.
    pub input_layernorm: Norm<B>,
    /// Norm before the MLP.
    pub post_attention_layernorm: Norm<B>,
}

/// The decoder stack (HF `model.*`).
#[derive(Module, Debug)]
pub struct TextModel<B: Backend> {
    /// Token embedding.
    pub embed_tokens: Embedding<B>,
    /// Layers.
    pub layers: Vec<DecoderLayer<B>>,
    /// Final norm.
    pub norm: Norm<B>,
}

impl<B: Backend> TextModel<B> {
    /// A randomly initialised decoder for `cfg` (weights are then loaded from a checkpoint).
    pub fn new(cfg: &TextConfig, device: &B::Device) -> Self {
        let (d, hd) = (cfg.hidden_size, cfg.head_dim());
        let layers = (0..cfg.num_hidden_layers)
            .map(|_| DecoderLayer {
                self_attn: Attention {
                    q_proj: LoraLinear::plain(linear(d, cfg.num_attention_heads * hd, true, device)),
                    k_proj: LoraLinear::plain(linear(d, cfg.num_key_value_heads * hd, true, device)),
                    v_proj: LoraLinear::plain(linear(d, cfg.num_key_value_heads * hd, true, device)),
                    o_proj: LoraLinear::plain(linear(cfg.num_attention_heads * hd, d, false, device)),
                    heads: cfg.num_attention_heads,
                    kv_heads: cfg.num_key_value_heads,
                    head_dim: hd,
                },
                mlp: Mlp {
                    gate_proj: LoraLinear::plain(linear(d, cfg.intermediate_size, false, device)),
                    up_proj: LoraLinear::plain(linear(d, cfg.intermediate_size, false, device)),
                    down_proj: LoraLinear::plain(linear(cfg.intermediate_size, d, false, device)),
                },
                input_layernorm: Norm::rms(d, cfg.rms_norm_eps, device),
                post_attention_layernorm: Norm::rms(d, cfg.rms_norm_eps, device),
            })
            .collect();
        TextModel {
            embed_tokens: EmbeddingConfig::new(cfg.vocab_size, d).init(device),
            layers,
            norm: Norm::rms(d, cfg.rms_norm_eps, device),
        }
    }

    /// Run the decoder over embeddings `[B, T, d]` of new positions with rotary tables `[B, T, head_dim]` and
    /// a mask `[B or 1, T, P + T]` (P cached positions) that is true where attention is forbidden (`None`: attend
    /// to everything); appends the new keys and values to `cache`. Returns final-norm hidden states.
    pub(crate) fn forward(
        &self,
        x: Tensor<B, 3>,
        cos: &Tensor<B, 3>,
        sin: &Tensor<B, 3>,
        mask: Option<&Tensor<B, 3, Bool>>,
        cache: &mut KvCache<B>,
    ) -> Tensor<B, 3> {
        let mut h = x;
        for (i, layer) in self.layers.iter().enumerate() {
            let a = layer.self_attn.forward(layer.input_layernorm.forward(h.clone()), cos, sin, mask, cache, i);
            h = h + a;
            let m = layer.mlp.forward(layer.post_attention_layernorm.forward(h.clone()));
            h = h + m;
        }
        self.norm.forward(h)
    }
}

impl<B: Backend> Mlp<B> {
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.down_proj.forward(silu(self.gate_proj.forward(x.clone())) * self.up_proj.forward(x))
    }
}

impl<B: Backend> Attention<B> {
    fn forward(
        &self,
        x: Tensor<B, 3>,
        cos: &Tensor<B, 3>,
        sin: &Tensor<B, 3>,
        mask: Option<&Tensor<B, 3, Bool>>,
        cache: &mut KvCache<B>,
        layer: usize,
    ) -> Tensor<B, 3> {
        let [b, t, _] = x.dims();
        let split = |y: Tensor<B, 3>, n: usize| y.reshape([b, t, n, self.head_dim]).swap_dims(1, 2);
        let q = split(self.q_proj.forward(x.clone()), self.heads);
        let k = split(self.k_proj.forward(x.clone()), self.kv_heads);
        let v = split(self.v_proj.forward(x), self.kv_heads);
        let (cos, sin) = (cos.clone().unsqueeze_dim::<4>(1), sin.clone().unsqueeze_dim::<4>(1));
        let q = rotate(q, &cos, &sin);
        let k = rotate(k, &cos, &sin);
        let (k, v) = cache.append(layer, k, v);
        // Grouped-query attention without copying keys/values per query head: the `rep` query heads sharing a
        // key/value head are stacked along the query axis (HF's repeat_kv order: head h uses kv head h / rep).
        let rep = self.heads / self.kv_heads;
        let p = k.dims()[2];
        let q = q.reshape([b, self.kv_heads, rep * t, self.head_dim]);
        let scale = (self.head_dim as f64).powf(-0.5);
        let mut scores = q.matmul(k.swap_dims(2, 3)) * scale;
        if let Some(mask) = mask {
            let mask = mask.clone().unsqueeze_dim::<4>(1).expand([b, rep, t, p]).reshape([b, 1, rep * t, p]);
            scores = scores.mask_fill(mask.expand([b, self.kv_heads, rep * t, p]), f32::NEG_INFINITY);
        }
        let out = softmax(scores, 3).matmul(v).reshape([b, self.heads, t, self.head_dim]);
        self.o_proj.forward(out.swap_dims(1, 2).reshape([b, t, self.heads * self.head_dim]))
    }
}
