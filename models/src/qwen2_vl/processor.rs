//! The Qwen2-VL image processor: `smart_resize`, bicubic resize, rescale and normalise, and patch
//! flattening in merge-window order, as transformers' `Qwen2VLImageProcessor` (slow, PIL-based) does.

use std::path::{Path, PathBuf};

use image::RgbImage;
use serde::Deserialize;
use serde_json::Value;

use crate::ModelError;
use crate::resize::{ResizeKind, resize_bicubic_as};

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
    /// Largest image, in pixels, that is decoded at all (repic's guard, not a transformers field): the header's
    /// size is checked before the pixels are read, so a huge file is refused instead of exhausting memory.
    #[serde(default = "max_decode")]
    pub max_decode_pixels: usize,
    /// Whose bicubic resize to reproduce (repic's key `resize_backend`): `pil`, transformers' slow processor
    /// (the default), or `torchvision`, the fast one (transformers 5's default, and what an
    /// `image_processor_type` ending in `Fast` names).
    #[serde(default, rename = "resize_backend")]
    pub resize: ResizeKind,
}

fn max_decode() -> usize {
    // 64 megapixels: an 8000 x 8000 photo decodes (192 MB of RGB), a 10000 x 10000 one is refused.
    64 << 20
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

/// A pixel count from a JSON value (a whole number >= 1).
fn pixels(v: &Value, key: &str) -> Result<usize, String> {
    v.as_u64()
        .filter(|&x| x >= 1)
        .map(|x| x as usize)
        .ok_or_else(|| format!("`{key}` must be a whole number >= 1, got {v}"))
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
    /// Read the image processor's settings from a checkpoint folder: `preprocessor_config.json`, else the
    /// `image_processor` section of transformers 5's `processor_config.json`, else defaults. The pixel bounds
    /// follow transformers: defaults, then `size.{shortest_edge,longest_edge}` (transformers >= 4.5x), then
    /// `min_pixels` / `max_pixels` (they win when both forms are present); finally a `max_pixels` /
    /// `min_pixels` at the top of `processor_config.json` (the processor's own override) wins over both.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let read = |name: &str| -> Result<Option<(PathBuf, Value)>, ModelError> {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(src) => {
                    let v = serde_json::from_str(&src)
                        .map_err(|e| ModelError::Config { path: path.clone(), msg: e.to_string() })?;
                    Ok(Some((path, v)))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(ModelError::io(path, e)),
            }
        };
        let pre = read("preprocessor_config.json")?;
        let proc = read("processor_config.json")?;
        let section = match (&pre, &proc) {
            (Some((path, v)), _) => Some((path.clone(), v.clone())),
            (None, Some((path, v))) => v.get("image_processor").map(|s| (path.clone(), s.clone())),
            (None, None) => None,
        };
        let (mut cfg, path) = match section {
            Some((path, v)) => {
                (Self::from_value(&v).map_err(|msg| ModelError::Config { path: path.clone(), msg })?, path)
            }
            None => (Self::default(), dir.join("preprocessor_config.json")),
        };
        if let Some((ppath, v)) = &proc {
            let over = |k: &str| v.get(k).filter(|x| !x.is_null());
            for (key, slot) in [("min_pixels", &mut cfg.min_pixels), ("max_pixels", &mut cfg.max_pixels)] {
                if let Some(x) = over(key) {
                    *slot = pixels(x, key).map_err(|msg| ModelError::Config { path: ppath.clone(), msg })?;
                }
            }
        }
        cfg.validate().map_err(|msg| ModelError::Config { path, msg })?;
        Ok(cfg)
    }

    /// Settings from one `preprocessor_config.json` value (`size` applied, then `min_pixels` / `max_pixels`).
    pub fn from_value(v: &Value) -> Result<Self, String> {
        let mut cfg: ProcessorConfig = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
        let explicit = |k: &str| v.get(k).filter(|x| !x.is_null()).is_some();
        let kind = v.get("image_processor_type").and_then(Value::as_str).unwrap_or_default();
        if !explicit("resize_backend") && kind.ends_with("Fast") {
            cfg.resize = ResizeKind::Torchvision;
        }
        if let Some(size) = v.get("size").filter(|x| !x.is_null()) {
            let edge = |k: &str| size.get(k).filter(|x| !x.is_null());
            match (edge("shortest_edge"), edge("longest_edge")) {
                (Some(lo), Some(hi)) => {
                    if !explicit("min_pixels") {
                        cfg.min_pixels = pixels(lo, "size.shortest_edge")?;
                    }
                    if !explicit("max_pixels") {
                        cfg.max_pixels = pixels(hi, "size.longest_edge")?;
                    }
                }
                // transformers refuses a `size` without both keys (e.g. `height` / `width`).
                _ => return Err("`size` must have `shortest_edge` and `longest_edge` (pixel counts)".into()),
            }
        }
        Ok(cfg)
    }

    /// Check ranges; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("patch_size", self.patch_size),
            ("merge_size", self.merge_size),
            ("temporal_patch_size", self.temporal_patch_size),
        ] {
            if v == 0 {
                return Err(format!("`{name}` must be at least 1"));
            }
        }
        if self.min_pixels == 0 || self.min_pixels > self.max_pixels {
            return Err(format!(
                "`min_pixels` ({}) must be at least 1 and at most `max_pixels` ({})",
                self.min_pixels, self.max_pixels
            ));
        }
        if self.image_std.iter().any(|s| !s.is_finite() || *s == 0.0) || self.image_mean.iter().any(|m| !m.is_finite())
        {
            return Err("`image_mean` must be finite and `image_std` finite and non-zero".into());
        }
        Ok(())
    }

    /// Process one RGB image.
    pub fn process(&self, img: &RgbImage) -> Result<ProcessedImage, String> {
        let factor = self.patch_size * self.merge_size;
        let (h, w) =
            smart_resize(img.height() as usize, img.width() as usize, factor, self.min_pixels, self.max_pixels)?;
        let resized = resize_bicubic_as(self.resize, img, w as u32, h as u32);
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

    /// Open an image file (any format the `image` crate reads), convert to RGB and process it. Images larger
    /// than `max_decode_pixels` are refused from their header, before decoding.
    pub fn process_file(&self, path: &Path) -> Result<ProcessedImage, ModelError> {
        let bad = |msg: String| ModelError::Image { path: path.into(), msg };
        // One reader: its decoder knows the size from the header before any pixel is read.
        let reader =
            image::ImageReader::open(path).and_then(|r| r.with_guessed_format()).map_err(|e| bad(e.to_string()))?;
        let decoder = reader.into_decoder().map_err(|e| bad(format!("not a readable image ({e})")))?;
        let (w, h) = image::ImageDecoder::dimensions(&decoder);
        if (w as usize) * (h as usize) > self.max_decode_pixels {
            return Err(bad(format!(
                "{w} x {h} pixels is more than the {} this processor decodes (max_decode_pixels)",
                self.max_decode_pixels
            )));
        }
        let img = image::DynamicImage::from_decoder(decoder).map_err(|e| bad(e.to_string()))?;
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
        // transformers >= 4.5x's `size` bounds: a 160 x 120 image becomes a 1 x 6 x 8 grid (12 image tokens).
        assert_eq!(smart_resize(120, 160, 28, 3136, 12544).unwrap(), (84, 112));
    }

    fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn pixel_bounds_come_from_every_layout_with_transformers_precedence() {
        let load = |files: &[(&str, &str)]| ProcessorConfig::load(folder(files).path());
        let size = r#"{"size": {"shortest_edge": 3136, "longest_edge": 12544}, "patch_size": 14}"#;
        let c = load(&[("preprocessor_config.json", size)]).unwrap();
        assert_eq!((c.min_pixels, c.max_pixels), (3136, 12544));
        let img = RgbImage::new(160, 120);
        assert_eq!(c.process(&img).unwrap().grid, [1, 6, 8]);
        // min_pixels / max_pixels win over `size` (transformers' backward-compatibility override).
        let both = r#"{"size": {"shortest_edge": 3136, "longest_edge": 12544}, "max_pixels": 50176}"#;
        let c = load(&[("preprocessor_config.json", both)]).unwrap();
        assert_eq!((c.min_pixels, c.max_pixels), (3136, 50176));
        // transformers 5: the image processor inside processor_config.json; a top-level max_pixels overrides.
        let v5 = r#"{"image_processor": {"size": {"shortest_edge": 3136, "longest_edge": 12544}}, "max_pixels": 6272}"#;
        let c = load(&[("processor_config.json", v5)]).unwrap();
        assert_eq!((c.min_pixels, c.max_pixels), (3136, 6272));
        let c = load(&[("preprocessor_config.json", size), ("processor_config.json", r#"{"max_pixels": 25088}"#)]);
        assert_eq!(c.unwrap().max_pixels, 25088);
        assert_eq!(load(&[]).unwrap().max_pixels, 28 * 28 * 1280, "defaults without any file");
        // Whose resize: Pillow by default, torchvision for a fast processor or when repic's key says so.
        assert_eq!(load(&[]).unwrap().resize, ResizeKind::Pil);
        let fast = r#"{"image_processor_type": "Qwen2VLImageProcessorFast"}"#;
        assert_eq!(load(&[("preprocessor_config.json", fast)]).unwrap().resize, ResizeKind::Torchvision);
        let pinned = r#"{"image_processor_type": "Qwen2VLImageProcessorFast", "resize_backend": "pil"}"#;
        assert_eq!(load(&[("preprocessor_config.json", pinned)]).unwrap().resize, ResizeKind::Pil);
        let tv = r#"{"resize_backend": "torchvision"}"#;
        assert_eq!(load(&[("preprocessor_config.json", tv)]).unwrap().resize, ResizeKind::Torchvision);
        let bad = load(&[("preprocessor_config.json", r#"{"resize_backend": "opencv"}"#)]).unwrap_err().to_string();
        assert!(bad.contains("opencv") && bad.contains("pil"), "{bad}");
    }

    #[test]
    fn bad_processor_configs_name_the_field() {
        let err = |text: &str| {
            let dir = folder(&[("preprocessor_config.json", text)]);
            ProcessorConfig::load(dir.path()).unwrap_err().to_string()
        };
        assert!(err(r#"{"patch_size": 0}"#).contains("`patch_size` must be at least 1"));
        assert!(err(r#"{"merge_size": 0}"#).contains("merge_size"));
        assert!(err(r#"{"min_pixels": 9000, "max_pixels": 100}"#).contains("at most `max_pixels`"));
        assert!(err(r#"{"size": {"height": 224, "width": 224}}"#).contains("shortest_edge"));
        assert!(err(r#"{"size": {"shortest_edge": -5, "longest_edge": 100}}"#).contains("size.shortest_edge"));
        assert!(err(r#"{"image_std": [0.0, 1.0, 1.0]}"#).contains("image_std"));
        assert!(err("not json").contains("preprocessor_config.json"));
    }

    #[test]
    fn huge_images_are_refused_from_their_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wide.png");
        RgbImage::new(300, 200).save(&path).unwrap();
        let small = ProcessorConfig { max_decode_pixels: 300 * 200 - 1, ..ProcessorConfig::default() };
        let e = small.process_file(&path).unwrap_err().to_string();
        assert!(e.contains("300 x 200 pixels is more than the 59999"), "{e}");
        assert_eq!(ProcessorConfig::default().process_file(&path).unwrap().grid[0], 1);
        std::fs::write(dir.path().join("text.png"), "hello").unwrap();
        let e = ProcessorConfig::default().process_file(&dir.path().join("text.png")).unwrap_err().to_string();
        assert!(e.contains("text.png") && e.contains("not a readable image"), "{e}");
    }
}
