//! 8-bit bicubic resizing with antialiasing, reproduced bit for bit for RGB images in two flavours:
//! Pillow's `Image.resize(..., BICUBIC)` (what transformers' slow, PIL-based image processors do) and PyTorch's
//! uint8 antialiased bicubic (`torchvision.transforms.v2.functional.resize(..., antialias=True)` on a uint8
//! tensor: what transformers' fast, torchvision-based processors do, the default of transformers 5). Both are
//! separable (width first, then height, a pass skipped when that side is unchanged) with Keys' cubic (a = -0.5)
//! stretched by the downscale factor, weights normalised in f64, fixed-point sums and rounding to u8 after each
//! pass. They differ in the fixed point: Pillow uses 22-bit coefficients; PyTorch uses int16 coefficients at the
//! largest precision that holds the axis's largest weight, and writes the cubic in another operation order.

use image::RgbImage;
use serde::{Deserialize, Serialize};

/// Whose resize to reproduce.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResizeKind {
    /// Pillow (transformers' slow image processors).
    #[default]
    Pil,
    /// PyTorch / torchvision uint8 antialiased bicubic (transformers' fast image processors).
    Torchvision,
}

/// Pillow's coefficient precision in bits.
const PIL_PRECISION: u32 = 32 - 8 - 2;

fn cubic(kind: ResizeKind, x: f64) -> f64 {
    let a = -0.5;
    let x = x.abs();
    match kind {
        // Pillow's `bicubic_filter`.
        ResizeKind::Pil if x < 1.0 => ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0,
        ResizeKind::Pil if x < 2.0 => (((x - 5.0) * x + 8.0) * x - 4.0) * a,
        // PyTorch's `cubic_convolution1` / `cubic_convolution2`.
        ResizeKind::Torchvision if x < 1.0 => ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0,
        ResizeKind::Torchvision if x < 2.0 => ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a,
        _ => 0.0,
    }
}

/// One axis: for each output index the first input index and the fixed-point weights, and their precision.
struct Axis {
    taps: Vec<(usize, Vec<i32>)>,
    precision: u32,
}

fn axis(kind: ResizeKind, in_size: usize, out_size: usize) -> Axis {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 2.0 * filterscale;
    let most = support.ceil() as usize * 2 + 1;
    let mut wt_max = 0.0f64;
    let weights: Vec<(usize, Vec<f64>)> = (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let ss = 1.0 / filterscale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let mut xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            if kind == ResizeKind::Torchvision {
                xmax = xmax.min(xmin + most);
            }
            let mut w: Vec<f64> = (xmin..xmax.max(xmin)).map(|x| cubic(kind, (x as f64 - center + 0.5) * ss)).collect();
            let total: f64 = w.iter().sum();
            if total != 0.0 {
                w.iter_mut().for_each(|v| *v /= total);
                wt_max = w.iter().fold(wt_max, |m, &v| m.max(v));
            }
            (xmin, w)
        })
        .collect();
    let precision = match kind {
        ResizeKind::Pil => PIL_PRECISION,
        // The largest precision below 22 at which the largest weight still fits an int16 one bit further up.
        ResizeKind::Torchvision => {
            (0..22).find(|&p| (0.5 + wt_max * f64::from(1u32 << (p + 1))) as i64 >= 1 << 15).unwrap_or(22)
        }
    };
    let unit = f64::from(1u32 << precision);
    let taps = weights
        .into_iter()
        .map(|(xmin, w)| {
            let k = w
                .iter()
                .map(|&v| {
                    let f = v * unit;
                    if f < 0.0 { (f - 0.5) as i32 } else { (f + 0.5) as i32 }
                })
                .collect();
            (xmin, k)
        })
        .collect();
    Axis { taps, precision }
}

/// One pass along rows (horizontal) or columns (vertical) of a packed RGB buffer.
fn pass(kind: ResizeKind, src: &[u8], w: usize, h: usize, out_len: usize, horizontal: bool) -> Vec<u8> {
    let (in_len, lines) = if horizontal { (w, h) } else { (h, w) };
    let Axis { taps, precision } = axis(kind, in_len, out_len);
    let (ow, oh) = if horizontal { (out_len, h) } else { (w, out_len) };
    let mut out = vec![0u8; ow * oh * 3];
    for line in 0..lines {
        for (o, (start, k)) in taps.iter().enumerate() {
            for c in 0..3 {
                let mut acc: i64 = 1 << (precision.max(1) - 1);
                for (j, &kj) in k.iter().enumerate() {
                    let i = start + j;
                    let (x, y) = if horizontal { (i, line) } else { (line, i) };
                    acc += i64::from(src[(y * w + x) * 3 + c]) * i64::from(kj);
                }
                let (x, y) = if horizontal { (o, line) } else { (line, o) };
                out[(y * ow + x) * 3 + c] = (acc >> precision).clamp(0, 255) as u8;
            }
        }
    }
    out
}

/// Resize with `kind`'s bicubic (antialiased) to `width` x `height`.
pub fn resize_bicubic_as(kind: ResizeKind, img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (ow, oh) = (width as usize, height as usize);
    let mut buf = img.as_raw().clone();
    let mut cur_w = w;
    if ow != w {
        buf = pass(kind, &buf, w, h, ow, true);
        cur_w = ow;
    }
    if oh != h {
        buf = pass(kind, &buf, cur_w, h, oh, false);
    }
    RgbImage::from_raw(width, height, buf).expect("buffer has width * height * 3 bytes")
}

/// Resize like `PIL.Image.resize((width, height), Image.BICUBIC)`.
pub fn resize_bicubic(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    resize_bicubic_as(ResizeKind::Pil, img, width, height)
}
