//! LoRA on a Qwen2-VL / Qwen2.5-VL model: attaching adapters by module name, the reference policy (adapters
//! off), merging and unmerging.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::backend::Backend;

use super::QwenVl;
use super::config::{Arch, QwenVlConfig};
use crate::ModelError;
use crate::lora::{Lora, LoraConfig, LoraLinear, shift_weight};

/// The Hugging Face names of the vision tower's Linear layers (LoRA there is refused).
fn vision_linear_names(cfg: &QwenVlConfig) -> Vec<String> {
    let mlp: &[&str] = match cfg.arch {
        Arch::Qwen2Vl => &["fc1", "fc2"],
        Arch::Qwen25Vl => &["gate_proj", "up_proj", "down_proj"],
    };
    let mut names: Vec<String> = (0..cfg.vision.depth)
        .flat_map(|i| {
            ["attn.qkv".to_string(), "attn.proj".to_string()]
                .into_iter()
                .chain(mlp.iter().map(|m| format!("mlp.{m}")))
                .map(move |n| format!("visual.blocks.{i}.{n}"))
        })
        .collect();
    names.extend(["visual.merger.mlp.0".to_string(), "visual.merger.mlp.2".to_string()]);
    names
}

impl<B: Backend> QwenVl<B> {
    /// Every Linear of the language model that can take an adapter, with its Hugging Face name.
    pub fn text_linears(&self) -> Vec<(String, &LoraLinear<B>)> {
        let mut out = Vec::new();
        for (i, l) in self.model.layers.iter().enumerate() {
            let a = &l.self_attn;
            for (n, m) in [("q_proj", &a.q_proj), ("k_proj", &a.k_proj), ("v_proj", &a.v_proj), ("o_proj", &a.o_proj)] {
                out.push((format!("model.layers.{i}.self_attn.{n}"), m));
            }
            let p = &l.mlp;
            for (n, m) in [("gate_proj", &p.gate_proj), ("up_proj", &p.up_proj), ("down_proj", &p.down_proj)] {
                out.push((format!("model.layers.{i}.mlp.{n}"), m));
            }
        }
        out
    }

    fn text_linears_mut(&mut self) -> Vec<(String, &mut LoraLinear<B>)> {
        let mut out = Vec::new();
        for (i, l) in self.model.layers.iter_mut().enumerate() {
            let a = &mut l.self_attn;
            for (n, m) in [
                ("q_proj", &mut a.q_proj),
                ("k_proj", &mut a.k_proj),
                ("v_proj", &mut a.v_proj),
                ("o_proj", &mut a.o_proj),
            ] {
                out.push((format!("model.layers.{i}.self_attn.{n}"), m));
            }
            let p = &mut l.mlp;
            for (n, m) in
                [("gate_proj", &mut p.gate_proj), ("up_proj", &mut p.up_proj), ("down_proj", &mut p.down_proj)]
            {
                out.push((format!("model.layers.{i}.mlp.{n}"), m));
            }
        }
        out
    }

    /// Freeze every base weight and attach fresh adapters (B = 0: the output is unchanged) to the layers whose
    /// name `lora.target_modules` matches. Returns the adapted names; refuses patterns that match nothing or
    /// match a vision-tower layer.
    pub fn attach_lora(&mut self, lora: &LoraConfig, device: &B::Device) -> Result<Vec<String>, ModelError> {
        let matches = lora.matcher().map_err(ModelError::Input)?;
        if let Some(v) = vision_linear_names(self.config()).into_iter().find(|n| matches(n)) {
            return Err(ModelError::Input(format!(
                "lora.target_modules matches the vision-tower layer `{v}`; adapters go on the language model only"
            )));
        }
        *self = self.clone().no_grad();
        let mut names = Vec::new();
        for (name, layer) in self.text_linears_mut() {
            if matches(&name) {
                layer.attach(lora, device);
                names.push(name);
            }
        }
        if matches("lm_head") {
            let [vocab, d] = self.model.embed_tokens.weight.dims();
            self.lm_head_lora = Some(Lora::new(d, vocab, lora, device));
            names.push("lm_head".into());
        }
        if names.is_empty() {
            return Err(ModelError::Input("lora.target_modules matches no Linear layer of the model".into()));
        }
        Ok(names)
    }

    /// The attached adapters with their layer's Hugging Face name (`lm_head` last).
    pub fn adapters(&self) -> Vec<(String, &Lora<B>)> {
        let mut out: Vec<(String, &Lora<B>)> =
            self.text_linears().into_iter().filter_map(|(n, l)| l.lora.as_ref().map(|a| (n, a))).collect();
        if let Some(l) = &self.lm_head_lora {
            out.push(("lm_head".into(), l));
        }
        out
    }

    /// Put adapters (burn layout) on the named layers, replacing any there; names as [`QwenVl::adapters`].
    pub fn set_adapters(&mut self, adapters: Vec<(String, Lora<B>)>) -> Result<(), ModelError> {
        let (hidden, vocab) = (self.config().text.hidden_size, self.config().text.vocab_size);
        for (name, lora) in adapters {
            // Shapes are said as PEFT's files hold them: lora_A [r, in], lora_B [out, r].
            let (a, b) = (lora.a.weight.dims(), lora.b.weight.dims());
            let fits = |d_in: usize, d_out: usize| -> Result<(), ModelError> {
                if a[0] != d_in || b[1] != d_out || a[1] != b[0] {
                    return Err(ModelError::Input(format!(
                        "adapter of `{name}`: lora_A [{}, {}] and lora_B [{}, {}] do not fit a layer of {d_in} inputs \
                         and {d_out} outputs (an adapter trained on another model?)",
                        a[1], a[0], b[1], b[0]
                    )));
                }
                Ok(())
            };
            if name == "lm_head" {
                fits(hidden, vocab)?;
                self.lm_head_lora = Some(lora);
                continue;
            }
            let mut layers = self.text_linears_mut();
            let Some((_, layer)) = layers.iter_mut().find(|(n, _)| *n == name) else {
                return Err(ModelError::Input(format!("no adaptable layer named `{name}`")));
            };
            let [d_in, d_out] = layer.base.weight.dims();
            fits(d_in, d_out)?;
            layer.lora = Some(lora);
        }
        Ok(())
    }

    /// Fold every adapter into its base weight (`true`) or take it back out (`false`). A tied output head gets
    /// its own weight while merged and is tied again when unmerged.
    pub fn set_lora_merged(&mut self, merged: bool) {
        for (_, layer) in self.text_linears_mut() {
            layer.set_merged(merged);
        }
        let Some(lora) = self.lm_head_lora.as_mut().filter(|l| l.is_merged() != merged) else { return };
        let delta = lora.delta().detach();
        match (&mut self.lm_head, merged) {
            (None, true) => {
                // `delta` first: burn-tch 0.21 gives a transposed view a storage count of its own
                // (tracel-ai/burn#5375), so `view + delta` would add in place into the shared embedding.
                let w = delta + self.model.embed_tokens.weight.val().transpose();
                self.lm_head = Some(Linear { weight: Param::from_tensor(w.set_require_grad(false)), bias: None });
                self.head_untied = true;
            }
            (Some(_), false) if self.head_untied => {
                self.lm_head = None;
                self.head_untied = false;
            }
            (Some(head), _) => shift_weight(&mut head.weight, delta, merged),
            (None, false) => {}
        }
        lora.set_merged_flag(merged);
    }

    /// Whether any adapter is attached.
    pub fn has_lora(&self) -> bool {
        !self.adapters().is_empty()
    }

    /// The model without its adapters, unmerged first (the reference policy of GRPO: base weights only). Cheap:
    /// tensors are shared, not copied.
    pub fn without_lora(&self) -> Self {
        let mut m = self.clone();
        m.set_lora_merged(false);
        for (_, layer) in m.text_linears_mut() {
            layer.lora = None;
        }
        m.lm_head_lora = None;
        m
    }

    /// The model with every adapter folded into its base weight and removed (PEFT's `merge_and_unload`).
    pub fn merge_and_unload(mut self) -> Self {
        self.set_lora_merged(true);
        for (_, layer) in self.text_linears_mut() {
            layer.lora = None;
        }
        self.lm_head_lora = None;
        self.head_untied = false;
        self
    }

    /// Whether the output head holds its own weight although the checkpoint ties it to the embedding (after
    /// merging an adapter of a tied head); an export then writes `tie_word_embeddings: false`.
    pub fn head_untied(&self) -> bool {
        self.config().text.tie_word_embeddings && self.lm_head.is_some()
    }
}
