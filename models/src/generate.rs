//! The inference engine's generation: a key/value cache, for one prompt, a batch of prompts (left padded) or a
//! group of samples sharing one prefill (GRPO). Sampling is seeded per row; rows stop at stop tokens, stop
//! strings or the length limit, each on its own.

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::qwen::KvCache;
use crate::qwen::rope::{Positions, mrope_tables, rope_index};
use crate::sampling::{SamplingOptions, choose};
use crate::{ChatTokenizer, ModelError, QwenVl, QwenVlConfig, VlInput};

/// How to generate.
#[derive(Clone, Debug, Default)]
pub struct GenerateOptions {
    /// Most tokens to generate.
    pub max_new_tokens: usize,
    /// How each token is chosen.
    pub sampling: SamplingOptions,
    /// Seed of the sampler (row `i` of a batch or group uses `seed + i`).
    pub seed: u64,
    /// Tokens that end generation (kept in the output).
    pub stop_tokens: Vec<u32>,
    /// Strings that end generation once the decoded output contains one (the tokens that complete it are kept;
    /// needs an engine with a tokenizer).
    pub stop_strings: Vec<String>,
}

/// Why a sequence stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// It produced a stop token (end of sequence).
    Stop,
    /// Its text came to contain a stop string.
    StopString,
    /// It reached `max_new_tokens`.
    #[default]
    Length,
}

/// What came out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Generation {
    /// Generated token ids (including a final stop token, if one was produced).
    pub tokens: Vec<u32>,
    /// Log-probability of each generated token under the penalised, temperature-scaled distribution before
    /// top-k/top-p truncation (the model's own distribution for plain greedy decoding).
    pub logprobs: Vec<f32>,
    /// Why generation ended.
    pub finish: Finish,
    /// The decoded tokens, special tokens removed (empty when the engine has no tokenizer).
    pub text: String,
}

/// The inference engine: one model with its config, tokenizer and device, used for GRPO rollouts and for
/// serving. Prompts (image features included) are prefilled once into a key/value cache; every new token
/// costs one decoder step per row.
pub struct Engine<'a, B: Backend> {
    /// The model.
    pub model: &'a QwenVl<B>,
    /// Its configuration.
    pub cfg: &'a QwenVlConfig,
    /// Decodes outputs and checks stop strings; without it `text` stays empty and stop strings are refused.
    pub tokenizer: Option<&'a ChatTokenizer>,
    /// Where tensors live.
    pub device: &'a B::Device,
}

impl<'a, B: Backend> Engine<'a, B> {
    /// An engine without a tokenizer (token ids in, token ids out).
    pub fn new(model: &'a QwenVl<B>, cfg: &'a QwenVlConfig, device: &'a B::Device) -> Self {
        Engine { model, cfg, tokenizer: None, device }
    }

    /// The same engine decoding text and checking stop strings with `tokenizer`.
    pub fn with_tokenizer(self, tokenizer: &'a ChatTokenizer) -> Self {
        Engine { tokenizer: Some(tokenizer), ..self }
    }

    /// Generate a continuation of `input`, sampling with `opts.seed`.
    pub fn generate(&self, input: &VlInput, opts: &GenerateOptions) -> Result<Generation, ModelError> {
        let mut all = self.generate_batch(std::slice::from_ref(input), opts)?;
        Ok(all.remove(0))
    }

    /// Generate `group` continuations of the same prompt, as GRPO does: the prompt is prefilled once and its
    /// cache shared; the samples then decode as one batch. Sample `i` draws from a sampler seeded with
    /// `seed + i`, so it equals a single [`Engine::generate`] run with that seed.
    pub fn generate_group(
        &self,
        input: &VlInput,
        group: usize,
        opts: &GenerateOptions,
    ) -> Result<Vec<Generation>, ModelError> {
        if group == 0 {
            return Err(ModelError::Input("the group size must be at least 1".into()));
        }
        let (cfg, device) = (self.cfg, self.device);
        let rows = Rows::new(std::slice::from_ref(input), cfg)?;
        let x = self.model.embed(input, cfg, device)?;
        let t = input.ids.len();
        let mask = Tensor::<B, 2, Bool>::tril_mask([t, t], 0, device).unsqueeze::<3>();
        let rows = Rows { histories: vec![input.ids.clone(); group], ..rows };
        let seeds = (0..group as u64).map(|i| opts.seed.wrapping_add(i)).collect();
        self.run(x, rows.tables::<B>(cfg, device), mask, rows, Some(group), seeds, opts)
    }

    /// Generate one continuation for each of several prompts (of any lengths, with their own images) as one
    /// batch; row `i` samples with seed `opts.seed + i` and equals a single [`Engine::generate`] run with it.
    pub fn generate_batch(&self, inputs: &[VlInput], opts: &GenerateOptions) -> Result<Vec<Generation>, ModelError> {
        let seeds: Vec<u64> = (0..inputs.len() as u64).map(|i| opts.seed.wrapping_add(i)).collect();
        self.generate_seeded(inputs, &seeds, opts)
    }

    /// [`Engine::generate_batch`] with one seed per request (serving: each request keeps its own seed).
    /// Prompts are left-padded, padded positions are masked out of attention, each row keeps its own M-RoPE
    /// positions.
    pub fn generate_seeded(
        &self,
        inputs: &[VlInput],
        seeds: &[u64],
        opts: &GenerateOptions,
    ) -> Result<Vec<Generation>, ModelError> {
        if inputs.len() != seeds.len() {
            return Err(ModelError::Input(format!("{} prompts but {} seeds", inputs.len(), seeds.len())));
        }
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let (cfg, device) = (self.cfg, self.device);
        let rows = Rows::new(inputs, cfg)?;
        let t = rows.width();
        let mut xs = Vec::with_capacity(inputs.len());
        for (input, &pad) in inputs.iter().zip(&rows.pads) {
            let x = self.model.embed(input, cfg, device)?;
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
        let tables = rows.tables::<B>(cfg, device);
        self.run(Tensor::cat(xs, 0), tables, mask, rows, None, seeds.to_vec(), opts)
    }
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

impl<B: Backend> Engine<'_, B> {
    /// Prefill `x` (`[rows, T, d]`), then decode one token per sample per step. With `expand = Some(g)` the
    /// prefill has one row whose cache is copied to the `g` samples (a GRPO group).
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        x: Tensor<B, 3>,
        (cos, sin): (Tensor<B, 3>, Tensor<B, 3>),
        mask: Tensor<B, 3, Bool>,
        mut rows: Rows,
        expand: Option<usize>,
        seeds: Vec<u64>,
        opts: &GenerateOptions,
    ) -> Result<Vec<Generation>, ModelError> {
        let (model, cfg, device) = (self.model, self.cfg, self.device);
        opts.sampling.validate().map_err(ModelError::Input)?;
        let stops = StopStrings::new(&opts.stop_strings, self.tokenizer)?;
        let tc = &cfg.text;
        let n = rows.histories.len();
        let mut rngs: Vec<ChaCha8Rng> = seeds.iter().map(|&s| ChaCha8Rng::seed_from_u64(s)).collect();
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
                let finish = if opts.stop_tokens.contains(&tok) {
                    Some(Finish::Stop)
                } else if stops.hit(&outs[i].tokens)? {
                    Some(Finish::StopString)
                } else {
                    (outs[i].tokens.len() == opts.max_new_tokens).then_some(Finish::Length)
                };
                if let Some(f) = finish {
                    outs[i].finish = f;
                    done[i] = true;
                }
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
            // One rotary table for all rows (a text token has the same position on the three M-RoPE axes).
            let width = cache.len();
            let ps: Vec<i64> = (0..n).map(|i| (rows.lens[i] + step) as i64 + rows.deltas[i]).collect();
            let (c, s) = mrope_tables::<B>(
                &[ps.clone(), ps.clone(), ps],
                tc.head_dim(),
                tc.rope_theta,
                &tc.mrope_section,
                device,
            );
            cos = c.reshape([n, 1, tc.head_dim()]);
            sin = s.reshape([n, 1, tc.head_dim()]);
            let m: Vec<bool> = rows.pads.iter().flat_map(|&pad| (0..=width).map(move |k| k < pad)).collect();
            mask = rows
                .pads
                .iter()
                .any(|&p| p > 0)
                .then(|| Tensor::from_data(TensorData::new(m, [n, 1, width + 1]), device));
            let ids: Vec<i64> = next.iter().map(|&t| i64::from(t)).collect();
            x = model.model.embed_tokens.forward(Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [n, 1]), device));
        }
        if let Some(tok) = self.tokenizer {
            for o in outs.iter_mut() {
                o.text = tok.decode(&o.tokens)?;
            }
        }
        Ok(outs)
    }
}

/// Stop strings and the tokenizer that checks them against the tail of each output.
struct StopStrings<'a> {
    strings: &'a [String],
    tokenizer: Option<&'a ChatTokenizer>,
    /// Tokens decoded per check: enough to cover the longest stop string.
    window: usize,
}

impl<'a> StopStrings<'a> {
    fn new(strings: &'a [String], tokenizer: Option<&'a ChatTokenizer>) -> Result<Self, ModelError> {
        if strings.iter().any(String::is_empty) {
            return Err(ModelError::Input("a stop string is empty".into()));
        }
        if !strings.is_empty() && tokenizer.is_none() {
            return Err(ModelError::Input("stop strings need an engine with a tokenizer".into()));
        }
        // Every token but a special one decodes to at least one character; a few extra cover those.
        let window = strings.iter().map(|s| s.chars().count()).max().unwrap_or(0) + 4;
        Ok(StopStrings { strings, tokenizer, window })
    }

    /// Whether the output `tokens` now contains a stop string. Generation stops at the first hit, so only the
    /// tail has to be decoded.
    fn hit(&self, tokens: &[u32]) -> Result<bool, ModelError> {
        let Some(tok) = self.tokenizer.filter(|_| !self.strings.is_empty()) else { return Ok(false) };
        let tail = tok.decode(&tokens[tokens.len().saturating_sub(self.window)..])?;
        Ok(self.strings.iter().any(|s| tail.contains(s.as_str())))
    }
}
