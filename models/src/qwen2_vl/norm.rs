//! Normalisation layers with Hugging Face parameter names (`weight`, `bias`).

use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor};

/// RMSNorm (`bias` = None) or LayerNorm (`bias` = Some), computed in f32 as transformers does.
#[derive(Module, Debug)]
pub struct Norm<B: Backend> {
    /// Scale.
    pub weight: Param<Tensor<B, 1>>,
    /// Shift (LayerNorm only).
    pub bias: Option<Param<Tensor<B, 1>>>,
    /// Epsilon.
    pub eps: f64,
}

impl<B: Backend> Norm<B> {
    /// An RMSNorm of width `dim` (weights 1).
    pub fn rms(dim: usize, eps: f64, device: &B::Device) -> Self {
        Norm { weight: Param::from_tensor(Tensor::ones([dim], device)), bias: None, eps }
    }

    /// A LayerNorm of width `dim` (weights 1, bias 0).
    pub fn layer(dim: usize, eps: f64, device: &B::Device) -> Self {
        let bias = Some(Param::from_tensor(Tensor::zeros([dim], device)));
        Norm { weight: Param::from_tensor(Tensor::ones([dim], device)), bias, eps }
    }

    /// Normalise over the last dimension.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let dtype = x.dtype();
        let x = x.cast(DType::F32);
        let y = match &self.bias {
            None => {
                let var = x.clone().square().mean_dim(D - 1);
                x * (var + self.eps).sqrt().recip()
            }
            Some(_) => {
                let mean = x.clone().mean_dim(D - 1);
                let centred = x - mean;
                let var = centred.clone().square().mean_dim(D - 1);
                centred * (var + self.eps).sqrt().recip()
            }
        };
        let mut y = y.cast(dtype) * self.weight.val().unsqueeze();
        if let Some(b) = &self.bias {
            y = y + b.val().unsqueeze();
        }
        y
    }
}
