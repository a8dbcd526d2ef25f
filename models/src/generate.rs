//! Token generation with a key/value cache, for one prompt, a batch of prompts (left padded) or a group of
//! samples sharing one prefill (GRPO). Prompts, image features included, are prefilled once; each new token
//! costs one decoder step per row. Sampling is seeded per row and stops at the stop tokens.

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::qwen::KvCache;
use crate::qwen::rope::{Positions, mrope_tables, rope_index};
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
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Generation {
    /// Generated token ids (including a final stop token, if one was produced).
    pub tokens: Vec<u32>,
    /// Log-probability of each generated token under the penalised, temperature-scaled distribution before
    /// top-k/top-p truncation (the model's own distribution for plain greedy decoding).
    pub logprobs: Vec<f32>,
}

/// Generate a continuation of `input` (a batch of one: the sampler is seeded with `seed`).
pub fn generate<B: Backend>(
    model: &QwenVl<B>,
    cfg: &QwenVlConfig,
    input: &VlInput,
    opts: &GenerateOptions,
    device: &B::Device,
) -> Result<Generation, ModelError> {
    let mut all = generate_batch(model, cfg, std::slice::from_ref(input), opts, device)?;
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
    if group == 0 {
        return Err(ModelError::Input("the group size must be at least 1".into()));
    }
    let rows = Rows::new(std::slice::from_ref(input), cfg)?;
    let x = model.embed(input, cfg, device)?;
    let t = input.ids.len();
    let mask = Tensor::<B, 2, Bool>::tril_mask([t, t], 0, device).unsqueeze::<3>();
    let rows = Rows { histories: vec![input.ids.clone(); group], ..rows };
    run(model, cfg, x, rows.tables::<B>(cfg, device), mask, rows, Some(group), opts, device)
}

/// Generate one continuation for each of several prompts (of any lengths, with their own images) as one
/// batch: prompts are left-padded, padded positions are masked out of attention, each row keeps its own M-RoPE
/// positions. Row `i` samples with seed `seed + i` and equals a single [`generate`] run with that seed.
pub fn generate_batch<B: Backend>(
    model: &QwenVl<B>,
    cfg: &QwenVlConfig,
    inputs: &[VlInput],
    opts: &GenerateOptions,
    device: &B::Device,
) -> Result<Vec<Generation>, ModelError> {
    if inputs.is_empty() {
        return Ok(Vec::new());
    }
    let rows = Rows::new(inputs, cfg)?;
    let t = rows.width();
    let mut xs = Vec::with_capacity(inputs.len());
    for (input, &pad) in inputs.iter().zip(&rows.pads) {
        let x = model.embed(input, cfg, device)?;
        let d = x.dims()[2];
        xs.push(if pad > 0 { Tensor::cat(vec![Tensor::zeros([1, pad, d], device), x], 1) } else { x });
    }
    // Causal, and padded keys hidden; a padded query still sees itself so that no row is all -inf.
    let mut mask = Vec::with_capacity(inputs.len() * t * t);
    for &pad in &rows.pads {
        for q in 0..t {
            mask.extend((0..t).map(|k| k > q || (k < pad && k != q)));
        }
    }
    let mask = Tensor::<B, 3, Bool>::from_data(TensorData::new(mask, [inputs.len(), t, t]), device);
    run(model, cfg, Tensor::cat(xs, 0), rows.tables::<B>(cfg, device), mask, rows, None, opts, device)
}

/// Per-row bookkeeping: prompt lengths, rope deltas, left padding, token histories, prefill positions.
struct Rows {
    lens: Vec<usize>,
    deltas: Vec<i64>,
    pads: Vec<usize>,
    histories: Vec<Vec<u32>>,
    positions: Vec<Positions>,
}

impl Rows {
    fn new(inputs: &[VlInput], cfg: &QwenVlConfig) -> Result<Self, ModelError> {
        let width = inputs.iter().map(|i| i.ids.len()).max().unwrap_or(0);
        let (mut deltas, mut positions) = (Vec::new(), Vec::new());
        for input in inputs {
            if input.ids.is_empty() {
                return Err(ModelError::Input("an empty prompt".into()));
            }
            let (pos, delta) = rope_index(&input.ids, cfg.tokens.image, &input.grids, cfg.vision.spatial_merge_size)
                .map_err(ModelError::Input)?;
            let pad = width - input.ids.len();
            // Padded slots get position 0; they are never attended to.
            positions.push(pos.map(|row| std::iter::repeat_n(0, pad).chain(row).collect()));
            deltas.push(delta);
        }
        Ok(Rows {
            lens: inputs.iter().map(|i| i.ids.len()).collect(),
            deltas,
            pads: inputs.iter().map(|i| width - i.ids.len()).collect(),
            histories: inputs.iter().map(|i| i.ids.clone()).collect(),
            positions,
        })
    }

    fn width(&self) -> usize {
        self.lens.iter().zip(&self.pads).map(|(l, p)| l + p).max().unwrap_or(0)
    }

    /// Rotary tables `[rows, T, head_dim]` of the prefill positions.
    fn tables<B: Backend>(&self, cfg: &QwenVlConfig, device: &B::Device) -> (Tensor<B, 3>, Tensor<B, 3>) {
        let tc = &cfg.text;
        let (cos, sin): (Vec<_>, Vec<_>) = self
            .positions
            .iter()
            .map(|p| {
                let (c, s) = mrope_tables::<B>(p, tc.head_dim(), tc.rope_theta, &tc.mrope_section, device);
                (c.unsqueeze::<3>(), s.unsqueeze::<3>())
            })
            .unzip();
        (Tensor::cat(cos, 0), Tensor::cat(sin, 0))
    }
}

/// Prefill `x` (`[rows, T, d]`), then decode one token per sample per step. With `expand = Some(g)` the
/// prefill has one row whose cache is copied to the `g` samples (a GRPO group).
#[allow(clippy::too_many_arguments)]
fn run<B: Backend>(
    model: &QwenVl<B>,
    cfg: &QwenVlConfig,
    x: Tensor<B, 3>,
    (cos, sin): (Tensor<B, 3>, Tensor<B, 3>),
    mask: Tensor<B, 3, Bool>,
    mut rows: Rows,
    expand: Option<usize>,
    opts: &GenerateOptions,
    device: &B::Device,
) -> Result<Vec<Generation>, ModelError> {
    opts.sampling.validate().map_err(ModelError::Input)?;
    let tc = &cfg.text;
    let n = rows.histories.len();
    let mut rngs: Vec<ChaCha8Rng> =
        (0..n as u64).map(|i| ChaCha8Rng::seed_from_u64(opts.seed.wrapping_add(i))).collect();
    let mut outs = vec![Generation::default(); n];
    let mut done = vec![opts.max_new_tokens == 0; n];
    let mut cache = KvCache::new(tc.num_hidden_layers);
    let (mut x, mut cos, mut sin, mut mask) = (x, cos, sin, Some(mask));
    for step in 0..opts.max_new_tokens {
        let h = model.model.forward(x, &cos, &sin, mask.as_ref(), Some(&mut cache));
        let [b, t, d] = h.dims();
        let logits = model.project(h.narrow(1, t - 1, 1).reshape([b, d]));
        let vocab = logits.dims()[1];
        let flat: Vec<f32> = logits.into_data().to_vec().map_err(|e| ModelError::Input(format!("{e:?}")))?;
        let mut next = Vec::with_capacity(n);
        for i in 0..n {
            // A shared prefill has one row for all samples; afterwards there is one row per sample.
            let row = &flat[if b == 1 { 0 } else { i * vocab }..][..vocab];
            if done[i] {
                next.push(rows.histories[i].last().copied().unwrap_or_default());
                continue;
            }
            let (tok, lp) = choose(row, &rows.histories[i], &opts.sampling, &mut rngs[i]);
            rows.histories[i].push(tok);
            outs[i].tokens.push(tok);
            outs[i].logprobs.push(lp);
            done[i] = opts.stop_tokens.contains(&tok) || outs[i].tokens.len() == opts.max_new_tokens;
            next.push(tok);
        }
        if done.iter().all(|&d| d) {
            break;
        }
        if let (1, Some(g)) = (b, expand.filter(|&g| g > 1)) {
            for layer in cache.layers.iter_mut() {
                if let Some((k, v)) = layer.take() {
                    *layer = Some((k.repeat_dim(0, g), v.repeat_dim(0, g)));
                }
            }
            rows.pads = vec![rows.pads[0]; g];
            rows.lens = vec![rows.lens[0]; g];
            rows.deltas = vec![rows.deltas[0]; g];
        }
        // Decode: one text token per sample, at its own index + rope delta; padded keys stay hidden.
        let width = cache.len();
        let (mut cs, mut ss, mut m) = (Vec::new(), Vec::new(), Vec::with_capacity(n * (width + 1)));
        for i in 0..n {
            let p = (rows.lens[i] + step) as i64 + rows.deltas[i];
            let (c, s) = mrope_tables::<B>(
                &[vec![p], vec![p], vec![p]],
                tc.head_dim(),
                tc.rope_theta,
                &tc.mrope_section,
                device,
            );
            cs.push(c.unsqueeze::<3>());
            ss.push(s.unsqueeze::<3>());
            m.extend((0..=width).map(|k| k < rows.pads[i]));
        }
        cos = Tensor::cat(cs, 0);
        sin = Tensor::cat(ss, 0);
        mask =
            rows.pads.iter().any(|&p| p > 0).then(|| Tensor::from_data(TensorData::new(m, [n, 1, width + 1]), device));
        let ids: Vec<i64> = next.iter().map(|&t| i64::from(t)).collect();
        x = model.model.embed_tokens.forward(Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [n, 1]), device));
    }
    Ok(outs)
}
