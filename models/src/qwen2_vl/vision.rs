//! The vision tower: patch embedding, 2-D rotary attention (full per image, or windowed for Qwen2.5-VL),
//! and the 2x2 patch merger.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::{gelu, sigmoid, silu, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use super::config::{Arch, VisionConfig};
use super::linear;
use super::norm::Norm;
use super::rope::{rotate, vision_tables};

/// Flattened (channel, frame, row, column) patches -> embed_dim; the HF Conv3d weight, reshaped on load.
#[derive(Module, Debug)]
pub struct PatchEmbed<B: Backend> {
    /// Projection without bias.
    pub proj: Linear<B>,
}

/// Attention of a vision block.
#[derive(Module, Debug)]
pub struct VisionAttention<B: Backend> {
    /// Fused q, k, v projection.
    pub qkv: Linear<B>,
    /// Output projection.
    pub proj: Linear<B>,
    heads: usize,
}

/// MLP of a vision block: QuickGELU `fc1`/`fc2` (Qwen2-VL) or SwiGLU `gate/up/down_proj` (Qwen2.5-VL).
#[derive(Module, Debug)]
pub struct VisionMlp<B: Backend> {
    /// Qwen2-VL first layer.
    pub fc1: Option<Linear<B>>,
    /// Qwen2-VL second layer.
    pub fc2: Option<Linear<B>>,
    /// Qwen2.5-VL gate.
    pub gate_proj: Option<Linear<B>>,
    /// Qwen2.5-VL up.
    pub up_proj: Option<Linear<B>>,
    /// Qwen2.5-VL down.
    pub down_proj: Option<Linear<B>>,
    /// Activation, index into [`super::config::ACTIVATIONS`].
    act: usize,
}

/// Apply activation number `act` of [`super::config::ACTIVATIONS`].
fn activate<B: Backend>(x: Tensor<B, 2>, act: usize) -> Tensor<B, 2> {
    match act {
        0 => x.clone() * sigmoid(x * 1.702),
        1 | 4 => silu(x),
        2 => gelu(x),
        _ => burn::tensor::activation::gelu_approximate(x),
    }
}

/// One vision transformer block.
#[derive(Module, Debug)]
pub struct VisionBlock<B: Backend> {
    /// Norm before attention.
    pub norm1: Norm<B>,
    /// Norm before the MLP.
    pub norm2: Norm<B>,
    /// Attention.
    pub attn: VisionAttention<B>,
    /// MLP.
    pub mlp: VisionMlp<B>,
}

/// Merges 2x2 neighbouring patches into one LM token: norm, Linear(4d -> 4d), GELU, Linear(-> LM width).
#[derive(Module, Debug)]
pub struct Merger<B: Backend> {
    /// Norm over each patch (HF `ln_q`).
    pub ln_q: Norm<B>,
    /// HF `mlp.0`.
    pub fc_in: Linear<B>,
    /// HF `mlp.2`.
    pub fc_out: Linear<B>,
}

/// The vision tower (HF `visual.*`).
#[derive(Module, Debug)]
pub struct Vision<B: Backend> {
    /// Patch embedding.
    pub patch_embed: PatchEmbed<B>,
    /// Blocks.
    pub blocks: Vec<VisionBlock<B>>,
    /// Patch merger.
    pub merger: Merger<B>,
    merge: usize,
    head_dim: usize,
    rope_theta: f64,
    window_merged: usize,
    full_blocks: Vec<usize>,
}

impl<B: Backend> Vision<B> {
    /// A randomly initialised tower for `cfg` (weights are then loaded).
    pub fn new(cfg: &VisionConfig, arch: Arch, device: &B::Device) -> Self {
        let d = cfg.embed_dim;
        let norm = |device| match arch {
            Arch::Qwen2Vl => Norm::layer(d, 1e-6, device),
            Arch::Qwen25Vl => Norm::rms(d, 1e-6, device),
        };
        let patch = cfg.in_chans * cfg.temporal_patch_size * cfg.patch_size * cfg.patch_size;
        let blocks = (0..cfg.depth)
            .map(|_| {
                let (i, q) = (cfg.intermediate_size, arch == Arch::Qwen2Vl);
                VisionBlock {
                    norm1: norm(device),
                    norm2: norm(device),
                    attn: VisionAttention {
                        qkv: linear(d, 3 * d, true, device),
                        proj: linear(d, d, true, device),
                        heads: cfg.num_heads,
                    },
                    mlp: VisionMlp {
                        fc1: q.then(|| linear(d, i, true, device)),
                        fc2: q.then(|| linear(i, d, true, device)),
                        gate_proj: (!q).then(|| linear(d, i, true, device)),
                        up_proj: (!q).then(|| linear(d, i, true, device)),
                        down_proj: (!q).then(|| linear(i, d, true, device)),
                        act: cfg.act,
                    },
                }
            })
            .collect();
        let unit = cfg.spatial_merge_size * cfg.spatial_merge_size;
        Vision {
            patch_embed: PatchEmbed { proj: linear(patch, d, false, device) },
            blocks,
            merger: Merger {
                ln_q: norm(device),
                fc_in: linear(d * unit, d * unit, true, device),
                fc_out: linear(d * unit, cfg.out_hidden_size, true, device),
            },
            merge: cfg.spatial_merge_size,
            head_dim: d / cfg.num_heads,
            rope_theta: cfg.rope_theta,
            window_merged: match arch {
                Arch::Qwen2Vl => 0,
                Arch::Qwen25Vl => cfg.window_size / cfg.spatial_merge_size / cfg.patch_size,
            },
            full_blocks: cfg.fullatt_block_indexes.clone(),
        }
    }

    /// Image features `[sum(t*h*w)/4, LM width]` for flattened patches `[sum(t*h*w), C*T*P*P]` of images with
    /// the given (t, h, w) grids (in patches), in the processor's merge-window order.
    pub fn forward(&self, pixels: Tensor<B, 2>, grids: &[[usize; 3]]) -> Tensor<B, 2> {
        let device = pixels.device();
        let n = pixels.dims()[0];
        let unit = self.merge * self.merge;
        let mut x = self.patch_embed.proj.forward(pixels);
        let (mut cos, mut sin) = vision_tables::<B>(grids, self.head_dim, self.merge, self.rope_theta, &device);
        let full: Vec<usize> = grids.iter().flat_map(|&[t, h, w]| std::iter::repeat_n(h * w, t)).collect();
        let mut windows = full.clone();
        let mut order = None;
        if self.window_merged > 0 {
            let (idx, lens) = window_index(grids, self.merge, self.window_merged);
            windows = lens.into_iter().filter(|&l| l > 0).map(|l| l * unit).collect();
            // Reorder merge units (groups of `unit` consecutive patches) window by window.
            let patch_idx: Vec<i64> = idx.iter().flat_map(|&u| (0..unit).map(move |k| (u * unit + k) as i64)).collect();
            let sel = Tensor::<B, 1, Int>::from_data(TensorData::new(patch_idx, [n]), &device);
            x = x.select(0, sel.clone());
            cos = cos.select(0, sel.clone());
            sin = sin.select(0, sel);
            order = Some(idx);
        }
        for (i, block) in self.blocks.iter().enumerate() {
            let segs = if self.window_merged == 0 || self.full_blocks.contains(&i) { &full } else { &windows };
            x = block.forward(x, &cos, &sin, segs);
        }
        let d = x.dims()[1];
        let m = self.merger.ln_q.forward(x).reshape([n / unit, d * unit]);
        let mut out = self.merger.fc_out.forward(gelu(self.merger.fc_in.forward(m)));
        if let Some(idx) = order {
            let mut inverse = vec![0i64; idx.len()];
            for (pos, &u) in idx.iter().enumerate() {
                inverse[u] = pos as i64;
            }
            let len = inverse.len();
            out = out.select(0, Tensor::from_data(TensorData::new(inverse, [len]), &device));
        }
        out
    }
}

/// Qwen2.5-VL's window partition: merge units listed window by window (windows of `ws` x `ws` merge units,
/// padded grids, row-major over windows), and the number of units in each window (zero for empty windows).
fn window_index(grids: &[[usize; 3]], merge: usize, ws: usize) -> (Vec<usize>, Vec<usize>) {
    let (mut idx, mut lens) = (Vec::new(), Vec::new());
    let mut base = 0;
    for &[t, h, w] in grids {
        let (gh, gw) = (h / merge, w / merge);
        let (nwh, nww) = ((gh + ws - gh % ws) / ws, (gw + ws - gw % ws) / ws);
        for ti in 0..t {
            for wy in 0..nwh {
                for wx in 0..nww {
                    let mut count = 0;
                    for y in wy * ws..(wy + 1) * ws {
                        for x in wx * ws..(wx + 1) * ws {
                            if y < gh && x < gw {
                                idx.push(base + ti * gh * gw + y * gw + x);
                                count += 1;
                            }
                        }
                    }
                    lens.push(count);
                }
            }
        }
        base += t * gh * gw;
    }
    (idx, lens)
}

impl<B: Backend> VisionBlock<B> {
    fn forward(&self, x: Tensor<B, 2>, cos: &Tensor<B, 2>, sin: &Tensor<B, 2>, segs: &[usize]) -> Tensor<B, 2> {
        let x = x.clone() + self.attn.forward(self.norm1.forward(x), cos, sin, segs);
        let h = self.norm2.forward(x.clone());
        let m = &self.mlp;
        let y = match (&m.fc1, &m.fc2, &m.gate_proj, &m.up_proj, &m.down_proj) {
            (Some(fc1), Some(fc2), ..) => fc2.forward(activate(fc1.forward(h), m.act)),
            (_, _, Some(g), Some(u), Some(d)) => d.forward(activate(g.forward(h.clone()), m.act) * u.forward(h)),
            _ => unreachable!("vision MLP is built with one complete set of layers"),
        };
        x + y
    }
}

impl<B: Backend> VisionAttention<B> {
    fn forward(&self, x: Tensor<B, 2>, cos: &Tensor<B, 2>, sin: &Tensor<B, 2>, segs: &[usize]) -> Tensor<B, 2> {
        let [n, d] = x.dims();
        let hd = d / self.heads;
        // [n, 3, heads, hd] -> three [heads, n, hd]
        let qkv = self.qkv.forward(x).reshape([n, 3, self.heads, hd]).permute([1, 2, 0, 3]);
        let (cos, sin) = (cos.clone().unsqueeze::<3>(), sin.clone().unsqueeze::<3>());
        let q = rotate(qkv.clone().narrow(0, 0, 1).squeeze_dim::<3>(0), &cos, &sin);
        let k = rotate(qkv.clone().narrow(0, 1, 1).squeeze_dim::<3>(0), &cos, &sin);
        let v = qkv.narrow(0, 2, 1).squeeze_dim::<3>(0);
        let scale = (hd as f64).powf(-0.5);
        let mut outs = Vec::with_capacity(segs.len());
        let mut start = 0;
        for &len in segs {
            let (qs, ks, vs) =
                (q.clone().narrow(1, start, len), k.clone().narrow(1, start, len), v.clone().narrow(1, start, len));
            let att = softmax(qs.matmul(ks.swap_dims(1, 2)) * scale, 2);
            outs.push(att.matmul(vs));
            start += len;
        }
        let out = Tensor::cat(outs, 1).swap_dims(0, 1).reshape([n, d]);
        self.proj.forward(out)
    }
}

#[cfg(test)]
mod tests {
    use super::window_index;

    #[test]
    fn window_partition_matches_transformers_layout() {
        // One image of 6 x 10 patches -> 3 x 5 merge units, windows of 2 x 2 units: 2 x 3 windows.
        let (idx, lens) = window_index(&[[1, 6, 10]], 2, 2);
        assert_eq!(lens, [4, 4, 2, 2, 2, 1]);
        assert_eq!(&idx[..8], &[0, 1, 5, 6, 2, 3, 7, 8]);
        assert_eq!(&idx[8..], &[4, 9, 10, 11, 12, 13, 14]);
        // A grid that divides evenly still gets a padding row and column of empty windows (as upstream).
        let (_, lens) = window_index(&[[1, 4, 4]], 2, 2);
        assert_eq!(lens, [4, 0, 0, 0]);
    }
}
