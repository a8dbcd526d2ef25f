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

/// Generate a continuation of `input` (sample 0 of [`generate_group`]: the sampler is seeded with `seed`).
pub fn generate<B: Backend>(
    model: &QwenVl<B>,
    cfg: &QwenVlConfig,
    input: &VlInput,
    opts: &GenerateOptions,
    device: &B::Device,
) -> Result<Generation, ModelError> {
    let mut all = generate_group(model, cfg, input, 1, opts, device)?;
    Ok(all.remove(0))
}

/// Generate `group` continuations of the same prompt, as GRPO does: the prompt is prefilled once and its
/// cache shared; the samples then decode as one batch. Sample `i` draws from a sampler seeded with
/// `seed + i`, so it equals a single [`generate`] run with that seed.
pub fn generate_group<B: Backend>(
    model: &QwenVl<B>,
    cfg: &QwenVlConfig,
    input: &VlInput,
    group: usize,
    opts: &GenerateOptions,
    device: &B::Device,
) -> Result<Vec<Generation>, ModelError> {
    opts.sampling.validate().map_err(ModelError::Input)?;
    if group == 0 {
        return Err(ModelError::Input("the group size must be at least 1".into()));
    }
    let tc = &cfg.text;
    let (pos, delta) = rope_index(&input.ids, cfg.tokens.image, &input.grids, cfg.vision.spatial_merge_size)
        .map_err(ModelError::Input)?;
    let mut rngs: Vec<ChaCha8Rng> =
        (0..group as u64).map(|i| ChaCha8Rng::seed_from_u64(opts.seed.wrapping_add(i))).collect();
    let mut history = vec![input.ids.clone(); group];
    let mut outs = vec![Generation { tokens: Vec::new(), logprobs: Vec::new() }; group];
    let mut done = vec![opts.max_new_tokens == 0; group];
    let mut cache = KvCache::new(tc.num_hidden_layers);
    // Prefill: the whole prompt once, causal.
    let mut x = model.embed(input, cfg, device)?;
    let mut pos = pos;
    let mut mask = Some(Tensor::<B, 2, Bool>::tril_mask([input.ids.len(); 2], 0, device).unsqueeze::<3>());
    for step in 0..opts.max_new_tokens {
        let (cos, sin) = mrope_tables::<B>(&pos, tc.head_dim(), tc.rope_theta, &tc.mrope_section, device);
        let rows = x.dims()[0];
        let (cos, sin) = (cos.unsqueeze::<3>().repeat_dim(0, rows), sin.unsqueeze::<3>().repeat_dim(0, rows));
        let h = model.model.forward(x, &cos, &sin, mask.as_ref(), Some(&mut cache));
        let [_, t, d] = h.dims();
        let logits = model.project(h.narrow(1, t - 1, 1).reshape([rows, d]));
        let vocab = logits.dims()[1];
        let flat: Vec<f32> = logits.into_data().to_vec().map_err(|e| ModelError::Input(format!("{e:?}")))?;
        let mut next = Vec::with_capacity(group);
        for i in 0..group {
            // After the shared prefill there is one row; then one row per sample.
            let row = &flat[if rows == 1 { 0 } else { i * vocab }..][..vocab];
            let last = history[i].last().copied().unwrap_or_default();
            if done[i] {
                next.push(last);
                continue;
            }
            let (tok, lp) = choose(row, &history[i], &opts.sampling, &mut rngs[i]);
            history[i].push(tok);
            outs[i].tokens.push(tok);
            outs[i].logprobs.push(lp);
            done[i] = opts.stop_tokens.contains(&tok) || outs[i].tokens.len() == opts.max_new_tokens;
            next.push(tok);
        }
        if done.iter().all(|&d| d) {
            break;
        }
        if rows == 1 && group > 1 {
            for layer in cache.layers.iter_mut() {
                if let Some((k, v)) = layer.take() {
                    *layer = Some((k.repeat_dim(0, group), v.repeat_dim(0, group)));
                }
            }
        }
        // Decode: one new text token per sample at position index + the prompt's rope delta.
        let p = (input.ids.len() + step) as i64 + delta;
        pos = [vec![p], vec![p], vec![p]];
        mask = None;
        let ids: Vec<i64> = next.iter().map(|&t| i64::from(t)).collect();
        let tok = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [group, 1]), device);
        x = model.model.embed_tokens.forward(tok);
    }
    Ok(outs)
}
