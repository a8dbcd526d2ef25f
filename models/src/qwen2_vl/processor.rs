//! The Qwen2-VL image processor: `smart_resize`, bicubic resize, rescale and normalise, and patch
//! flattening in merge-window order, as transformers' `Qwen2VLImageProcessor` (slow, PIL-based) does.

use std::path::Path;

use image::RgbImage;
use serde::Deserialize;

use crate::ModelError;
use crate::resize::resize_bicubic;

/// `preprocessor_config.json` fields the processor uses.
#[derive(Clone, Debug, Deserialize)]
pub struct ProcessorConfig {
    /// Lower bound on resized pixel count.
    #[serde(default = "min_px")]
    pub min_pixels: usize,
    /// Upper bound on resized pixel count.
    #[serde(default = "max_px")]
    pub max_pixels: usize,
    /// Patch side.
    #[serde(default = "patch")]
    pub patch_size: usize,
    /// Frames per temporal patch.
    #[serde(default = "two")]
    pub temporal_patch_size: usize,
    /// Merge window side.
    #[serde(default = "two")]
    pub merge_size: usize,
    /// Per-channel mean.
    #[serde(default = "mean")]
    pub image_mean: [f32; 3],
    /// Per-channel std.
    #[serde(default = "std_")]
    pub image_std: [f32; 3],
}

fn min_px() -> usize {
    56 * 56
}
fn max_px() -> usize {
    28 * 28 * 1280
}
fn patch() -> usize {
    14
}
fn two() -> usize {
    2
}
// The OpenAI CLIP constants as transformers writes them (they round to the nearest f32).
#[allow(clippy::excessive_precision)]
fn mean() -> [f32; 3] {
    [0.481_454_66, 0.457_827_5, 0.408_210_73]
}
#[allow(clippy::excessive_precision)]
fn std_() -> [f32; 3] {
    [0.268_629_54, 0.261_302_58, 0.275_777_11]
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        serde_json::from_str("{}").expect("all fields have defaults")
    }
}

/// An image turned into model input: flattened patches and the (t, h, w) patch grid.
#[derive(Clone, Debug)]
pub struct ProcessedImage {
    /// `[t*h*w, C*T*P*P]`, row-major.
    pub patches: Vec<f32>,
    /// Patch grid.
    pub grid: [usize; 3],
    /// Width and height after resizing (the coordinate frame of Qwen2.5-VL boxes).
    pub resized: (u32, u32),
}

impl ProcessedImage {
    /// Number of `<|image_pad|>` tokens this image takes.
    pub fn tokens(&self, merge: usize) -> usize {
        self.grid.iter().product::<usize>() / (merge * merge)
    }
}

/// Python's `round` (half to even).
fn round_half_even(x: f64) -> f64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 { 2.0 * (x / 2.0).round() } else { r }
}

/// The size Qwen's processor resizes `height` x `width` to: multiples of `factor` with the pixel count in
/// `[min_pixels, max_pixels]`, aspect ratio kept as far as possible.
pub fn smart_resize(
    height: usize,
    width: usize,
    factor: usize,
    min_pixels: usize,
    max_pixels: usize,
) -> Result<(usize, usize), String> {
    let (h, w, f) = (height as f64, width as f64, factor as f64);
    if h.max(w) / h.min(w).max(1.0) > 200.0 {
        return Err(format!("aspect ratio of {width}x{height} exceeds 200"));
    }
    let mut hb = (f * round_half_even(h / f)).max(f);
    let mut wb = (f * round_half_even(w / f)).max(f);
    if hb * wb > max_pixels as f64 {
        let beta = (h * w / max_pixels as f64).sqrt();
        hb = f.max((h / beta / f).floor() * f);
        wb = f.max((w / beta / f).floor() * f);
    } else if hb * wb < min_pixels as f64 {
        let beta = (min_pixels as f64 / (h * w)).sqrt();
        hb = (h * beta / f).ceil() * f;
        wb = (w * beta / f).ceil() * f;
    }
    Ok((hb as usize, wb as usize))
}

impl ProcessorConfig {
    /// Read `preprocessor_config.json` from a checkpoint folder (defaults when absent).
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let path = dir.join("preprocessor_config.json");
        match std::fs::read_to_string(&path) {
            Ok(src) => serde_json::from_str(&src).map_err(|e| ModelError::Config { path, msg: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(ModelError::io(path, e)),
        }
    }

    /// Process one RGB image.
    pub fn process(&self, img: &RgbImage) -> Result<ProcessedImage, String> {
        let factor = self.patch_size * self.merge_size;
        let (h, w) =
            smart_resize(img.height() as usize, img.width() as usize, factor, self.min_pixels, self.max_pixels)?;
        let resized = resize_bicubic(img, w as u32, h as u32);
        let (p, tp, m) = (self.patch_size, self.temporal_patch_size, self.merge_size);
        let (gh, gw) = (h / p, w / p);
        let raw = resized.as_raw();
        // Rescale in f64 then cast to f32 (as numpy does), then normalise in f32.
        let px = |y: usize, x: usize, c: usize| {
            let v = (f64::from(raw[(y * w + x) * 3 + c]) * (1.0 / 255.0)) as f32;
            (v - self.image_mean[c]) / self.image_std[c]
        };
        let mut patches = Vec::with_capacity(gh * gw * 3 * tp * p * p);
        for bh in 0..gh / m {
            for bw in 0..gw / m {
                for ih in 0..m {
                    for iw in 0..m {
                        let (py, pxx) = ((bh * m + ih) * p, (bw * m + iw) * p);
                        for c in 0..3 {
                            for _frame in 0..tp {
                                for y in 0..p {
                                    for x in 0..p {
                                        patches.push(px(py + y, pxx + x, c));
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(ProcessedImage { patches, grid: [1, gh, gw], resized: (w as u32, h as u32) })
    }

    /// Open an image file (any format the `image` crate reads), convert to RGB and process it.
    pub fn process_file(&self, path: &Path) -> Result<ProcessedImage, ModelError> {
        let img = image::open(path).map_err(|e| ModelError::Image { path: path.into(), msg: e.to_string() })?;
        self.process(&img.to_rgb8()).map_err(|msg| ModelError::Image { path: path.into(), msg })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smart_resize_matches_upstream_cases() {
        // round() is half-to-even in Python: 70 / 28 = 2.5 -> 2.
        assert_eq!(smart_resize(70, 70, 28, 56 * 56, 28 * 28 * 1280).unwrap(), (56, 56));
        assert_eq!(smart_resize(90, 130, 28, 3136, 15680).unwrap(), (84, 140));
        assert_eq!(smart_resize(20, 20, 28, 3136, 15680).unwrap(), (56, 56));
        assert!(smart_resize(1, 300, 28, 3136, 15680).is_err());
    }
}
