//! Reward options and the TOML `[rewards]` section (weights, named ablation sets).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::format::FormatOptions;

/// Options of the OCT (`yes_no`) reward.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OctOptions {
    /// Match `\b(yes|no)\b` instead of the reference's bare `(yes|no)` ("know" then no longer reads as "no").
    pub word_boundary: bool,
}

/// Coordinate convention of predicted boxes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VltCoords {
    /// Absolute pixels of the model's input image (Qwen2.5-VL).
    #[default]
    Absolute,
    /// 0..1000 normalised coordinates (Qwen2-VL / Qwen3-VL), scaled by the image size before IoU.
    Norm1000,
}

/// Where the predicted box must stand in the completion.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VltAnchor {
    /// The first `[a, b, c, d]` anywhere (reference).
    #[default]
    None,
    /// The first box that follows a `"bbox_2d":` key.
    #[serde(rename = "bbox_2d")]
    Bbox2d,
}

/// Options of the VLT (`iou`) reward.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VltOptions {
    /// Reward 1 when IoU >= threshold.
    pub threshold: f64,
    /// Coordinate convention of the model's boxes.
    pub coords: VltCoords,
    /// Where the box must appear.
    pub anchor: VltAnchor,
    /// Reward the IoU itself instead of the thresholded 0/1.
    pub continuous: bool,
}

impl Default for VltOptions {
    fn default() -> Self {
        VltOptions { threshold: 0.5, coords: VltCoords::Absolute, anchor: VltAnchor::None, continuous: false }
    }
}

/// Unit of the ICT length gate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LengthUnit {
    /// Unicode scalar values of the decoded completion (reference code).
    #[default]
    Chars,
    /// Completion tokens (the paper's wording).
    Tokens,
}

/// Options of the single and multi ICT rewards.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IctOptions {
    /// Completions shorter than this get 0 (0 disables the gate).
    pub min_len: usize,
    /// Unit of `min_len`.
    pub length_unit: LengthUnit,
    /// Apply the closing-tag rule (`</name>` present -> that name scores 0) to multi ICT as well.
    pub closing_tag_rule_multi: bool,
}

impl Default for IctOptions {
    fn default() -> Self {
        IctOptions { min_len: 100, length_unit: LengthUnit::Chars, closing_tag_rule_multi: false }
    }
}

/// How a task removed by an ablation set is removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AblationMode {
    /// Records of the removed task are dropped from training (the RePIC ablation).
    #[default]
    Drop,
    /// Records stay; the removed task's reward weight is zero.
    Zero,
}

/// The `[rewards]` section of a training config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RewardConfig {
    /// Named set: `full`, `no_oct`, `no_vlt`, `no_ict`, `only_ict`, `no_length_gate`, `preferthinker`.
    pub set: String,
    /// How removed tasks are removed.
    pub ablation: AblationMode,
    /// Extra functions on top of the set (e.g. `["format"]`).
    pub extra: Vec<String>,
    /// Weight per function name (default 1.0).
    pub weights: BTreeMap<String, f32>,
    /// OCT options.
    pub oct: OctOptions,
    /// VLT options.
    pub vlt: VltOptions,
    /// ICT options.
    pub ict: IctOptions,
    /// Generic format reward options (used when `format` is in the set).
    pub format: Option<FormatOptions>,
}

impl Default for RewardConfig {
    fn default() -> Self {
        RewardConfig {
            set: "full".into(),
            ablation: AblationMode::Drop,
            extra: Vec::new(),
            weights: BTreeMap::new(),
            oct: OctOptions::default(),
            vlt: VltOptions::default(),
            ict: IctOptions::default(),
            format: None,
        }
    }
}
