//! Global gradient-norm clipping over every trainable parameter (torch's `clip_grad_norm_`): burn's own
//! `GradientClipping::Norm` clips each tensor on its own, which is not what TRL / RePIC do.

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;

struct SquaredNorm<'a> {
    grads: &'a GradientsParams,
    sum: f64,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
            use burn::tensor::ElementConversion;
            self.sum += g.square().sum().into_scalar().elem::<f64>();
        }
    }
}

struct Scale<'a> {
    grads: &'a mut GradientsParams,
    factor: f32,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            self.grads.register(param.id, g * self.factor);
        }
    }
}

/// The global L2 norm of `grads` over `module`'s parameters; when it exceeds `max_norm` (> 0) every gradient
/// is scaled by `max_norm / (norm + 1e-6)` as torch does. Returns the norm before clipping.
pub fn clip_global_norm<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &mut GradientsParams,
    max_norm: f64,
) -> f64 {
    let mut v = SquaredNorm { grads, sum: 0.0 };
    module.visit(&mut v);
    let norm = v.sum.sqrt();
    if max_norm > 0.0 && norm > max_norm {
        let factor = (max_norm / (norm + 1e-6)) as f32;
        module.visit(&mut Scale { grads, factor });
    }
    norm
}
