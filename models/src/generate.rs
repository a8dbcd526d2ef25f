//! Token generation for one prompt with a key/value cache: greedy or temperature sampling, seeded, stopping at
//! EOS. The prompt (with its image features) is prefilled once; each new token costs one decoder step.

use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::qwen::KvCache;
use crate::qwen::rope::{mrope_tables, rope_index};
use crate::{ModelError, QwenVl, QwenVlConfig, VlInput};

/// How to generate.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// Most tokens to generate.
    pub max_new_tokens: usize,
    /// 0 = greedy; otherwise logits are divided by it and a token is sampled.
    pub temperature: f64,
    /// Seed of the sampler.
    pub seed: u64,
    /// Tokens that end generation (kept in the output).
    pub stop_tokens: Vec<u32>,
}

/// What came out.
#[derive(Clone, Debug, PartialEq)]
pub struct Generation {
    /// Generated token ids (including a final stop token, if one was produced).
    pub tokens: Vec<u32>,
    /// Log-probability of each generated token under the distribution it was drawn from (the model's for
    /// greedy decoding, the temperature-scaled one when sampling).
    pub logprobs: Vec<f32>,
}

/// Generate a continuation of `input`.
pub fn generate<B: Backend>(
    model: &QwenVl<B>,
    cfg: &QwenVlConfig,
    input: &VlInput,
    opts: &GenerateOptions,
    device: &B::Device,
) -> Result<Generation, ModelError> {
    let tc = &cfg.text;
    let (pos, delta) = rope_index(&input.ids, cfg.tokens.image, &input.grids, cfg.vision.spatial_merge_size)
        .map_err(ModelError::Input)?;
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut out = Generation { tokens: Vec::new(), logprobs: Vec::new() };
    let mut cache = KvCache::new(tc.num_hidden_layers);
    // Prefill: the whole prompt, causal.
    let mut x = model.embed(input, cfg, device)?;
    let mut pos = pos;
    let mut mask = Some(Tensor::<B, 2, Bool>::tril_mask([input.ids.len(); 2], 0, device).unsqueeze::<3>());
    for step in 0..opts.max_new_tokens {
        let (cos, sin) = mrope_tables::<B>(&pos, tc.head_dim(), tc.rope_theta, &tc.mrope_section, device);
        let h = model.model.forward(x, &cos.unsqueeze(), &sin.unsqueeze(), mask.as_ref(), Some(&mut cache));
        let [_, t, d] = h.dims();
        let mut logits = model.project(h.narrow(1, t - 1, 1).reshape([1, d]));
        if opts.temperature > 0.0 {
            logits = logits / opts.temperature;
        }
        let lp: Vec<f32> =
            log_softmax(logits, 1).into_data().to_vec().map_err(|e| ModelError::Input(format!("{e:?}")))?;
        let next = if opts.temperature > 0.0 { sample(&lp, &mut rng) } else { argmax(&lp) };
        out.tokens.push(next as u32);
        out.logprobs.push(lp[next]);
        if opts.stop_tokens.contains(&(next as u32)) {
            break;
        }
        // Decode: one new text token; its M-RoPE position is its index plus the prompt's rope delta.
        let p = (input.ids.len() + step) as i64 + delta;
        pos = [vec![p], vec![p], vec![p]];
        mask = None;
        let tok = Tensor::<B, 2, Int>::from_data(TensorData::new(vec![next as i64], [1, 1]), device);
        x = model.model.embed_tokens.forward(tok);
    }
    Ok(out)
}

/// Index of the largest value (the first one on ties, as torch.argmax).
fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().fold((0, f32::NEG_INFINITY), |best, (i, &x)| if x > best.1 { (i, x) } else { best }).0
}

/// Draw an index from log-probabilities.
fn sample(lp: &[f32], rng: &mut impl Rng) -> usize {
    let u: f64 = rng.random();
    let mut acc = 0.0;
    for (i, &l) in lp.iter().enumerate() {
        acc += f64::from(l).exp();
        if u < acc {
            return i;
        }
    }
    argmax(lp)
}
