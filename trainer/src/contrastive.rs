//! Contrastive training of a CLIP image tower for retrieval (InfoNCE, as CLIP's own loss but image to image):
//! each step takes several concepts, embeds one reference view and one scene that shows each, and pulls every
//! reference towards its own scene and away from the others' (symmetric cross-entropy over the batch). This is
//! how the demo gets a retrieval encoder without downloaded weights.

use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use repic_models::Clip;

use crate::TrainError;

/// Settings of contrastive training.
#[derive(Clone, Copy, Debug)]
pub struct ContrastiveConfig {
    /// Optimizer steps.
    pub steps: usize,
    /// Concepts per step (the batch: each is the others' negatives).
    pub concepts_per_step: usize,
    /// AdamW learning rate (constant).
    pub learning_rate: f64,
    /// Softmax temperature of the cosine logits.
    pub temperature: f32,
    /// Seed of the batches and flips.
    pub seed: u64,
}

impl ContrastiveConfig {
    fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: &str| Err(TrainError::Run(format!("contrastive training: {m}")));
        if self.concepts_per_step < 2 {
            return bad("concepts_per_step must be at least 2 (each needs negatives)");
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return bad("learning_rate must be positive");
        }
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return bad("temperature must be positive");
        }
        Ok(())
    }
}

/// One concept's views as preprocessed pixels (CHW rows of the CLIP processor): its reference images and
/// scenes it appears in.
#[derive(Clone, Debug, Default)]
pub struct ConceptViews {
    /// Reference images.
    pub references: Vec<Vec<f32>>,
    /// Scenes that show the concept.
    pub scenes: Vec<Vec<f32>>,
}

/// `px` (C x S x S) mirrored left to right.
fn flip(px: &[f32], side: usize) -> Vec<f32> {
    let mut out = px.to_vec();
    for row in out.chunks_mut(side) {
        row.reverse();
    }
    out
}

/// Train `clip`'s image tower on `views`; `progress(step, loss)` after every step. Concepts without a reference
/// or a scene are left out; at least two must remain.
pub fn train_image_tower<B: AutodiffBackend>(
    mut clip: Clip<B>,
    views: &[ConceptViews],
    cfg: &ContrastiveConfig,
    progress: &mut dyn FnMut(usize, f32),
) -> Result<Clip<B>, TrainError> {
    cfg.validate()?;
    let usable: Vec<&ConceptViews> =
        views.iter().filter(|v| !v.references.is_empty() && !v.scenes.is_empty()).collect();
    if usable.len() < 2 {
        return Err(TrainError::Run(format!(
            "contrastive training needs two concepts with a reference and a scene, got {}",
            usable.len()
        )));
    }
    let side = clip.config().vision.image_size;
    let width = usable[0].references[0].len();
    if views.iter().flat_map(|v| v.references.iter().chain(&v.scenes)).any(|p| p.len() != width) {
        return Err(TrainError::Run("contrastive training: views of different sizes".into()));
    }
    let device = clip.logit_scale.val().device();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut optim = AdamWConfig::new().with_weight_decay(1e-4).init();
    let k = cfg.concepts_per_step.min(usable.len());
    let eye: Vec<f32> = (0..k * k).map(|i| if i / k == i % k { 1.0 } else { 0.0 }).collect();
    let eye = Tensor::<B, 2>::from_data(TensorData::new(eye, [k, k]), &device);
    for step in 1..=cfg.steps {
        let mut order: Vec<usize> = (0..usable.len()).collect();
        order.shuffle(&mut rng);
        let (mut anchors, mut positives) = (Vec::with_capacity(k * width), Vec::with_capacity(k * width));
        for &c in &order[..k] {
            let v = usable[c];
            for (list, out) in [(&v.references, &mut anchors), (&v.scenes, &mut positives)] {
                let px = &list[rng.random_range(0..list.len())];
                if rng.random_bool(0.5) { out.extend(flip(px, side)) } else { out.extend_from_slice(px) }
            }
        }
        let a = clip.image_embeds(Tensor::from_data(TensorData::new(anchors, [k, width]), &device));
        let p = clip.image_embeds(Tensor::from_data(TensorData::new(positives, [k, width]), &device));
        let logits = a.matmul(p.transpose()) / cfg.temperature;
        let rows = (log_softmax(logits.clone(), 1) * eye.clone()).sum();
        let cols = (log_softmax(logits.transpose(), 1) * eye.clone()).sum();
        let loss = (rows + cols) * (-0.5 / k as f32);
        let value: f32 = loss.clone().into_scalar().elem();
        if !value.is_finite() {
            return Err(TrainError::Run(format!("contrastive training: loss is {value} at step {step}")));
        }
        let grads = GradientsParams::from_grads(loss.backward(), &clip);
        clip = optim.step(cfg.learning_rate, clip, grads);
        progress(step, value);
    }
    Ok(clip)
}
