//! Query crops for RAP retrieval: the whole image, or the boxes of a grounding answer (the VLT format the
//! personalized VLM is trained to give, in absolute pixels or Qwen2-VL's 0..1000 frame). RAP's detector role.

use image::RgbImage;
use repic_rewards::{VltCoords, from_norm1000, parse_boxes};
use serde::Serialize;

/// Where the query crops come from.
#[derive(Clone, Debug)]
pub enum CropSource {
    /// The whole image as one crop.
    Whole,
    /// Every box in a grounding answer, in `coords`; no box means no crop (RAP: nothing detected, no
    /// image references).
    Grounding {
        /// The answer text (e.g. `{"bbox_2d": [10, 20, 200, 220]}` or several boxes).
        answer: String,
        /// The frame of its numbers.
        coords: VltCoords,
        /// For absolute coordinates: the size (width, height) of the image they refer to, when the model saw
        /// the query resized (Qwen2.5-VL); `None`: the query image itself.
        seen_as: Option<(u32, u32)>,
    },
}

/// A crop in pixels of the query image, `[x1, y1, x2, y2)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct CropBox {
    /// Left.
    pub x1: u32,
    /// Top.
    pub y1: u32,
    /// Right (exclusive).
    pub x2: u32,
    /// Bottom (exclusive).
    pub y2: u32,
}

/// The crop boxes of `source` for an image of `size` (width, height): boxes are clamped to the image; boxes
/// with no area inside it are dropped.
pub fn crop_boxes(source: &CropSource, (w, h): (u32, u32)) -> Vec<CropBox> {
    match source {
        CropSource::Whole => vec![CropBox { x1: 0, y1: 0, x2: w, y2: h }],
        CropSource::Grounding { answer, coords, seen_as } => parse_boxes(answer)
            .into_iter()
            .filter_map(|b| {
                let b = match (coords, seen_as) {
                    (VltCoords::Absolute, None) => b,
                    (VltCoords::Absolute, Some((sw, sh))) => {
                        let (fx, fy) = (f64::from(w) / f64::from((*sw).max(1)), f64::from(h) / f64::from((*sh).max(1)));
                        [b[0] * fx, b[1] * fy, b[2] * fx, b[3] * fy]
                    }
                    (VltCoords::Norm1000, _) => from_norm1000(&b, (w, h)),
                };
                let clamp = |v: f64, max: u32| v.clamp(0.0, f64::from(max)) as u32;
                let c = CropBox { x1: clamp(b[0], w), y1: clamp(b[1], h), x2: clamp(b[2], w), y2: clamp(b[3], h) };
                (c.x2 > c.x1 && c.y2 > c.y1).then_some(c)
            })
            .collect(),
    }
}

/// Cut `boxes` out of `img`.
pub fn cut(img: &RgbImage, boxes: &[CropBox]) -> Vec<RgbImage> {
    boxes.iter().map(|b| image::imageops::crop_imm(img, b.x1, b.y1, b.x2 - b.x1, b.y2 - b.y1).to_image()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_from_a_grounding_answer_are_clamped_and_scaled() {
        let g = |answer: &str, coords| CropSource::Grounding { answer: answer.into(), coords, seen_as: None };
        assert_eq!(crop_boxes(&CropSource::Whole, (40, 30)), [CropBox { x1: 0, y1: 0, x2: 40, y2: 30 }]);
        let two = r#"[{"bbox_2d": [5, 6, 20, 25]}, {"bbox_2d": [30, 10, 400, 300]}]"#;
        assert_eq!(
            crop_boxes(&g(two, VltCoords::Absolute), (40, 30)),
            [CropBox { x1: 5, y1: 6, x2: 20, y2: 25 }, CropBox { x1: 30, y1: 10, x2: 40, y2: 30 }]
        );
        assert_eq!(
            crop_boxes(&g("[500, 0, 1000, 500]", VltCoords::Norm1000), (40, 30)),
            [CropBox { x1: 20, y1: 0, x2: 40, y2: 15 }]
        );
        // Empty or outside boxes, and answers without a box, give no crop.
        assert!(crop_boxes(&g("[10, 10, 10, 20] [50, 50, 60, 60]", VltCoords::Absolute), (40, 30)).is_empty());
        assert!(crop_boxes(&g("no box here", VltCoords::Absolute), (40, 30)).is_empty());
        // Qwen2.5-VL's boxes are in the resized image it saw (here 80 x 60 for a 40 x 30 query).
        let seen = CropSource::Grounding {
            answer: "[10, 20, 50, 60]".into(),
            coords: VltCoords::Absolute,
            seen_as: Some((80, 60)),
        };
        assert_eq!(crop_boxes(&seen, (40, 30)), [CropBox { x1: 5, y1: 10, x2: 25, y2: 30 }]);
        let img = RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8, y as u8, 0]));
        let crops = cut(&img, &crop_boxes(&g("[5, 6, 20, 25]", VltCoords::Absolute), (40, 30)));
        assert_eq!(crops[0].dimensions(), (15, 19));
        assert_eq!(crops[0].get_pixel(0, 0).0, [5, 6, 0]);
    }
}
