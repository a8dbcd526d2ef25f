//! LoRA adapters (Hu et al.; PEFT's `LoraLayer`): `y = W x + (alpha / r) * B A dropout(x)` on chosen Linear
//! layers of the language model, with a frozen base. Disabling the adapters gives the reference policy;
//! merging folds `(alpha / r) B A` into `W`.

mod bank;
pub mod peft;

pub use bank::AdapterBank;

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use regex::Regex;
use serde::{Deserialize, Serialize};

/// Which Linear layers get an adapter, by their Hugging Face module name (`model.layers.3.self_attn.q_proj`,
/// `lm_head`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LoraTargets {
    /// A regular expression that must match the whole name (PEFT's string form).
    Regex(String),
    /// Names that match a module when equal to its name or to a dot-separated tail of it (PEFT's list form:
    /// `q_proj` matches every layer's query projection).
    Names(Vec<String>),
}

/// The target pattern of RePIC's runs: every Linear of the language model and the output head, none of the
/// vision tower.
pub const REPIC_TARGETS: &str = r"model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)|lm_head";

/// LoRA settings (PEFT's `LoraConfig` names).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    /// Rank of the update.
    pub r: usize,
    /// Scaling numerator: the update is multiplied by `alpha / r` (or `alpha / sqrt(r)` with `use_rslora`).
    pub alpha: f64,
    /// Dropout on the adapter's input while training.
    #[serde(default)]
    pub dropout: f64,
    /// Layers that get an adapter.
    #[serde(default = "repic_targets")]
    pub target_modules: LoraTargets,
    /// Rank-stabilised scaling `alpha / sqrt(r)`.
    #[serde(default)]
    pub use_rslora: bool,
}

fn repic_targets() -> LoraTargets {
    LoraTargets::Regex(REPIC_TARGETS.into())
}

impl Default for LoraConfig {
    /// RePIC's reference settings: r = 64, alpha = 128, dropout 0.05, every Linear outside the vision tower.
    fn default() -> Self {
        LoraConfig { r: 64, alpha: 128.0, dropout: 0.05, target_modules: repic_targets(), use_rslora: false }
    }
}

impl LoraConfig {
    /// The factor applied to `B A x`.
    pub fn scale(&self) -> f64 {
        if self.use_rslora { self.alpha / (self.r as f64).sqrt() } else { self.alpha / self.r as f64 }
    }

    /// Check ranges and compile the target pattern; messages name the field.
    pub fn matcher(&self) -> Result<impl Fn(&str) -> bool + '_, String> {
        if self.r == 0 {
            return Err("lora.r must be at least 1".into());
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err("lora.alpha must be a positive number".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err("lora.dropout must be in [0, 1)".into());
        }
        let re = match &self.target_modules {
            LoraTargets::Regex(p) => Some(
                Regex::new(&format!("^(?:{p})$")).map_err(|e| format!("lora.target_modules is not a regex: {e}"))?,
            ),
            LoraTargets::Names(n) if n.is_empty() => return Err("lora.target_modules is an empty list".into()),
            LoraTargets::Names(_) => None,
        };
        Ok(move |name: &str| match (&re, &self.target_modules) {
            (Some(re), _) => re.is_match(name),
            (None, LoraTargets::Names(names)) => names.iter().any(|k| name == k || name.ends_with(&format!(".{k}"))),
            (None, LoraTargets::Regex(_)) => false,
        })
    }
}

/// One adapter: `A` (`in -> r`, Kaiming-uniform like PEFT) and `B` (`r -> out`, zeros), so a fresh adapter leaves
/// the layer's output unchanged.
#[derive(Module, Debug)]
pub struct Lora<B: Backend> {
    /// Down projection (PEFT `lora_A`).
    pub a: Linear<B>,
    /// Up projection (PEFT `lora_B`).
    pub b: Linear<B>,
    dropout: Dropout,
    scale: f64,
    merged: bool,
}

impl<B: Backend> Lora<B> {
    /// A fresh adapter for a `d_in -> d_out` layer.
    pub fn new(d_in: usize, d_out: usize, cfg: &LoraConfig, device: &B::Device) -> Self {
        // PEFT: kaiming_uniform_(A, a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)); B = 0.
        let bound = 1.0 / (d_in as f64).sqrt();
        let a = LinearConfig::new(d_in, cfg.r)
            .with_bias(false)
            .with_initializer(burn::nn::Initializer::Uniform { min: -bound, max: bound })
            .init(device);
        let b = LinearConfig::new(cfg.r, d_out)
            .with_bias(false)
            .with_initializer(burn::nn::Initializer::Zeros)
            .init(device);
        Lora { a, b, dropout: DropoutConfig::new(cfg.dropout).init(), scale: cfg.scale(), merged: false }
    }

    /// An adapter from given weights in burn layout (`a`: `[in, r]`, `b`: `[r, out]`).
    pub fn from_weights(a: Tensor<B, 2>, b: Tensor<B, 2>, scale: f64, dropout: f64) -> Self {
        let lin = |w: Tensor<B, 2>| Linear { weight: Param::from_tensor(w), bias: None };
        Lora { a: lin(a), b: lin(b), dropout: DropoutConfig::new(dropout).init(), scale, merged: false }
    }

    /// The factor applied to `B A x`.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Whether the update is folded into the base weight (the adapter path is then skipped).
    pub fn is_merged(&self) -> bool {
        self.merged
    }

    /// The update `scale * A B` in burn layout `[in, out]` (PyTorch's `scale * B A`, transposed).
    pub fn delta(&self) -> Tensor<B, 2> {
        self.a.weight.val().matmul(self.b.weight.val()) * self.scale
    }

    /// The update `scale * B A dropout(x)` (zero while merged: the base weight holds it then).
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Option<Tensor<B, D>> {
        (!self.merged).then(|| self.update(x))
    }

    pub(crate) fn set_merged_flag(&mut self, merged: bool) {
        self.merged = merged;
    }

    fn update<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        self.b.forward(self.a.forward(self.dropout.forward(x))) * self.scale
    }
}

/// A Linear layer of the language model with an optional adapter.
#[derive(Module, Debug)]
pub struct LoraLinear<B: Backend> {
    /// The (frozen) base layer.
    pub base: Linear<B>,
    /// Its adapter, when attached.
    pub lora: Option<Lora<B>>,
}

impl<B: Backend> LoraLinear<B> {
    /// A layer without adapter.
    pub fn plain(base: Linear<B>) -> Self {
        LoraLinear { base, lora: None }
    }

    /// `base(x)` plus the adapter's update unless it is merged. Inputs of rank > 2 (`[batch, tokens, d]`) are
    /// flattened to one matrix of rows first: one GEMM over every row instead of a batched matmul that would
    /// multiply (and read) the weight once per batch row (a decode step of B sequences is B rows of one token).
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        if D > 2 {
            let dims = x.dims();
            let rows = dims[..D - 1].iter().product();
            let y = self.forward(x.reshape([rows, dims[D - 1]]));
            let mut out = dims;
            out[D - 1] = y.dims()[1];
            return y.reshape(out);
        }
        match self.lora.as_ref().and_then(|l| l.forward(x.clone())) {
            Some(update) => self.base.forward(x) + update,
            None => self.base.forward(x),
        }
    }

    /// Attach a fresh adapter.
    pub fn attach(&mut self, cfg: &LoraConfig, device: &B::Device) {
        let [d_in, d_out] = self.base.weight.dims();
        self.lora = Some(Lora::new(d_in, d_out, cfg, device));
    }

    /// Fold the adapter into the base weight (`merge = true`) or take it back out (`false`); a no-op when it is
    /// already in that state or absent.
    pub fn set_merged(&mut self, merge: bool) {
        let Some(l) = self.lora.as_mut().filter(|l| l.merged != merge) else { return };
        shift_weight(&mut self.base.weight, l.delta().detach(), merge);
        l.merged = merge;
    }
}

/// Add `delta` to a weight (`add`) or subtract it, keeping the parameter's id and whether it trains (merging and
/// unmerging an adapter).
pub(crate) fn shift_weight<B: Backend>(weight: &mut Param<Tensor<B, 2>>, delta: Tensor<B, 2>, add: bool) {
    let w = weight.val();
    let w = if add { w + delta } else { w - delta };
    *weight = Param::initialized(weight.id, w.set_require_grad(weight.is_require_grad()));
}
