//! Generation: for one prompt, a batch of prompts (left padded) or a group of samples sharing one prefill (GRPO),
//! through the model's step and the key/value cache. Sampling is seeded per row; rows stop at stop tokens, stop
//! strings or the length limit, each on its own.

use burn::tensor::backend::Backend;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::sampler::choose;
use super::stop::StopStrings;
use super::{Engine, Finish, GenerateOptions, Generation, KvCache};
use crate::qwen2_vl::Step;
use crate::{ModelError, VlInput};

/// One sequence being decoded: its tokens so far and the text position of its next token.
struct Seq {
    history: Vec<u32>,
    next_position: i64,
}

impl<B: Backend> Engine<'_, B> {
    /// Generate a continuation of `input`, sampling with `opts.seed`.
    pub fn generate(&self, input: &VlInput, opts: &GenerateOptions) -> Result<Generation, ModelError> {
        let mut all = self.generate_batch(std::slice::from_ref(input), opts)?;
        Ok(all.remove(0))
    }

    /// Generate `group` continuations of the same prompt, as GRPO does: the prompt is prefilled once and its
    /// cache row forked; the samples then decode as one batch. Sample `i` draws from a sampler seeded with
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
        if input.ids.is_empty() {
            return Err(ModelError::Input("an empty prompt".into()));
        }
        let (step, delta) = self.model.prompt_step(input, self.device)?;
        let seq = || Seq { history: input.ids.clone(), next_position: input.ids.len() as i64 + delta };
        let seqs = (0..group).map(|_| seq()).collect();
        let seeds = (0..group as u64).map(|i| opts.seed.wrapping_add(i)).collect();
        self.run(step, self.model.new_cache(), seqs, seeds, opts)
    }

    /// Generate one continuation for each of several prompts (of any lengths, with their own images) as one
    /// batch; row `i` samples with seed `opts.seed + i` and equals a single [`Engine::generate`] run with it.
    pub fn generate_batch(&self, inputs: &[VlInput], opts: &GenerateOptions) -> Result<Vec<Generation>, ModelError> {
        let seeds: Vec<u64> = (0..inputs.len() as u64).map(|i| opts.seed.wrapping_add(i)).collect();
        self.generate_seeded(inputs, &seeds, opts)
    }

    /// [`Engine::generate_batch`] with one seed per request (serving: each request keeps its own seed).
    /// Prompts are left-padded in one cache, which hides the padding; each row keeps its own M-RoPE positions.
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
        let mut cache = self.model.new_cache();
        let (step, next) = self.model.batch_step(inputs, &mut cache, self.device)?;
        let seqs = inputs.iter().zip(next).map(|(i, next_position)| Seq { history: i.ids.clone(), next_position });
        self.run(step, cache, seqs.collect(), seeds.to_vec(), opts)
    }

    /// Prefill `step` into `cache`, then decode one token per sequence per step. A prefill of one row for
    /// several sequences (a GRPO group) is forked to one row per sequence after the first token.
    fn run(
        &self,
        step: Step<B>,
        mut cache: KvCache<B>,
        mut seqs: Vec<Seq>,
        seeds: Vec<u64>,
        opts: &GenerateOptions,
    ) -> Result<Vec<Generation>, ModelError> {
        let (model, device) = (self.model, self.device);
        opts.sampling.validate().map_err(ModelError::Input)?;
        let stops = StopStrings::new(&opts.stop_strings, self.tokenizer)?;
        let n = seqs.len();
        let mut rngs: Vec<ChaCha8Rng> = seeds.iter().map(|&s| ChaCha8Rng::seed_from_u64(s)).collect();
        let mut outs = vec![Generation::default(); n];
        let mut done = vec![opts.max_new_tokens == 0; n];
        let mut step = step;
        for _ in 0..opts.max_new_tokens {
            let h = model.forward(step, &mut cache)?;
            let [b, t, d] = h.dims();
            let logits = model.project(h.narrow(1, t - 1, 1).reshape([b, d]));
            let vocab = logits.dims()[1];
            let flat: Vec<f32> = logits.into_data().to_vec().map_err(|e| ModelError::Input(format!("{e:?}")))?;
            let mut next = Vec::with_capacity(n);
            for (i, seq) in seqs.iter_mut().enumerate() {
                // A shared prefill has one row for all samples; afterwards there is one row per sample.
                let row = &flat[if b == 1 { 0 } else { i * vocab }..][..vocab];
                if done[i] {
                    next.push(seq.history.last().copied().unwrap_or_default());
                    continue;
                }
                let masked;
                let row = if outs[i].tokens.len() < opts.min_new_tokens && !opts.stop_tokens.is_empty() {
                    let mut r = row.to_vec();
                    for &t in &opts.stop_tokens {
                        if let Some(x) = r.get_mut(t as usize) {
                            *x = f32::NEG_INFINITY;
                        }
                    }
                    masked = r;
                    &masked[..]
                } else {
                    row
                };
                let (tok, lp) = choose(row, &seq.history, &opts.sampling, &mut rngs[i]);
                seq.history.push(tok);
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
            if cache.rows() < n {
                let ids = cache.ids();
                cache.fork(ids[0], n)?;
            }
            // Decode: one text token per sequence at its own position; the cache hides padded keys.
            let positions: Vec<i64> = seqs.iter().map(|s| s.next_position).collect();
            seqs.iter_mut().for_each(|s| s.next_position += 1);
            step = model.token_step(&next, &positions, device);
        }
        if let Some(tok) = self.tokenizer {
            for o in outs.iter_mut() {
                o.text = tok.decode(&o.tokens)?;
            }
        }
        Ok(outs)
    }
}
