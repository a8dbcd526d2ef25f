//! The inference engine on the tiny fixture checkpoints: cached, batched and grouped generation agree with
//! single runs, stop tokens and strings end rows on their own, and teacher-forced scoring reproduces the
//! log-probs recorded while sampling.

mod common;

use common::{B, Reference, fixture, max_diff};
use repic_models::{Checkpoint, Engine, Finish, GenerateOptions, QwenVl, SamplingOptions, ScoreOptions, VlInput};

fn sampled(temperature: f64) -> SamplingOptions {
    SamplingOptions { temperature, ..Default::default() }
}
#[test]
fn teacher_forced_logprobs_match_generation() {
    let dir = fixture("qwen2_5_vl");
    let dev = Default::default();
    let model = QwenVl::<B>::load(&dir, &dev).unwrap();
    let input = Reference::load(&dir).input("two_images");
    for (temperature, seed) in [(0.0, 0), (1.5, 9)] {
        let opts = GenerateOptions { max_new_tokens: 6, sampling: sampled(temperature), seed, ..Default::default() };
        let engine = Engine::new(&model, &dev);
        let g = engine.generate(&input, &opts).unwrap();
        let t = if temperature > 0.0 { temperature } else { 1.0 };
        let scored = engine
            .score(&[(input.clone(), g.tokens.clone())], ScoreOptions { temperature: t, chunk: 4, entropy: false });
        let tf = scored.unwrap().logprobs.into_data().to_vec::<f32>().unwrap();
        assert_eq!(tf.len(), g.tokens.len());
        for (a, b) in tf.iter().zip(&g.logprobs) {
            assert!((a - b).abs() <= 1e-4, "temperature {temperature}: teacher-forced {a} vs generated {b}");
        }
    }
    let engine = Engine::new(&model, &dev);
    assert!(engine.score(&[(input.clone(), vec![])], ScoreOptions::default()).is_err());
    let zero = ScoreOptions { temperature: 0.0, chunk: 4, entropy: false };
    assert!(engine.score(&[(input, vec![1])], zero).is_err());
}

#[test]
fn group_generation_equals_single_runs() {
    let dir = fixture("qwen2_vl");
    let dev = Default::default();
    let model = QwenVl::<B>::load(&dir, &dev).unwrap();
    let input = Reference::load(&dir).input("image_text");
    let sampling = SamplingOptions { temperature: 1.3, top_k: Some(50), ..Default::default() };
    // Token 49 is this model's favourite: stopping on it ends samples at different steps.
    let opts = GenerateOptions { max_new_tokens: 7, sampling, seed: 40, stop_tokens: vec![49], ..Default::default() };
    let engine = Engine::new(&model, &dev);
    let group = engine.generate_group(&input, 4, &opts).unwrap();
    assert_eq!(group.len(), 4);
    for (i, g) in group.iter().enumerate() {
        let single = engine.generate(&input, &GenerateOptions { seed: 40 + i as u64, ..opts.clone() }).unwrap();
        assert_eq!(g.tokens, single.tokens, "sample {i}");
        for (a, b) in g.logprobs.iter().zip(&single.logprobs) {
            assert!((a - b).abs() <= 1e-4, "sample {i}: {a} vs {b}");
        }
    }
    let lens: Vec<usize> = group.iter().map(|g| g.tokens.len()).collect();
    // Seeds 40..44 make sample 1 stop early on token 49 while the others run to the limit.
    assert_eq!(lens, [7, 2, 7, 7]);
    assert_eq!(group[1].tokens.last(), Some(&49));
    let finish: Vec<Finish> = group.iter().map(|g| g.finish).collect();
    assert_eq!(finish, [Finish::Length, Finish::Stop, Finish::Length, Finish::Length]);
}

#[test]
fn logits_at_chosen_positions_equal_rows_of_the_full_pass() {
    let dir = fixture("qwen2_vl_flat");
    let dev = Default::default();
    let model = QwenVl::<B>::load(&dir, &dev).unwrap();
    let input = Reference::load(&dir).input("two_images");
    let t = input.ids.len();
    let full = model.logits(&input, &dev).unwrap();
    let vocab = full.dims()[1];
    let full = full.into_data().to_vec::<f32>().unwrap();
    let picked = model.logits_at(&input, &[t - 1, 3, 0], &dev).unwrap().into_data().to_vec::<f32>().unwrap();
    for (k, &p) in [t - 1, 3, 0].iter().enumerate() {
        let d = max_diff(
            &picked[k * vocab..(k + 1) * vocab],
            &full[p * vocab..(p + 1) * vocab].iter().map(|&x| x as f64).collect::<Vec<_>>(),
        );
        assert!(d <= 1e-5, "position {p}: {d}");
    }
    assert!(model.logits_at(&input, &[t], &dev).is_err());
}

#[test]
fn batched_prompts_equal_unbatched_runs() {
    // Three prompts of different lengths (two images, one image, text only) in one left-padded batch.
    let dir = fixture("qwen2_5_vl");
    let dev = Default::default();
    let model = QwenVl::<B>::load(&dir, &dev).unwrap();
    let r = Reference::load(&dir);
    let inputs: Vec<VlInput> = ["two_images", "image_text", "text_only"].iter().map(|c| r.input(c)).collect();
    let lens: Vec<usize> = inputs.iter().map(|i| i.ids.len()).collect();
    assert!(lens[0] != lens[1] && lens[1] != lens[2], "{lens:?}");
    let engine = Engine::new(&model, &dev);
    for sampling in [SamplingOptions::default(), sampled(1.0)] {
        let opts = GenerateOptions { max_new_tokens: 6, sampling, seed: 11, ..Default::default() };
        let batch = engine.generate_batch(&inputs, &opts).unwrap();
        for (i, (input, got)) in inputs.iter().zip(&batch).enumerate() {
            let single = engine.generate(input, &GenerateOptions { seed: 11 + i as u64, ..opts.clone() }).unwrap();
            assert_eq!(got.tokens, single.tokens, "row {i}");
            for (a, b) in got.logprobs.iter().zip(&single.logprobs) {
                assert!((a - b).abs() <= 1e-4, "row {i}: {a} vs {b}");
            }
        }
    }
    // Greedy rows also reproduce transformers' tokens for each prompt.
    let greedy = engine.generate_batch(&inputs, &GenerateOptions { max_new_tokens: 8, ..Default::default() }).unwrap();
    for (case, g) in ["two_images", "image_text", "text_only"].iter().zip(&greedy) {
        let want: Vec<u32> = r.meta["cases"][case]["greedy_tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(g.tokens, want, "{case}");
    }
}

#[test]
fn stop_strings_end_a_row_at_the_token_that_completes_them() {
    let dev = Default::default();
    let ckpt = Checkpoint::<B>::load(&fixture("qwen2_vl"), &dev).unwrap();
    let input = Reference::load(&fixture("qwen2_vl")).input("image_text");
    let engine = ckpt.engine(&dev);
    let plain = GenerateOptions { max_new_tokens: 12, sampling: sampled(2.0), seed: 1, ..Default::default() };
    let full = engine.generate(&input, &plain).unwrap();
    assert_eq!(full.finish, Finish::Length);
    assert_eq!(full.text, ckpt.tokenizer.decode(&full.tokens).unwrap());
    // The first k whose token adds text never seen before: that new text is the stop string.
    let (k, stop) = (2..full.tokens.len())
        .find_map(|k| {
            let before = ckpt.tokenizer.decode(&full.tokens[..k - 1]).unwrap();
            let now = ckpt.tokenizer.decode(&full.tokens[..k]).unwrap();
            let added = now.strip_prefix(&before)?.to_string();
            (!added.trim().is_empty() && !before.contains(&added)).then_some((k, added))
        })
        .expect("some token adds new text");
    let opts = GenerateOptions { stop_strings: vec![stop.clone()], ..plain.clone() };
    let cut = engine.generate(&input, &opts).unwrap();
    assert_eq!(cut.finish, Finish::StopString, "stop string {stop:?}");
    assert_eq!(cut.tokens, full.tokens[..k], "stop string {stop:?}");
    assert!(cut.text.ends_with(&stop));
    // Without a tokenizer, stop strings cannot be checked: refused rather than ignored.
    let bare = Engine::new(&ckpt.model, &dev);
    assert!(bare.generate(&input, &opts).is_err());
    assert!(engine.generate(&input, &GenerateOptions { stop_strings: vec![String::new()], ..plain }).is_err());
}

#[test]
fn per_request_seeds_reproduce_single_runs() {
    let dir = fixture("qwen2_vl_flat");
    let dev = Default::default();
    let model = QwenVl::<B>::load(&dir, &dev).unwrap();
    let r = Reference::load(&dir);
    let inputs: Vec<VlInput> = ["text_only", "two_images"].iter().map(|c| r.input(c)).collect();
    let engine = Engine::new(&model, &dev);
    let opts = GenerateOptions { max_new_tokens: 5, sampling: sampled(1.0), ..Default::default() };
    let got = engine.generate_seeded(&inputs, &[77, 5], &opts).unwrap();
    for (i, seed) in [77, 5].into_iter().enumerate() {
        let single = engine.generate(&inputs[i], &GenerateOptions { seed, ..opts.clone() }).unwrap();
        assert_eq!(got[i].tokens, single.tokens, "request {i}");
    }
    assert!(engine.generate_seeded(&inputs, &[1], &opts).is_err());
}

#[test]
fn group_scoring_is_batched_padded_and_chunked_without_changing_values() {
    let dir = fixture("qwen2_5_vl_b");
    let dev = Default::default();
    let model = QwenVl::<B>::load(&dir, &dev).unwrap();
    let input = Reference::load(&dir).input("image_text");
    let engine = Engine::new(&model, &dev);
    let opts = GenerateOptions {
        max_new_tokens: 6,
        sampling: sampled(1.2),
        seed: 3,
        stop_tokens: vec![],
        ..Default::default()
    };
    let group = engine.generate_group(&input, 3, &opts).unwrap();
    // Completions of lengths 6, 3 and 1 to exercise the padding.
    let completions: Vec<Vec<u32>> = group.iter().zip([6, 3, 1]).map(|(g, n)| g.tokens[..n].to_vec()).collect();
    let one_chunk = ScoreOptions { temperature: 1.2, chunk: 1000, entropy: false };
    let grouped = engine.score_group(&input, &completions, one_chunk).unwrap();
    assert_eq!(grouped.logprobs.dims(), [3, 6]);
    let mask = grouped.mask.into_data().to_vec::<f32>().unwrap();
    let want_mask: Vec<f32> =
        [6, 3, 1].iter().flat_map(|&n| (0..6).map(move |j| if j < n { 1.0 } else { 0.0 })).collect();
    assert_eq!(mask, want_mask);
    let grouped = grouped.logprobs.into_data().to_vec::<f32>().unwrap();
    let pairs: Vec<(VlInput, Vec<u32>)> = completions.iter().map(|c| (input.clone(), c.clone())).collect();
    let chunked = engine.score(&pairs, ScoreOptions { temperature: 1.2, chunk: 2, entropy: false }).unwrap();
    let chunked = chunked.logprobs.into_data().to_vec::<f32>().unwrap();
    let as64: Vec<f64> = grouped.iter().map(|&x| f64::from(x)).collect();
    assert!(max_diff(&chunked, &as64) <= 1e-5);
    for (i, (g, c)) in group.iter().zip(&completions).enumerate() {
        for (j, lp) in g.logprobs[..c.len()].iter().enumerate() {
            let got = grouped[i * 6 + j];
            assert!((got - lp).abs() <= 1e-4, "row {i} token {j}: scored {got} vs sampled {lp}");
        }
        assert!(grouped[i * 6 + c.len()..(i + 1) * 6].iter().all(|&x| x == 0.0), "row {i} padding");
    }
}

#[test]
fn a_completion_holding_an_image_pad_token_is_scored_as_text() {
    // A random policy can sample `<|image_pad|>`; scoring must treat it as a text token (no new image), and a
    // prefix of a completion scores the same as the start of the whole completion.
    let dir = fixture("qwen2_vl");
    let dev = Default::default();
    let model = QwenVl::<B>::load(&dir, &dev).unwrap();
    let input = Reference::load(&dir).input("image_text");
    let engine = Engine::new(&model, &dev);
    let completion = vec![49, model.config().tokens.image, 50];
    let whole = engine.score(&[(input.clone(), completion.clone())], ScoreOptions::default()).unwrap();
    let whole = whole.logprobs.into_data().to_vec::<f32>().unwrap();
    let prefix = engine.score(&[(input, completion[..2].to_vec())], ScoreOptions::default()).unwrap();
    let prefix = prefix.logprobs.into_data().to_vec::<f32>().unwrap();
    assert!(whole.iter().all(|x| x.is_finite() && *x <= 0.0), "{whole:?}");
    assert!((whole[0] - prefix[0]).abs() <= 1e-6 && (whole[1] - prefix[1]).abs() <= 1e-6);
}

#[test]
fn entropy_of_each_completion_position_matches_the_full_logits() {
    let dir = fixture("qwen2_5_vl");
    let dev = Default::default();
    let model = QwenVl::<B>::load(&dir, &dev).unwrap();
    let input = Reference::load(&dir).input("text_only");
    let completion = vec![40u32, 41, 42];
    let t = 0.8;
    let opts = ScoreOptions { temperature: t, chunk: 2, entropy: true };
    let scored = Engine::new(&model, &dev).score(&[(input.clone(), completion.clone())], opts).unwrap();
    let got = scored.entropy.unwrap().into_data().to_vec::<f32>().unwrap();
    let full = VlInput { ids: [input.ids.clone(), completion.clone()].concat(), ..input.clone() };
    let logits = model.logits(&full, &dev).unwrap();
    let v = logits.dims()[1];
    let rows = logits.into_data().to_vec::<f32>().unwrap();
    for (j, &e) in got.iter().enumerate() {
        let row: Vec<f64> = rows[(input.ids.len() - 1 + j) * v..][..v].iter().map(|&x| f64::from(x) / t).collect();
        let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = row.iter().map(|x| (x - m).exp()).sum();
        let want: f64 = -row.iter().map(|x| ((x - m).exp() / z) * ((x - m) - z.ln())).sum::<f64>();
        assert!((f64::from(e) - want).abs() <= 1e-4, "position {j}: {e} vs {want}");
    }
}

#[test]
fn candidate_scores_are_the_full_distribution_at_that_position() {
    let dir = fixture("qwen2_vl_flat");
    let dev = Default::default();
    let model = QwenVl::<B>::load(&dir, &dev).unwrap();
    let input = Reference::load(&dir).input("image_text");
    let engine = Engine::new(&model, &dev);
    let last = input.ids.len() - 1;
    let got = engine.candidates(&input, &[last], &[49, 50, 223]).unwrap();
    // Same as scoring each candidate as a one-token completion.
    for (k, &c) in [49u32, 50, 223].iter().enumerate() {
        let s = engine.score(&[(input.clone(), vec![c])], ScoreOptions::default()).unwrap();
        let want = s.logprobs.into_data().to_vec::<f32>().unwrap()[0];
        assert!((got[0].logprobs[k] - want).abs() <= 1e-5, "candidate {c}");
    }
    assert!((got[0].probs.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    assert!(engine.candidates(&input, &[last], &[]).is_err());
    assert!(engine.candidates(&input, &[last], &[100_000]).is_err());
}

#[test]
fn min_new_tokens_keeps_stop_tokens_out_until_reached() {
    let dev = Default::default();
    let ckpt = Checkpoint::<B>::load(&fixture("qwen2_vl"), &dev).unwrap();
    let input = Reference::load(&fixture("qwen2_vl")).input("image_text");
    let engine = ckpt.engine(&dev);
    let greedy = GenerateOptions { max_new_tokens: 8, ..Default::default() };
    let free = engine.generate(&input, &greedy).unwrap();
    // Make greedy's first token a stop token: without a minimum, generation stops right there.
    let first = free.tokens[0];
    let stopping = GenerateOptions { stop_tokens: vec![first], ..greedy.clone() };
    let cut = engine.generate(&input, &stopping).unwrap();
    assert_eq!((cut.tokens.as_slice(), cut.finish), (&[first][..], Finish::Stop));
    // With a minimum of 5 the stop token is masked for the first 5 tokens: never chosen there, and the output is
    // at least that long.
    let held = engine.generate(&input, &GenerateOptions { min_new_tokens: 5, ..stopping.clone() }).unwrap();
    assert!(held.tokens.len() >= 5, "{:?}", held.tokens);
    assert!(!held.tokens[..5].contains(&first), "{:?}", held.tokens);
    assert!(held.logprobs.iter().all(|lp| lp.is_finite()));
    // min = max: exactly max tokens.
    let exact = engine.generate(&input, &GenerateOptions { min_new_tokens: 8, ..stopping }).unwrap();
    assert_eq!((exact.tokens.len(), exact.finish), (8, Finish::Length));
}
