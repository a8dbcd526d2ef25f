//! The `accu_reward_method` vocabulary, ground truths and per-sample context.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Which reward a training record asks for (`accu_reward_method` in RePIC records).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// OCT, object consistency: `"yes"` / `"no"`.
    YesNo,
    /// VLT, visual localization: `[x1, y1, x2, y2]`.
    Iou,
    /// Single ICT, identity consistency: `"<name>"`.
    YesNoName,
    /// Multi ICT: `["<n1>", "<n2>", ...]`.
    YesNoNameMulti,
    /// PreferThinker preference assessment: `"Image A"` / `"Image B"` (our extension of the vocabulary).
    Preference,
}

impl Method {
    /// Every method, in a fixed order.
    pub const ALL: [Method; 5] =
        [Method::YesNo, Method::Iou, Method::YesNoName, Method::YesNoNameMulti, Method::Preference];

    /// The name used in record files.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::YesNo => "yes_no",
            Method::Iou => "iou",
            Method::YesNoName => "yes_no_name",
            Method::YesNoNameMulti => "yes_no_name_multi",
            Method::Preference => "preference",
        }
    }

    /// The method a record has when it names none (the reference code's default).
    pub const DEFAULT: Method = Method::Iou;
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Method {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Method::ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| {
            let known: Vec<&str> = Method::ALL.iter().map(|m| m.as_str()).collect();
            format!("unknown accu_reward_method `{s}` (known: {})", known.join(", "))
        })
    }
}

/// A record's ground truth (`solution`), in the shapes RePIC uses.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum GroundTruth {
    /// `"yes"`, `"no"`, `"<name>"`, `"Image A"`.
    Text(String),
    /// `["<n1>", "<n2>"]`.
    Names(Vec<String>),
    /// `[x1, y1, x2, y2]` in pixels of the model's input image.
    Box(Vec<i64>),
}

/// Everything a reward may look at besides the completion text.
#[derive(Clone, Copy, Debug)]
pub struct Sample<'a> {
    /// The record's method.
    pub method: Method,
    /// The record's ground truth.
    pub solution: &'a GroundTruth,
    /// Width and height of the query image as the model saw it (needed for `norm1000` boxes).
    pub image_size: Option<(u32, u32)>,
    /// Number of completion tokens (needed when the ICT length unit is `tokens`).
    pub completion_tokens: Option<usize>,
}

impl<'a> Sample<'a> {
    /// A sample with no extra context.
    pub fn new(method: Method, solution: &'a GroundTruth) -> Self {
        Sample { method, solution, image_size: None, completion_tokens: None }
    }
}
