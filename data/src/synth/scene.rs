//! Scenes: concepts (and distractors) placed on a canvas, with the box of each requested concept.

use rand::Rng;

use super::concept::Look;
use super::render::{Canvas, place};

/// A rendered scene: the image and the box of each requested concept.
pub struct Scene {
    /// The image.
    pub image: image::RgbImage,
    /// Boxes `[x1, y1, x2, y2]` (end exclusive) of the concepts, in the order asked.
    pub boxes: Vec<[i64; 4]>,
    /// Boxes of the distractors, in the order given.
    pub distractor_boxes: Vec<[i64; 4]>,
    /// Label map: 0 background, k the k-th object (concepts first, then distractors).
    pub labels: Vec<u16>,
    /// Brightness factor applied to the whole image.
    pub brightness: f32,
}

/// Render a scene of `looks` (each gets a box) plus `distractors` other objects on a random background (a flat
/// grey one at brightness 1 if `plain`).
pub fn render_scene(looks: &[Look], distractors: &[Look], side: u32, plain: bool, rng: &mut impl Rng) -> Scene {
    let mut canvas = Canvas::background(side, side, plain, rng);
    let all: Vec<Look> = looks.iter().chain(distractors).copied().collect();
    let crowd = all.len() as f32;
    let max = (side as f32 * 0.22 / crowd.sqrt().max(1.0)).max(8.0);
    let placed = place(&all, side, side, (max * 0.6).max(7.0), max, rng);
    let mut boxes = Vec::with_capacity(all.len());
    for (i, p) in placed.iter().enumerate() {
        let b = canvas.paint(p, i as u16 + 1);
        // Objects lie inside the image and never overlap, so each covers pixels; the centre is a fallback.
        let (x, y) = (p.cx as i64, p.cy as i64);
        boxes.push(b.unwrap_or([x, y, x + 1, y + 1]));
    }
    let distractor_boxes = boxes.split_off(looks.len());
    let brightness = canvas.brightness(0.85..1.15, rng);
    let labels = canvas.labels.clone();
    Scene { image: canvas.into_image(brightness), boxes, distractor_boxes, labels, brightness }
}
