//! CLIP's image processor: resize the shortest side (bicubic), centre crop, CLIP normalisation.

use std::path::Path;

use image::RgbImage;
use serde::Deserialize;

use crate::ModelError;
use crate::resize::resize_bicubic;

/// `preprocessor_config.json` of a CLIP checkpoint.
#[derive(Clone, Debug, Deserialize)]
pub struct ClipProcessor {
    /// Resize target of the shortest side.
    pub size: ShortestEdge,
    /// Centre crop.
    pub crop_size: CropSize,
    /// Per-channel mean.
    pub image_mean: [f32; 3],
    /// Per-channel std.
    pub image_std: [f32; 3],
}

/// `{"shortest_edge": n}`.
#[derive(Clone, Debug, Deserialize)]
pub struct ShortestEdge {
    /// Side length.
    pub shortest_edge: u32,
}

/// `{"height": h, "width": w}`.
#[derive(Clone, Debug, Deserialize)]
pub struct CropSize {
    /// Height.
    pub height: u32,
    /// Width.
    pub width: u32,
}

impl ClipProcessor {
    /// Read `preprocessor_config.json`.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let path = dir.join("preprocessor_config.json");
        let src = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
        serde_json::from_str(&src).map_err(|e| ModelError::Config { path, msg: e.to_string() })
    }

    /// Resize (shortest side, bicubic), centre crop, rescale and normalise: CHW floats.
    pub fn process(&self, img: &RgbImage) -> Vec<f32> {
        let (w, h) = (img.width(), img.height());
        let s = self.size.shortest_edge;
        let (short, long) = if w <= h { (w, h) } else { (h, w) };
        let new_long = (f64::from(s) * f64::from(long) / f64::from(short)) as u32;
        let (nw, nh) = if w <= h { (s, new_long) } else { (new_long, s) };
        let r = if (nw, nh) == (w, h) { img.clone() } else { resize_bicubic(img, nw, nh) };
        let (cw, ch) = (self.crop_size.width, self.crop_size.height);
        let top = (i64::from(nh) - i64::from(ch)).div_euclid(2);
        let left = (i64::from(nw) - i64::from(cw)).div_euclid(2);
        let mut out = vec![0f32; (3 * cw * ch) as usize];
        for c in 0..3usize {
            for y in 0..ch {
                for x in 0..cw {
                    let (sy, sx) = (i64::from(y) + top, i64::from(x) + left);
                    // Pixels outside the resized image (crop larger than the image) are zero-padded, as upstream.
                    let v = if sy >= 0 && sx >= 0 && sy < i64::from(nh) && sx < i64::from(nw) {
                        r.get_pixel(sx as u32, sy as u32).0[c]
                    } else {
                        0
                    };
                    let f = (f64::from(v) * (1.0 / 255.0)) as f32;
                    out[(c * ch as usize + y as usize) * cw as usize + x as usize] =
                        (f - self.image_mean[c]) / self.image_std[c];
                }
            }
        }
        out
    }
}
