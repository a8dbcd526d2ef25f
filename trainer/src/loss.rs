//! The mathematics of GRPO (grpo.md steps 4, 6, 7): group-normalised advantages, the clipped per-token
//! objective with the k3 KL penalty, and the four `loss_type` aggregations.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

/// Added to the standard deviation before dividing (TRL, RePIC).
pub const STD_EPS: f32 = 1e-4;

/// How advantages are scaled (TRL's `scale_rewards`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleRewards {
    /// Divide by the group's standard deviation (GRPO, RePIC).
    #[default]
    Group,
    /// Divide by the standard deviation of every reward of the batch.
    Batch,
    /// Do not divide (Dr. GRPO).
    None,
}

/// How per-token losses become one number (TRL's `loss_type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossType {
    /// Mean over each sequence's completion tokens, then mean over sequences (RePIC).
    #[default]
    Grpo,
    /// Sum over all completion tokens of the batch / their number.
    Bnpo,
    /// Sum over all tokens / (sequences * max_completion_length).
    DrGrpo,
    /// Sum over all tokens / completion tokens of the whole global batch (PreferThinker).
    Dapo,
}

/// Unbiased (N - 1) standard deviation; 0 for fewer than two values.
pub fn std_unbiased(x: &[f32]) -> f32 {
    if x.len() < 2 {
        return 0.0;
    }
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = x.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / (n - 1.0);
    var.sqrt() as f32
}

/// Advantages of `rewards` laid out group after group (`group` samples each): reward minus its group's mean,
/// divided per `scale` by a standard deviation plus [`STD_EPS`]. A group of equal rewards gets 0.
pub fn advantages(rewards: &[f32], group: usize, scale: ScaleRewards) -> Vec<f32> {
    assert!(group > 0 && rewards.len().is_multiple_of(group), "rewards must fill whole groups");
    let batch_std = std_unbiased(rewards);
    rewards
        .chunks(group)
        .flat_map(|g| {
            let mean = (g.iter().map(|&v| f64::from(v)).sum::<f64>() / g.len() as f64) as f32;
            let div = match scale {
                ScaleRewards::Group => std_unbiased(g) + STD_EPS,
                ScaleRewards::Batch => batch_std + STD_EPS,
                ScaleRewards::None => 1.0,
            };
            g.iter().map(move |&r| (r - mean) / div)
        })
        .collect()
}

/// Clip settings of the objective.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Objective {
    /// KL coefficient (0: no reference pass).
    pub beta: f64,
    /// Lower clip: the ratio is kept >= 1 - epsilon.
    pub epsilon: f64,
    /// Upper clip: the ratio is kept <= 1 + epsilon_high (DAPO's clip-higher; = epsilon otherwise).
    pub epsilon_high: f64,
}

/// Per-token pieces of the objective, `[G, C]` each.
#[derive(Clone, Debug)]
pub struct TokenTerms<B: Backend> {
    /// `-min(ratio * A, clip(ratio) * A) + beta * KL`.
    pub loss: Tensor<B, 2>,
    /// `exp(logp - old_logp)`.
    pub ratio: Tensor<B, 2>,
    /// k3 estimate `exp(ref - logp) - (ref - logp) - 1`, when a reference is given.
    pub kl: Option<Tensor<B, 2>>,
}

/// The clipped objective per token. `old_logp = None` means the rollouts come from this very policy
/// (`num_iterations` = 1): the detached log-probs stand in, so the ratio is exactly 1 and only its gradient
/// remains. `advantages` is `[G]`.
pub fn token_terms<B: Backend>(
    logp: Tensor<B, 2>,
    old_logp: Option<Tensor<B, 2>>,
    ref_logp: Option<Tensor<B, 2>>,
    advantages: Tensor<B, 1>,
    obj: Objective,
) -> TokenTerms<B> {
    let old = old_logp.unwrap_or_else(|| logp.clone().detach());
    let ratio = (logp.clone() - old).exp();
    let a = advantages.unsqueeze_dim::<2>(1);
    let unclipped = ratio.clone() * a.clone();
    let clipped = ratio.clone().clamp(1.0 - obj.epsilon, 1.0 + obj.epsilon_high) * a;
    let mut loss = unclipped.min_pair(clipped).neg();
    let kl = ref_logp.filter(|_| obj.beta > 0.0).map(|r| {
        let d = r - logp;
        d.clone().exp() - d - 1.0
    });
    if let Some(k) = &kl {
        loss = loss + k.clone() * obj.beta;
    }
    TokenTerms { loss, ratio, kl }
}

/// What a group's summed token losses are divided by, for one optimizer step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normaliser {
    /// The aggregation.
    pub loss_type: LossType,
    /// Sequences in this micro-batch.
    pub seqs: usize,
    /// Completion tokens (mask ones) in this micro-batch.
    pub tokens: f64,
    /// Completion tokens in the whole optimizer step, every micro-batch and device (for `dapo`).
    pub global_tokens: f64,
    /// `max_completion_length` (for `dr_grpo`).
    pub max_completion_length: usize,
    /// Micro-batches per optimizer step (gradient accumulation): each contributes 1/accumulation of the mean.
    pub accumulation: usize,
}

/// The contribution of one group's tokens (`loss`, `mask`: `[G, C]`) to the optimizer step's loss; summed over
/// the groups of every micro-batch it gives the step's loss for `n.loss_type`.
pub fn aggregate<B: Backend>(loss: Tensor<B, 2>, mask: Tensor<B, 2>, n: &Normaliser) -> Tensor<B, 1> {
    let masked = loss * mask.clone();
    let acc = n.accumulation.max(1) as f64;
    match n.loss_type {
        LossType::Grpo => {
            let per_seq = masked.sum_dim(1) / mask.sum_dim(1).clamp_min(1.0);
            per_seq.sum().div_scalar(n.seqs.max(1) as f64 * acc)
        }
        LossType::Bnpo => masked.sum().div_scalar(n.tokens.max(1.0) * acc),
        LossType::DrGrpo => masked.sum().div_scalar((n.seqs.max(1) * n.max_completion_length.max(1)) as f64 * acc),
        LossType::Dapo => masked.sum().div_scalar(n.global_tokens.max(1.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Autodiff;
    use burn::tensor::TensorData;

    type B = repic_models::DefaultBackend;

    fn t2(v: &[f32], shape: [usize; 2]) -> Tensor<B, 2> {
        Tensor::from_data(TensorData::new(v.to_vec(), shape), &Default::default())
    }

    fn t1(v: &[f32]) -> Tensor<B, 1> {
        Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), &Default::default())
    }

    fn vals<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
        t.into_data().to_vec().unwrap()
    }

    fn close(a: &[f32], b: &[f32], tol: f32) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= tol, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn advantages_by_hand() {
        // Group [1, 0, 0, 1]: mean 0.5, unbiased std sqrt(1/3) = 0.57735.
        let a = advantages(&[1.0, 0.0, 0.0, 1.0, 0.3, 0.3, 0.3, 0.3], 4, ScaleRewards::Group);
        let s = 0.5 / (0.577_350_3 + 1e-4);
        close(&a, &[s, -s, -s, s, 0.0, 0.0, 0.0, 0.0], 1e-6);
        // Batch: the same centring, divided by the std of all eight rewards.
        let all = [1.0, 0.0, 0.0, 1.0, 0.3, 0.3, 0.3, 0.3];
        let b = advantages(&all, 4, ScaleRewards::Batch);
        let sb = std_unbiased(&all) + 1e-4;
        close(&b, &[0.5 / sb, -0.5 / sb, -0.5 / sb, 0.5 / sb, 0.0, 0.0, 0.0, 0.0], 1e-6);
        // None (Dr. GRPO): centring only.
        close(&advantages(&[2.0, 0.0], 2, ScaleRewards::None), &[1.0, -1.0], 0.0);
        // std of 8 values by hand: mean 0.4, squares 0.36*2 + 0.16*2 + 0.01*4 = 1.08, / 7.
        assert!((std_unbiased(&all) - (1.08f32 / 7.0).sqrt()).abs() < 1e-6);
    }

    #[test]
    fn k3_kl_and_clipped_objective_by_hand() {
        let logp = t2(&[-1.0, -2.0, -0.5, -0.1], [2, 2]);
        let old = t2(&[-1.2, -1.5, -0.5, -0.4], [2, 2]);
        let refp = t2(&[-1.0, -1.0, -0.7, -0.1], [2, 2]);
        let obj = Objective { beta: 0.1, epsilon: 0.2, epsilon_high: 0.28 };
        let terms = token_terms(logp, Some(old), Some(refp), t1(&[1.0, -2.0]), obj);
        // ratios: e^0.2 = 1.2214, e^-0.5 = 0.6065, 1, e^0.3 = 1.3499
        let r = [0.2f32.exp(), (-0.5f32).exp(), 1.0, 0.3f32.exp()];
        close(&vals(terms.ratio), &r, 1e-6);
        // k3 with d = ref - logp: 0, 1, -0.2, 0
        let k = |d: f32| d.exp() - d - 1.0;
        let kl = [k(0.0), k(1.0), k(-0.2), k(0.0)];
        close(&vals(terms.kl.unwrap()), &kl, 1e-6);
        // Row 0, A = 1: min(1.2214, 1.2214 (clip at 1.28 inactive)) and min(0.6065, 0.8) = 0.6065.
        // Row 1, A = -2: min(-2, -2) = -2 and min(-2.6998, clip 1.28 * -2 = -2.56) = -2.6998.
        let want = [-r[0] + 0.1 * kl[0], -r[1] + 0.1 * kl[1], 2.0 + 0.1 * kl[2], 2.0 * r[3] + 0.1 * kl[3]];
        close(&vals(terms.loss), &want, 1e-6);
        // Upper clip active: A > 0 and ratio 1.5 > 1.28 gives -1.28 A.
        let up = token_terms(t2(&[0.0], [1, 1]), Some(t2(&[-(1.5f32.ln())], [1, 1])), None, t1(&[1.0]), obj);
        close(&vals(up.loss), &[-1.28], 1e-6);
        assert!(up.kl.is_none());
    }

    #[test]
    fn without_old_logprobs_the_ratio_is_exactly_one_and_the_gradient_is_the_policy_gradient() {
        type A = Autodiff<B>;
        let dev = Default::default();
        let logp: Tensor<A, 2> =
            Tensor::from_data(TensorData::new(vec![-0.7f32, -1.3, -2.2], [1, 3]), &dev).require_grad();
        let adv: Tensor<A, 1> = Tensor::from_data(TensorData::new(vec![0.5f32], [1]), &dev);
        let obj = Objective { beta: 0.0, epsilon: 0.2, epsilon_high: 0.2 };
        let terms = token_terms(logp.clone(), None, None, adv, obj);
        let ratio: Vec<f32> = terms.ratio.clone().into_data().to_vec().unwrap();
        assert_eq!(ratio, [1.0, 1.0, 1.0], "the ratio must be exactly 1");
        let grads = terms.loss.sum().backward();
        let g: Vec<f32> = logp.grad(&grads).unwrap().into_data().to_vec().unwrap();
        // d(-ratio * A)/d logp = -A * ratio = -0.5 per token.
        assert_eq!(g, [-0.5, -0.5, -0.5]);
    }

    #[test]
    fn the_four_aggregations_by_hand() {
        // Two sequences: lengths 2 and 1 of a width of 3.
        let loss = t2(&[1.0, 3.0, 100.0, 4.0, 100.0, 100.0], [2, 3]);
        let mask = t2(&[1.0, 1.0, 0.0, 1.0, 0.0, 0.0], [2, 3]);
        let n = Normaliser {
            loss_type: LossType::Grpo,
            seqs: 2,
            tokens: 3.0,
            global_tokens: 6.0,
            max_completion_length: 4,
            accumulation: 1,
        };
        let run = |n: Normaliser| vals(aggregate(loss.clone(), mask.clone(), &n))[0];
        assert_eq!(run(n), (2.0 + 4.0) / 2.0); // mean of per-sequence means (1+3)/2 and 4
        assert_eq!(run(Normaliser { loss_type: LossType::Bnpo, ..n }), 8.0 / 3.0);
        assert_eq!(run(Normaliser { loss_type: LossType::DrGrpo, ..n }), 8.0 / (2.0 * 4.0));
        assert_eq!(run(Normaliser { loss_type: LossType::Dapo, ..n }), 8.0 / 6.0);
        // Accumulation over two micro-batches halves each one's share, except dapo's global count.
        assert_eq!(run(Normaliser { accumulation: 2, ..n }), 1.5);
        assert_eq!(run(Normaliser { loss_type: LossType::Dapo, accumulation: 2, ..n }), 8.0 / 6.0);
    }
}
