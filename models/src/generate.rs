//! Token generation for one prompt with a key/value cache: greedy or temperature sampling, seeded, stopping at
//! EOS. The prompt (with its image features) is prefilled once; each new token costs one decoder step.

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::qwen::KvCache;
use crate::qwen::rope::{mrope_tables, rope_index};
use crate::sampling::{SamplingOptions, choose};
use crate::{ModelError, QwenVl, QwenVlConfig, VlInput};

/// How to generate.
#[derive(Clone, Debug, Default)]
pub struct GenerateOptions {
    /// Most tokens to generate.
    pub max_new_tokens: usize,
    /// How each token is chosen.
    pub sampling: SamplingOptions,
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
    /// Log-probability of each generated token under the penalised, temperature-scaled distribution before
    /// top-k/top-p truncation (the model's own distribution for plain greedy decoding).
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
    opts.sampling.validate().map_err(ModelError::Input)?;
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut history = input.ids.clone();
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
        let logits = model.project(h.narrow(1, t - 1, 1).reshape([1, d]));
        let row: Vec<f32> = logits.into_data().to_vec().map_err(|e| ModelError::Input(format!("{e:?}")))?;
        let (next, lp) = choose(&row, &history, &opts.sampling, &mut rng);
        history.push(next);
        out.tokens.push(next);
        out.logprobs.push(lp);
        if opts.stop_tokens.contains(&next) {
            break;
        }
        // Decode: one new text token; its M-RoPE position is its index plus the prompt's rope delta.
        let p = (input.ids.len() + step) as i64 + delta;
        pos = [vec![p], vec![p], vec![p]];
        mask = None;
        let tok = Tensor::<B, 2, Int>::from_data(TensorData::new(vec![i64::from(next)], [1, 1]), device);
        x = model.model.embed_tokens.forward(tok);
    }
    Ok(out)
}
