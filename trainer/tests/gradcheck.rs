//! Finite-difference check of the GRPO loss gradient on a tiny model: the directional derivative along a random
//! direction of a LoRA matrix equals the autodiff gradient's projection, with old log-probs off the current
//! policy (ratio != 1), a KL term to the adapters-off reference, and mixed-sign advantages; and the SFT loss
//! gradient of vision-tower weights (patch embedding, attention, MLP, merger) the same way.

use std::path::PathBuf;

use burn::backend::Autodiff;
use burn::module::{AutodiffModule, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use repic_data::Message;
use repic_models::{Checkpoint, Engine, LoraConfig, LoraTargets, QwenVl, ScoreOptions, VlInput};
use repic_trainer::loss::{LossType, Normaliser, Objective, aggregate, token_terms};

type I = repic_models::DefaultBackend;
type A = Autodiff<I>;

const COMPLETIONS: [&[u32]; 2] = [&[49, 50, 51, 20], &[60, 61]];

/// A tensor filled by `draw`. The tests take their random values from generators of their own: the backend's
/// generator is global, and the two tests of this file run in parallel threads, so draws from it interleave
/// differently from run to run.
fn filled<B: Backend>(dims: [usize; 2], dev: &B::Device, draw: impl FnMut() -> f32) -> Tensor<B, 2> {
    Tensor::from_data(TensorData::new(std::iter::repeat_with(draw).take(dims[0] * dims[1]).collect(), dims), dev)
}

/// One N(0, std^2) value (Box-Muller).
fn gaussian(rng: &mut ChaCha8Rng, std: f32) -> f32 {
    let (u, w): (f32, f32) = (1.0 - rng.random::<f32>(), rng.random());
    std * (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * w).cos()
}

/// The GRPO loss of `model` on the two completions.
fn loss<B: Backend>(model: &QwenVl<B>, input: &VlInput, old: &[f32], refp: &[f32]) -> Tensor<B, 1> {
    let dev = Default::default();
    let comps: Vec<Vec<u32>> = COMPLETIONS.iter().map(|c| c.to_vec()).collect();
    let s = Engine::new(model, &dev)
        .score_group(input, &comps, ScoreOptions { temperature: 0.7, chunk: 3, entropy: false })
        .unwrap();
    let t = |v: &[f32]| Tensor::<B, 2>::from_data(TensorData::new(v.to_vec(), [2, 4]), &dev);
    let adv = Tensor::<B, 1>::from_data(TensorData::new(vec![1.0f32, -0.5], [2]), &dev);
    let obj = Objective { beta: 0.1, epsilon: 0.2, epsilon_high: 0.2 };
    let terms = token_terms(s.logprobs, Some(t(old)), Some(t(refp)), adv, obj);
    let n = Normaliser {
        loss_type: LossType::Grpo,
        seqs: 2,
        tokens: 6.0,
        global_tokens: 6.0,
        max_completion_length: 4,
        accumulation: 1,
    };
    aggregate(terms.loss, s.mask, &n)
}

#[test]
fn grpo_loss_gradient_matches_finite_differences() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/tests/fixtures/qwen2_vl");
    let dev = Default::default();
    let mut ckpt = Checkpoint::<A>::load(&dir, &dev).unwrap();
    let lora = LoraConfig {
        r: 2,
        alpha: 4.0,
        dropout: 0.0,
        target_modules: LoraTargets::Regex(repic_models::lora::REPIC_TARGETS.into()),
        use_rslora: false,
    };
    ckpt.model.attach_lora(&lora, &dev).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    // A drawn as PEFT does (Kaiming-uniform), but from the test's generator; non-zero B everywhere, so that every
    // adapter (and the head's) takes part.
    let randomised = ckpt
        .model
        .adapters()
        .into_iter()
        .map(|(n, l)| {
            let mut l = l.clone();
            let dims = l.a.weight.dims();
            let bound = 1.0 / (dims[0] as f32).sqrt();
            l.a.weight = Param::from_tensor(filled(dims, &dev, || bound * (2.0 * rng.random::<f32>() - 1.0)));
            l.b.weight = Param::from_tensor(filled(l.b.weight.dims(), &dev, || gaussian(&mut rng, 0.1)));
            (n, l)
        })
        .collect();
    ckpt.model.set_adapters(randomised).unwrap();
    let prompt = ckpt.prepare(&[Message::user_with_images(["image0.png"], "Who is <bo>?")], &dir).unwrap();
    let input = prompt.input;
    // old log-probs 0.05 below the current ones (ratio e^0.05, inside the clip); reference = adapters off.
    let comps: Vec<Vec<u32>> = COMPLETIONS.iter().map(|c| c.to_vec()).collect();
    let opts = ScoreOptions { temperature: 0.7, chunk: 3, entropy: false };
    let inner = ckpt.model.valid();
    let logprobs = |m: &QwenVl<I>| -> Vec<f32> {
        let s = Engine::new(m, &dev).score_group(&input, &comps, opts).unwrap();
        s.logprobs.into_data().to_vec().unwrap()
    };
    let old: Vec<f32> = logprobs(&inner).iter().map(|x| x - 0.05).collect();
    let refp = logprobs(&inner.without_lora());

    let grads = loss(&ckpt.model, &input, &old, &refp).backward();
    for layer in ["lm_head", "model.layers.1.mlp.down_proj", "model.layers.0.self_attn.q_proj"] {
        let (_, adapter) = ckpt.model.adapters().into_iter().find(|(n, _)| n == layer).unwrap();
        for (which, w) in [("A", &adapter.a.weight), ("B", &adapter.b.weight)] {
            let g = w.grad(&grads).expect("gradient");
            let dir_t: Tensor<I, 2> = filled(g.dims(), &dev, || gaussian(&mut rng, 1.0));
            let analytic: f32 = (g * dir_t.clone()).sum().into_scalar();
            let h = 1e-2f32;
            let at = |sign: f32| -> f32 {
                let mut m = inner.clone();
                let (name, l) =
                    m.adapters().into_iter().find(|(n, _)| n == layer).map(|(n, l)| (n, l.clone())).unwrap();
                let mut l = l;
                let target = if which == "A" { &mut l.a.weight } else { &mut l.b.weight };
                *target = Param::from_tensor(target.val() + dir_t.clone() * (sign * h));
                m.set_adapters(vec![(name, l)]).unwrap();
                loss(&m, &input, &old, &refp).into_scalar()
            };
            let numeric = (at(1.0) - at(-1.0)) / (2.0 * h);
            let err = (numeric - analytic).abs() / analytic.abs().max(1e-3);
            assert!(err < 2e-2, "{layer} {which}: autodiff {analytic} vs finite difference {numeric}");
        }
    }
}

/// Which vision-tower Linear of `m` a check perturbs.
fn vision_linear<'a, B: Backend>(m: &'a mut QwenVl<B>, which: &str) -> &'a mut burn::nn::Linear<B> {
    match which {
        "patch_embed" => &mut m.visual.patch_embed.proj,
        "blocks.0.attn.qkv" => &mut m.visual.blocks[0].attn.qkv,
        "blocks.1.mlp.fc" => {
            let mlp = &mut m.visual.blocks[1].mlp;
            match (&mut mlp.fc1, &mut mlp.up_proj) {
                (Some(l), _) | (None, Some(l)) => l,
                _ => panic!("vision MLP without an input layer"),
            }
        }
        _ => &mut m.visual.merger.fc_out,
    }
}

/// The negative log-likelihood of the completions: the SFT loss, whose gradient must reach the vision tower.
fn nll<B: Backend>(model: &QwenVl<B>, input: &VlInput) -> Tensor<B, 1> {
    let comps: Vec<Vec<u32>> = COMPLETIONS.iter().map(|c| c.to_vec()).collect();
    let s = Engine::new(model, &Default::default())
        .score_group(input, &comps, ScoreOptions { temperature: 1.0, chunk: 3, entropy: false })
        .unwrap();
    (s.logprobs * s.mask).sum().neg()
}

#[test]
fn vision_tower_gradient_matches_finite_differences() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/tests/fixtures/qwen2_vl");
    let dev = Default::default();
    let ckpt = Checkpoint::<A>::load(&dir, &dev).unwrap();
    let prompt = ckpt.prepare(&[Message::user_with_images(["image0.png"], "Who is <bo>?")], &dir).unwrap();
    let input = prompt.input;
    let grads = nll(&ckpt.model, &input).backward();
    let inner = ckpt.model.valid();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for which in ["patch_embed", "blocks.0.attn.qkv", "blocks.1.mlp.fc", "merger.fc_out"] {
        let mut model = ckpt.model.clone();
        let g = vision_linear(&mut model, which).weight.grad(&grads).expect("gradient");
        let dir_t: Tensor<I, 2> = filled(g.dims(), &dev, || gaussian(&mut rng, 1.0));
        let analytic: f32 = (g * dir_t.clone()).sum().into_scalar();
        // Converges: at h = 8e-3 / 4e-3 / 2e-3 / 1e-3 the patch embedding gives 3.013 / 3.047 / 3.057 / 3.059 (autodiff 3.059);
        // below 4e-3 float32 rounding of the loss (~36) dominates the smaller gradients.
        let h = 4e-3f32;
        let at = |sign: f32| -> f32 {
            let mut m = inner.clone();
            let l = vision_linear(&mut m, which);
            l.weight = Param::from_tensor(l.weight.val() + dir_t.clone() * (sign * h));
            nll(&m, &input).into_scalar()
        };
        let numeric = (at(1.0) - at(-1.0)) / (2.0 * h);
        let err = (numeric - analytic).abs() / analytic.abs().max(1e-3);
        assert!(err < 2e-2, "{which}: autodiff {analytic} vs finite difference {numeric}");
    }
}
