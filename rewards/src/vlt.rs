//! VLT (`iou`): visual localization, the first predicted box against the ground-truth box.

use std::sync::LazyLock;

use regex::Regex;

use crate::{VltAnchor, VltCoords, VltOptions};

const BOX: &str = r"\[([0-9]+)\s*,\s*([0-9]+)\s*,\s*([0-9]+)\s*,\s*([0-9]+)\]";
static BARE: LazyLock<Regex> = LazyLock::new(|| Regex::new(BOX).expect("static regex"));
static ANCHORED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r#""bbox_2d"\s*:\s*{BOX}"#)).expect("static regex"));

/// A box `[x1, y1, x2, y2]`; coordinates are whole numbers held as f64 so that huge values cannot overflow.
pub type BoxXyxy = [f64; 4];

/// The first box of non-negative integers in `text` (`anchor` = `bbox_2d` requires the `"bbox_2d":` key).
pub fn parse_box(text: &str, anchor: VltAnchor) -> Option<BoxXyxy> {
    let re = match anchor {
        VltAnchor::None => &*BARE,
        VltAnchor::Bbox2d => &*ANCHORED,
    };
    let caps = re.captures(text)?;
    let mut out = [0.0; 4];
    for (i, v) in out.iter_mut().enumerate() {
        // Digits only, so parsing cannot fail; very long numbers round to the nearest f64.
        *v = caps[i + 1].parse::<f64>().ok()?;
    }
    Some(out)
}

/// Every box of non-negative integers `[x1, y1, x2, y2]` in `text`, in order (a grounding answer may name
/// several objects).
pub fn parse_boxes(text: &str) -> Vec<BoxXyxy> {
    BARE.captures_iter(text)
        .filter_map(|c| {
            let mut out = [0.0; 4];
            for (i, v) in out.iter_mut().enumerate() {
                *v = c[i + 1].parse::<f64>().ok()?;
            }
            Some(out)
        })
        .collect()
}

/// IoU exactly as the RePIC reference computes it (inclusive intersection, exclusive areas, union >= 1).
pub fn iou(a: &BoxXyxy, b: &BoxXyxy) -> f64 {
    let ix1 = a[0].max(b[0]);
    let iy1 = a[1].max(b[1]);
    let ix2 = (a[2] - 1.0).min(b[2] - 1.0);
    let iy2 = (a[3] - 1.0).min(b[3] - 1.0);
    let inter = if ix1 < ix2 && iy1 < iy2 { (ix2 - ix1 + 1.0) * (iy2 - iy1 + 1.0) } else { 0.0 };
    let area = |r: &BoxXyxy| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = (area(a) + area(b) - inter).max(1.0);
    inter / union
}

/// Scale a 0..1000 box (Qwen2-VL's grounding frame) to pixels of a `width` x `height` image, rounding to whole pixels.
pub fn from_norm1000(b: &BoxXyxy, (width, height): (u32, u32)) -> BoxXyxy {
    let (w, h) = (f64::from(width), f64::from(height));
    [(b[0] * w / 1000.0).round(), (b[1] * h / 1000.0).round(), (b[2] * w / 1000.0).round(), (b[3] * h / 1000.0).round()]
}

/// The VLT reward: 1.0 when the first predicted box has IoU >= threshold with `solution` (or the IoU itself when
/// `continuous`). `image_size` is required for `norm1000` coordinates; `None` there returns `None`.
pub fn vlt_reward(
    completion: &str,
    solution: &[i64],
    image_size: Option<(u32, u32)>,
    opts: &VltOptions,
) -> Option<f32> {
    let Ok(gt) = <[i64; 4]>::try_from(solution) else { return Some(0.0) };
    let gt = gt.map(|v| v as f64);
    let Some(pred) = parse_box(completion, opts.anchor) else { return Some(0.0) };
    let pred = match opts.coords {
        VltCoords::Absolute => pred,
        VltCoords::Norm1000 => from_norm1000(&pred, image_size?),
    };
    let v = iou(&pred, &gt);
    Some(if opts.continuous {
        v.clamp(0.0, 1.0) as f32
    } else if v >= opts.threshold {
        1.0
    } else {
        0.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_figures() {
        let o = VltOptions::default();
        assert_eq!(vlt_reward("[10, 10, 110, 110]", &[10, 10, 110, 110], None, &o), Some(1.0));
        let shifted = iou(&[60.0, 10.0, 160.0, 110.0], &[10.0, 10.0, 110.0, 110.0]);
        assert!((shifted - 1.0 / 3.0).abs() < 1e-9, "{shifted}");
        assert_eq!(vlt_reward("[60, 10, 160, 110]", &[10, 10, 110, 110], None, &o), Some(0.0));
        assert_eq!(vlt_reward(r#"{"bbox_2d": [1.5, 2, 3, 4]}"#, &[1, 2, 3, 4], None, &o), Some(0.0));
    }

    #[test]
    fn iou_hand_computed() {
        // inter: x 20..=49 (30), y 0..=99 (100) -> 3000; areas 5000 + 3000; union 5000.
        let v = iou(&[0.0, 0.0, 50.0, 100.0], &[20.0, 0.0, 50.0, 100.0]);
        assert!((v - 0.6).abs() < 1e-12, "{v}");
        assert_eq!(iou(&[0.0, 0.0, 10.0, 10.0], &[20.0, 20.0, 30.0, 30.0]), 0.0);
        // Degenerate boxes: union floors at 1.
        assert_eq!(iou(&[5.0, 5.0, 5.0, 5.0], &[5.0, 5.0, 5.0, 5.0]), 0.0);
    }

    #[test]
    fn threshold_is_inclusive_and_continuous_returns_iou() {
        // IoU exactly 0.5: inter 50x100 = 5000, union 10000.
        let gt = [0, 0, 100, 100];
        let at_half = "[0, 0, 100, 50]";
        assert!((iou(&[0.0, 0.0, 100.0, 50.0], &[0.0, 0.0, 100.0, 100.0]) - 0.5).abs() < 1e-12);
        assert_eq!(vlt_reward(at_half, &gt, None, &VltOptions::default()), Some(1.0));
        let cont = VltOptions { continuous: true, ..VltOptions::default() };
        assert_eq!(vlt_reward(at_half, &gt, None, &cont), Some(0.5));
    }

    #[test]
    fn first_box_wins_and_anchor_option() {
        let o = VltOptions::default();
        let text = r#"a [0,0,5,5] then {"bbox_2d": [10,10,110,110]}"#;
        assert_eq!(vlt_reward(text, &[10, 10, 110, 110], None, &o), Some(0.0));
        let anchored = VltOptions { anchor: VltAnchor::Bbox2d, ..o };
        assert_eq!(vlt_reward(text, &[10, 10, 110, 110], None, &anchored), Some(1.0));
        assert_eq!(vlt_reward("[10,10,110,110]", &[10, 10, 110, 110], None, &anchored), Some(0.0));
    }

    #[test]
    fn norm1000_scales_with_image_size() {
        let o = VltOptions { coords: VltCoords::Norm1000, ..VltOptions::default() };
        // 200 x 100 image: [50, 100, 550, 900] -> [10, 10, 110, 90].
        assert_eq!(vlt_reward("[50, 100, 550, 900]", &[10, 10, 110, 90], Some((200, 100)), &o), Some(1.0));
        assert_eq!(vlt_reward("[50, 100, 550, 900]", &[10, 10, 110, 90], None, &o), None);
    }

    #[test]
    fn wrong_solution_length_and_negatives() {
        let o = VltOptions::default();
        assert_eq!(vlt_reward("[1, 2, 3, 4]", &[1, 2, 3], None, &o), Some(0.0));
        assert_eq!(vlt_reward("[-1, 2, 3, 4]", &[1, 2, 3, 4], None, &o), Some(0.0));
    }
}
