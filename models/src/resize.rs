//! Pillow's resampling (`Image.resize` with BICUBIC), reproduced bit for bit for 8-bit RGB images:
//! separable passes with antialiasing support, 22-bit fixed-point coefficients and rounding to u8 after each
//! pass, as transformers' slow image processors do through PIL.

use image::RgbImage;

const PRECISION_BITS: u32 = 32 - 8 - 2;

fn bicubic(x: f64) -> f64 {
    let a = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * a
    } else {
        0.0
    }
}

/// For each output index: the first input index and the fixed-point weights.
fn coefficients(in_size: usize, out_size: usize) -> Vec<(usize, Vec<i32>)> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 2.0 * filterscale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let ss = 1.0 / filterscale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let w: Vec<f64> = (xmin..xmax).map(|x| bicubic((x as f64 - center + 0.5) * ss)).collect();
            let total: f64 = w.iter().sum();
            let k = w
                .iter()
                .map(|&v| {
                    let v = if total != 0.0 { v / total } else { v };
                    let f = v * f64::from(1u32 << PRECISION_BITS);
                    if f < 0.0 { (f - 0.5) as i32 } else { (f + 0.5) as i32 }
                })
                .collect();
            (xmin, k)
        })
        .collect()
}

fn clip8(v: i64) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// One pass along rows (horizontal) or columns (vertical) of a packed RGB buffer.
fn pass(src: &[u8], w: usize, h: usize, out_len: usize, horizontal: bool) -> Vec<u8> {
    let (in_len, lines) = if horizontal { (w, h) } else { (h, w) };
    let coeffs = coefficients(in_len, out_len);
    let (ow, oh) = if horizontal { (out_len, h) } else { (w, out_len) };
    let mut out = vec![0u8; ow * oh * 3];
    for line in 0..lines {
        for (o, (start, k)) in coeffs.iter().enumerate() {
            for c in 0..3 {
                let mut acc: i64 = 1 << (PRECISION_BITS - 1);
                for (j, &kj) in k.iter().enumerate() {
                    let i = start + j;
                    let (x, y) = if horizontal { (i, line) } else { (line, i) };
                    acc += i64::from(src[(y * w + x) * 3 + c]) * i64::from(kj);
                }
                let (x, y) = if horizontal { (o, line) } else { (line, o) };
                out[(y * ow + x) * 3 + c] = clip8(acc);
            }
        }
    }
    out
}

/// Resize like `PIL.Image.resize((width, height), Image.BICUBIC)`.
pub fn resize_bicubic(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (ow, oh) = (width as usize, height as usize);
    let mut buf = img.as_raw().clone();
    let mut cur_w = w;
    if ow != w {
        buf = pass(&buf, w, h, ow, true);
        cur_w = ow;
    }
    if oh != h {
        buf = pass(&buf, cur_w, h, oh, false);
    }
    RgbImage::from_raw(width, height, buf).expect("buffer has width * height * 3 bytes")
}
