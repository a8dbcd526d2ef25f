//! Contrastive training of a CLIP image tower on toy concepts: four colours, references on grey, scenes with
//! the concept's colour at a random place next to a distractor. Before training, a random tower matches
//! scenes to references poorly; after 400 steps (2 s) every held-out scene finds its own reference.

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::tensor::backend::Backend as _;
use burn::tensor::{Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use repic_models::{Clip, ClipConfig, TowerConfig};
use repic_trainer::contrastive::{ConceptViews, ContrastiveConfig, train_image_tower};

type B = repic_models::DefaultBackend;
const SIDE: usize = 28;
const COLOURS: [[f32; 3]; 4] = [[1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0], [1.0, 1.0, -1.0]];

fn tower(hidden: usize, layers: usize) -> TowerConfig {
    serde_json::from_value(serde_json::json!({"hidden_size": hidden, "intermediate_size": 2 * hidden,
        "num_hidden_layers": layers, "num_attention_heads": 2, "vocab_size": 16, "max_position_embeddings": 8,
        "image_size": SIDE, "patch_size": 7}))
    .unwrap()
}

/// A grey CHW image with `(colour, x, y)` squares of side 9.
fn picture(squares: &[(usize, usize, usize)], rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut px = vec![0.0f32; 3 * SIDE * SIDE];
    for v in px.iter_mut() {
        *v = rng.random_range(-0.1..0.1);
    }
    for &(c, x0, y0) in squares {
        for ch in 0..3 {
            for y in y0..y0 + 9 {
                for x in x0..x0 + 9 {
                    px[(ch * SIDE + y) * SIDE + x] = COLOURS[c][ch];
                }
            }
        }
    }
    px
}

fn scene(c: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let other = (c + rng.random_range(1..4)) % 4;
    let (x, y) = (rng.random_range(0..8), rng.random_range(0..19));
    picture(&[(c, x, y), (other, 18, rng.random_range(0..19))], rng)
}

fn accuracy(clip: &Clip<B>, refs: &[Vec<f32>], scenes: &[(usize, Vec<f32>)]) -> usize {
    let dev = Default::default();
    let w = 3 * SIDE * SIDE;
    let emb = |rows: Vec<f32>, n: usize| clip.image_embeds(Tensor::from_data(TensorData::new(rows, [n, w]), &dev));
    let r = emb(refs.concat(), refs.len());
    let s = emb(scenes.iter().flat_map(|(_, p)| p.clone()).collect(), scenes.len());
    let best = s.matmul(r.transpose()).argmax(1).into_data().convert::<i64>().to_vec::<i64>().unwrap();
    scenes.iter().zip(best).filter(|((c, _), b)| *c as i64 == *b).count()
}

#[test]
fn a_few_steps_teach_the_tower_to_find_the_concept_in_a_scene() {
    let dev = Default::default();
    B::seed(&dev, 3);
    let cfg = ClipConfig { text: tower(16, 1), vision: tower(32, 2), projection_dim: 16 };
    let clip = Clip::<Autodiff<B>>::new(&cfg, &dev);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let refs: Vec<Vec<f32>> = (0..4).map(|c| picture(&[(c, 10, 10)], &mut rng)).collect();
    let views: Vec<ConceptViews> = (0..4)
        .map(|c| ConceptViews {
            references: vec![refs[c].clone()],
            scenes: (0..40).map(|_| scene(c, &mut rng)).collect(),
        })
        .collect();
    let held_out: Vec<(usize, Vec<f32>)> = (0..24).map(|i| (i % 4, scene(i % 4, &mut rng))).collect();
    let before = accuracy(&clip.valid(), &refs, &held_out);
    let mut losses = Vec::new();
    let train = ContrastiveConfig { steps: 400, concepts_per_step: 4, learning_rate: 1e-3, temperature: 0.1, seed: 0 };
    let clip = train_image_tower(clip, &views, &train, &mut |_, l| losses.push(l)).unwrap();
    let after = accuracy(&clip.valid(), &refs, &held_out);
    eprintln!("{:?}", losses.iter().step_by(20).collect::<Vec<_>>());
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    assert!(mean(&losses[120..]) < 0.5 * mean(&losses[..10]), "{losses:?}");
    eprintln!("held-out {before} -> {after}");
    assert!(after == 24 && before < 24, "held-out scenes matched: {before} -> {after} of 24");
    // Bad settings are refused before any work.
    let bad = ContrastiveConfig { concepts_per_step: 1, ..train };
    assert!(train_image_tower(Clip::<Autodiff<B>>::new(&cfg, &dev), &views, &bad, &mut |_, _| {}).is_err());
}
