//! The model step against the key/value cache, on the tiny Qwen2.5-VL fixture: a left-padded batch equals each
//! prompt alone, forked rows equal their sequences recomputed from scratch, releasing and joining rows leaves
//! the others as they were, and a prefill in chunks equals one pass. Tolerance: 1e-4 absolute on final hidden
//! states (f32; batched and cached matmuls sum in other orders).

mod common;

use burn::tensor::Tensor;
use common::{B, Reference, fixture};
use repic_models::{KvCache, QwenVl, Step, VlInput};

const TOL: f32 = 1e-4;

struct Setup {
    model: QwenVl<B>,
    inputs: Vec<VlInput>,
}

fn setup() -> Setup {
    let dir = fixture("qwen2_5_vl");
    let model = QwenVl::<B>::load(&dir, &Default::default()).unwrap();
    let r = Reference::load(&dir);
    let inputs = ["two_images", "image_text", "text_only"].iter().map(|c| r.input(c)).collect();
    Setup { model, inputs }
}

/// The last position's hidden state of each row of `h` (`[rows, T, d]`).
fn last_rows(h: Tensor<B, 3>) -> Vec<Vec<f32>> {
    let [b, t, d] = h.dims();
    let flat = h.narrow(1, t - 1, 1).reshape([b, d]).into_data().to_vec::<f32>().unwrap();
    flat.chunks(d).map(<[f32]>::to_vec).collect()
}

fn assert_close(a: &[f32], b: &[f32], what: &str) {
    let d = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
    assert!(d <= TOL, "{what}: differs by {d}");
}

/// Prompt `input` alone, then decode `tokens`: the last hidden state after the prefill and after each token.
fn alone(model: &QwenVl<B>, input: &VlInput, tokens: &[u32]) -> Vec<Vec<f32>> {
    let dev = Default::default();
    let mut cache = model.new_cache();
    let (step, delta) = model.prompt_step(input, &dev).unwrap();
    let mut out = last_rows(model.forward(step, &mut cache).unwrap());
    for (pos, &tok) in (input.ids.len() as i64 + delta..).zip(tokens) {
        out.extend(last_rows(model.forward(model.token_step(&[tok], &[pos], &dev), &mut cache).unwrap()));
    }
    out
}

/// The same sequence (prompt + `tokens`) recomputed in one pass without a cache.
fn recomputed(model: &QwenVl<B>, input: &VlInput, tokens: &[u32]) -> Vec<f32> {
    let mut full = input.clone();
    full.ids.extend_from_slice(tokens);
    last_rows(model.hidden(&full, &Default::default()).unwrap()).remove(0)
}

fn decode(model: &QwenVl<B>, cache: &mut KvCache<B>, tokens: &[u32], positions: &mut [i64]) -> Vec<Vec<f32>> {
    let step = model.token_step(tokens, positions, &Default::default());
    positions.iter_mut().for_each(|p| *p += 1);
    last_rows(model.forward(step, cache).unwrap())
}

#[test]
fn a_left_padded_batch_equals_each_prompt_alone() {
    let Setup { model, inputs } = setup();
    let lens: Vec<usize> = inputs.iter().map(|i| i.ids.len()).collect();
    assert!(lens[0] != lens[1] && lens[1] != lens[2], "{lens:?}");
    let dev = Default::default();
    let tokens = [[5u32, 17], [9, 9], [42, 3]];
    let mut cache = model.new_cache();
    let (step, mut pos) = model.batch_step(&inputs, &mut cache, &dev).unwrap();
    assert_eq!(cache.rows(), 3);
    let mut steps = vec![last_rows(model.forward(step, &mut cache).unwrap())];
    assert_eq!(cache.width(), *lens.iter().max().unwrap());
    for k in 0..2 {
        let toks: Vec<u32> = tokens.iter().map(|t| t[k]).collect();
        steps.push(decode(&model, &mut cache, &toks, &mut pos));
    }
    for (i, input) in inputs.iter().enumerate() {
        let want = alone(&model, input, &tokens[i]);
        assert_eq!(cache.len_of(cache.ids()[i]), Some(lens[i] + 2));
        for (k, w) in want.iter().enumerate() {
            assert_close(&steps[k][i], w, &format!("row {i}, step {k}"));
        }
    }
}

#[test]
fn forked_rows_equal_their_sequences_recomputed() {
    let Setup { model, inputs } = setup();
    let dev = Default::default();
    let input = &inputs[1];
    let mut cache = model.new_cache();
    let (step, delta) = model.prompt_step(input, &dev).unwrap();
    model.forward(step, &mut cache).unwrap();
    let id = cache.ids()[0];
    let copies = cache.fork(id, 3).unwrap();
    assert_eq!(copies[0], id);
    assert_eq!(cache.ids(), copies);
    let mut pos = vec![input.ids.len() as i64 + delta; 3];
    let first = [7u32, 8, 9];
    decode(&model, &mut cache, &first, &mut pos);
    let got = decode(&model, &mut cache, &[11, 11, 12], &mut pos);
    for (i, (&a, b)) in first.iter().zip([11u32, 11, 12]).enumerate() {
        assert_close(&got[i], &recomputed(&model, input, &[a, b]), &format!("copy {i}"));
    }
    // A fork of one row in the middle of a batch keeps the other rows where they were.
    let mut cache = model.new_cache();
    let (step, mut pos) = model.batch_step(&inputs, &mut cache, &dev).unwrap();
    model.forward(step, &mut cache).unwrap();
    let ids = cache.ids();
    let twins = cache.fork(ids[1], 2).unwrap();
    assert_eq!(cache.ids(), [ids[0], twins[0], twins[1], ids[2]]);
    pos.insert(1, pos[1]);
    let got = decode(&model, &mut cache, &[5, 6, 7, 8], &mut pos);
    for (row, (input, tok)) in [(0, (&inputs[0], 5)), (1, (&inputs[1], 6)), (2, (&inputs[1], 7)), (3, (&inputs[2], 8))]
    {
        assert_close(&got[row], &recomputed(&model, input, &[tok]), &format!("row {row}"));
    }
}

#[test]
fn released_and_joined_rows_leave_the_others_unchanged() {
    let Setup { model, inputs } = setup();
    let dev = Default::default();
    let longest = (0..3).max_by_key(|&i| inputs[i].ids.len()).unwrap();
    let mut cache = model.new_cache();
    let (step, mut pos) = model.batch_step(&inputs, &mut cache, &dev).unwrap();
    model.forward(step, &mut cache).unwrap();
    decode(&model, &mut cache, &[5, 5, 5], &mut pos);
    // Releasing the longest row trims the padding the others shared.
    let ids = cache.ids();
    cache.release(ids[longest]).unwrap();
    pos.remove(longest);
    let kept: Vec<usize> = (0..3).filter(|&i| i != longest).collect();
    let widest = kept.iter().map(|&i| inputs[i].ids.len()).max().unwrap();
    assert_eq!(cache.width(), widest + 1);
    assert!(cache.release(ids[longest]).is_err(), "released twice");
    let got = decode(&model, &mut cache, &[6, 6], &mut pos);
    for (row, &i) in kept.iter().enumerate() {
        assert_close(&got[row], &recomputed(&model, &inputs[i], &[5, 6]), &format!("kept row {row}"));
    }
    // A sequence prefilled on its own joins the running batch and decodes with it.
    let newcomer = &inputs[longest];
    let mut own = model.new_cache();
    let (step, delta) = model.prompt_step(newcomer, &dev).unwrap();
    model.forward(step, &mut own).unwrap();
    cache.join(own).unwrap();
    assert_eq!(cache.rows(), 3);
    pos.push(newcomer.ids.len() as i64 + delta);
    let got = decode(&model, &mut cache, &[7, 7, 9], &mut pos);
    for (row, &i) in kept.iter().enumerate() {
        assert_close(&got[row], &recomputed(&model, &inputs[i], &[5, 6, 7]), &format!("row {row} after the join"));
    }
    assert_close(&got[2], &recomputed(&model, newcomer, &[9]), "the joined row");
    // Releasing every row empties the cache.
    for id in cache.ids() {
        cache.release(id).unwrap();
    }
    assert!(cache.is_empty() && cache.rows() == 0);
}

#[test]
fn a_prefill_in_chunks_equals_one_pass() {
    let Setup { model, inputs } = setup();
    let dev = Default::default();
    let input = &inputs[0];
    let (step, _) = model.prompt_step(input, &dev).unwrap();
    let t = input.ids.len();
    let mut cache = model.new_cache();
    let mut last = Vec::new();
    for (start, len) in [(0, 5), (5, t - 9), (t - 4, 4)] {
        let chunk = Step {
            embeds: step.embeds.clone().narrow(1, start, len),
            positions: vec![step.positions[0].clone().map(|axis| axis[start..start + len].to_vec())],
        };
        last = last_rows(model.forward(chunk, &mut cache).unwrap()).remove(0);
    }
    assert_eq!(cache.width(), t);
    assert_close(&last, &recomputed(&model, input, &[]), "chunked prefill");
}

#[test]
fn misuse_is_refused_with_a_message() {
    let Setup { model, inputs } = setup();
    let dev = Default::default();
    let mut cache = model.new_cache();
    let (step, _) = model.prompt_step(&inputs[2], &dev).unwrap();
    model.forward(step.clone(), &mut cache).unwrap();
    assert!(cache.allocate(0).unwrap_err().to_string().contains("own cache"));
    let id = cache.ids()[0];
    assert!(cache.fork(id, 0).is_err());
    let mut stranger = model.new_cache();
    stranger.allocate(0).unwrap();
    assert!(cache.fork(stranger.ids()[0], 2).unwrap_err().to_string().contains("not in the cache"));
    // Two rows in the cache, one row in the step.
    cache.fork(id, 2).unwrap();
    assert!(model.forward(model.token_step(&[1], &[40], &dev), &mut cache).is_err());
    // Positions must match the embeddings.
    let bad = Step { embeds: step.embeds.clone(), positions: vec![] };
    assert!(model.forward(bad, &mut model.new_cache()).is_err());
    assert!(cache.join(model.new_cache()).is_ok(), "an empty cache joins as nothing");
    assert_eq!(cache.rows(), 2);
    let mut other = KvCache::<B>::new(1);
    other.allocate(0).unwrap();
    assert!(cache.join(other).unwrap_err().to_string().contains("layers"));
    assert!(model.batch_step(&inputs, &mut cache, &dev).is_err(), "a batch needs an empty cache");
}
