//! Rotary embeddings: M-RoPE for the language model (with `get_rope_index`'s rules for images inside text)
//! and the 2-D rotary embedding of the vision tower.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

/// `x * cos + rotate_half(x) * sin` over the last dimension.
pub fn rotate<B: Backend, const D: usize>(x: Tensor<B, D>, cos: &Tensor<B, D>, sin: &Tensor<B, D>) -> Tensor<B, D> {
    let half = x.dims()[D - 1] / 2;
    let x1 = x.clone().narrow(D - 1, 0, half);
    let x2 = x.clone().narrow(D - 1, half, half);
    let rotated = Tensor::cat(vec![x2.neg(), x1], D - 1);
    x * cos.clone() + rotated * sin.clone()
}

/// `1 / base^(2i / dim)` for i < dim / 2, in f32 as transformers computes it.
fn inv_freq(dim: usize, base: f32) -> Vec<f32> {
    (0..dim / 2).map(|i| 1.0 / base.powf((2 * i) as f32 / dim as f32)).collect()
}

/// Position ids of one sequence: three rows (temporal, height, width) of length T.
pub type Positions = [Vec<i64>; 3];

/// M-RoPE positions (`get_rope_index`): text tokens advance all three ids together; each image's
/// `<|image_pad|>` run gets (t, h, w) grid positions (merged grid) offset by the text before it, and the text
/// after an image continues from the largest id + 1. `grids` are the images' (t, h, w) patch grids, in order.
/// Returns the positions and `max + 1 - len`, the offset of later positions (the rope delta).
pub fn rope_index(
    ids: &[u32],
    image_token: u32,
    grids: &[[usize; 3]],
    merge: usize,
) -> Result<(Positions, i64), String> {
    let mut pos: Positions =
        [Vec::with_capacity(ids.len()), Vec::with_capacity(ids.len()), Vec::with_capacity(ids.len())];
    let mut next = 0i64;
    let mut i = 0;
    let mut images = grids.iter();
    while i < ids.len() {
        if ids[i] != image_token {
            for row in pos.iter_mut() {
                row.push(next);
            }
            next += 1;
            i += 1;
            continue;
        }
        let [t, h, w] = *images.next().ok_or("more image pad runs than images")?;
        let (gh, gw) = (h / merge, w / merge);
        let n = t * gh * gw;
        if i + n > ids.len() || ids[i..i + n].iter().any(|&x| x != image_token) {
            return Err(format!("an image of grid {t}x{h}x{w} needs {n} consecutive image pad tokens"));
        }
        for ti in 0..t {
            for hi in 0..gh {
                for wi in 0..gw {
                    pos[0].push(next + ti as i64);
                    pos[1].push(next + hi as i64);
                    pos[2].push(next + wi as i64);
                }
            }
        }
        next += t.max(gh).max(gw) as i64;
        i += n;
    }
    if images.next().is_some() {
        return Err("fewer image pad runs than images".into());
    }
    Ok((pos, next - ids.len() as i64))
}

/// Cosine and sine tables `[T, head_dim]` of M-RoPE for one sequence.
pub fn mrope_tables<B: Backend>(
    pos: &Positions,
    head_dim: usize,
    theta: f64,
    section: &[usize],
    device: &B::Device,
) -> (Tensor<B, 2>, Tensor<B, 2>) {
    let freq = inv_freq(head_dim, theta as f32);
    let t = pos[0].len();
    // Which of (t, h, w) drives each rotary frequency: the sections, repeated for both halves.
    let mut owner = Vec::with_capacity(head_dim / 2);
    for (axis, &n) in section.iter().enumerate() {
        owner.extend(std::iter::repeat_n(axis, n));
    }
    let (mut cos, mut sin) = (Vec::with_capacity(t * head_dim), Vec::with_capacity(t * head_dim));
    for ((&p0, &p1), &p2) in pos[0].iter().zip(&pos[1]).zip(&pos[2]) {
        let p = [p0, p1, p2];
        for _ in 0..2 {
            for (k, f) in freq.iter().enumerate() {
                let a = p[owner[k]] as f32 * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
    }
    let mk = |v: Vec<f32>| Tensor::from_data(TensorData::new(v, [t, head_dim]), device);
    (mk(cos), mk(sin))
}

/// Vision rotary tables `[N, head_dim]` (rotary base `theta`) for images of the given (t, h, w) grids, with patches in merge-window
/// order (as the processor flattens them).
pub fn vision_tables<B: Backend>(
    grids: &[[usize; 3]],
    head_dim: usize,
    merge: usize,
    theta: f64,
    device: &B::Device,
) -> (Tensor<B, 2>, Tensor<B, 2>) {
    let freq = inv_freq(head_dim / 2, theta as f32);
    let (mut cos, mut sin) = (Vec::new(), Vec::new());
    let mut n = 0;
    for &[t, h, w] in grids {
        for _ in 0..t {
            for bh in 0..h / merge {
                for bw in 0..w / merge {
                    for ih in 0..merge {
                        for iw in 0..merge {
                            let (row, col) = ((bh * merge + ih) as f32, (bw * merge + iw) as f32);
                            let angles: Vec<f32> =
                                freq.iter().map(|f| row * f).chain(freq.iter().map(|f| col * f)).collect();
                            for _ in 0..2 {
                                cos.extend(angles.iter().map(|a| a.cos()));
                                sin.extend(angles.iter().map(|a| a.sin()));
                            }
                            n += 1;
                        }
                    }
                }
            }
        }
    }
    let mk = |v: Vec<f32>| Tensor::from_data(TensorData::new(v, [n, head_dim]), device);
    (mk(cos), mk(sin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_index_text_image_text() {
        // 2 text, one 1x4x6 image (2x3 merged = 6 pads), 2 text.
        let ids = [1, 2, 9, 9, 9, 9, 9, 9, 3, 4];
        let (pos, delta) = rope_index(&ids, 9, &[[1, 4, 6]], 2).unwrap();
        assert_eq!(pos[0], [0, 1, 2, 2, 2, 2, 2, 2, 5, 6]);
        assert_eq!(pos[1], [0, 1, 2, 2, 2, 3, 3, 3, 5, 6]);
        assert_eq!(pos[2], [0, 1, 2, 3, 4, 2, 3, 4, 5, 6]);
        assert_eq!(delta, 7 - 10);
        assert!(rope_index(&ids[..5], 9, &[[1, 4, 6]], 2).is_err());
        assert!(rope_index(&ids, 9, &[], 2).is_err());
    }
}
