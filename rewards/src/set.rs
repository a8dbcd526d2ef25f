//! Reward functions as objects, the built-in registry and weighted reward sets with ablations.

use regex::Regex;

use crate::format::full_match_regex;
use crate::{
    AblationMode, GroundTruth, IctOptions, Method, OctOptions, RewardConfig, RewardError, Sample, VltOptions,
    format_reward, ict_multi_reward, ict_reward, oct_reward, prefer_accuracy_reward, prefer_format_reward, vlt_reward,
};

/// One reward function: it scores a completion for the samples it applies to and says "none" for the others.
pub trait Reward: Send + Sync {
    /// Name used in configs, weights and logs (`rewards/<name>/mean`).
    fn name(&self) -> &str;
    /// Whether this function scores samples of `method`.
    fn applies(&self, method: Method) -> bool;
    /// The score in [0, 1] of `completion` for a sample this function applies to.
    fn score(&self, completion: &str, sample: &Sample<'_>) -> Result<f32, RewardError>;
}

struct Oct(OctOptions);
struct Vlt(VltOptions);
struct Ict(IctOptions);
struct IctMulti(IctOptions);
struct PreferFormat;
struct PreferAccuracy;
struct Format {
    re: Regex,
    value: f32,
}

fn text<'a>(reward: &'static str, gt: &'a GroundTruth) -> Result<&'a str, RewardError> {
    match gt {
        GroundTruth::Text(s) => Ok(s),
        _ => Err(RewardError::SolutionType { reward, expected: "a string" }),
    }
}

fn need<T>(reward: &'static str, what: &'static str, v: Option<T>) -> Result<T, RewardError> {
    v.ok_or(RewardError::MissingContext { reward, what })
}

impl Reward for Oct {
    fn name(&self) -> &str {
        "oct"
    }
    fn applies(&self, method: Method) -> bool {
        method == Method::YesNo
    }
    fn score(&self, completion: &str, s: &Sample<'_>) -> Result<f32, RewardError> {
        Ok(oct_reward(completion, text("oct", s.solution)?, &self.0))
    }
}

impl Reward for Vlt {
    fn name(&self) -> &str {
        "vlt"
    }
    fn applies(&self, method: Method) -> bool {
        method == Method::Iou
    }
    fn score(&self, completion: &str, s: &Sample<'_>) -> Result<f32, RewardError> {
        let GroundTruth::Box(b) = s.solution else {
            return Err(RewardError::SolutionType { reward: "vlt", expected: "[x1, y1, x2, y2]" });
        };
        need("vlt", "the image size (norm1000 coordinates)", vlt_reward(completion, b, s.image_size, &self.0))
    }
}

impl Reward for Ict {
    fn name(&self) -> &str {
        "ict"
    }
    fn applies(&self, method: Method) -> bool {
        method == Method::YesNoName
    }
    fn score(&self, completion: &str, s: &Sample<'_>) -> Result<f32, RewardError> {
        let r = ict_reward(completion, text("ict", s.solution)?, s.completion_tokens, &self.0);
        need("ict", "the completion token count (length unit `tokens`)", r)
    }
}

impl Reward for IctMulti {
    fn name(&self) -> &str {
        "ict_multi"
    }
    fn applies(&self, method: Method) -> bool {
        method == Method::YesNoNameMulti
    }
    fn score(&self, completion: &str, s: &Sample<'_>) -> Result<f32, RewardError> {
        let one;
        let names: &[String] = match s.solution {
            GroundTruth::Names(n) => n,
            GroundTruth::Text(t) => {
                one = [t.clone()];
                &one
            }
            GroundTruth::Box(_) => {
                return Err(RewardError::SolutionType { reward: "ict_multi", expected: "a list of names" });
            }
        };
        let r = ict_multi_reward(completion, names, s.completion_tokens, &self.0);
        need("ict_multi", "the completion token count (length unit `tokens`)", r)
    }
}

impl Reward for PreferFormat {
    fn name(&self) -> &str {
        "prefer_format"
    }
    fn applies(&self, method: Method) -> bool {
        method == Method::Preference
    }
    fn score(&self, completion: &str, _: &Sample<'_>) -> Result<f32, RewardError> {
        Ok(prefer_format_reward(completion))
    }
}

impl Reward for PreferAccuracy {
    fn name(&self) -> &str {
        "prefer_accuracy"
    }
    fn applies(&self, method: Method) -> bool {
        method == Method::Preference
    }
    fn score(&self, completion: &str, s: &Sample<'_>) -> Result<f32, RewardError> {
        Ok(prefer_accuracy_reward(completion, text("prefer_accuracy", s.solution)?))
    }
}

impl Reward for Format {
    fn name(&self) -> &str {
        "format"
    }
    fn applies(&self, _: Method) -> bool {
        true
    }
    fn score(&self, completion: &str, _: &Sample<'_>) -> Result<f32, RewardError> {
        Ok(format_reward(completion, &self.re, self.value))
    }
}

/// Names of the built-in reward functions.
pub const BUILTIN: [&str; 7] = ["oct", "vlt", "ict", "ict_multi", "prefer_format", "prefer_accuracy", "format"];

/// The built-in reward called `name`, configured from `cfg` (the registry).
pub fn builtin_reward(name: &str, cfg: &RewardConfig) -> Result<Box<dyn Reward>, RewardError> {
    Ok(match name {
        "oct" => Box::new(Oct(cfg.oct.clone())),
        "vlt" => Box::new(Vlt(cfg.vlt.clone())),
        "ict" => Box::new(Ict(cfg.ict.clone())),
        "ict_multi" => Box::new(IctMulti(cfg.ict.clone())),
        "prefer_format" => Box::new(PreferFormat),
        "prefer_accuracy" => Box::new(PreferAccuracy),
        "format" => {
            let f = cfg.format.as_ref().ok_or_else(|| {
                RewardError::Config("the `format` reward needs a [rewards.format] section with `pattern`".into())
            })?;
            let re = full_match_regex(&f.pattern)
                .map_err(|e| RewardError::Config(format!("[rewards.format] pattern: {e}")))?;
            Box::new(Format { re, value: f.value })
        }
        other => {
            return Err(RewardError::Config(format!(
                "unknown reward function `{other}` (known: {})",
                BUILTIN.join(", ")
            )));
        }
    })
}

/// Functions of a named set, the methods it removes, and whether it turns the length gate off.
fn named_set(name: &str) -> Option<(&'static [&'static str], &'static [Method], bool)> {
    const RECIPE: &[&str] = &["oct", "vlt", "ict", "ict_multi"];
    const ICT: &[Method] = &[Method::YesNoName, Method::YesNoNameMulti];
    Some(match name {
        "full" => (RECIPE, &[], false),
        "no_oct" => (RECIPE, &[Method::YesNo], false),
        "no_vlt" => (RECIPE, &[Method::Iou], false),
        "no_ict" => (RECIPE, ICT, false),
        "only_ict" => (RECIPE, &[Method::YesNo, Method::Iou], false),
        "no_length_gate" => (RECIPE, &[], true),
        "preferthinker" => (&["prefer_format", "prefer_accuracy"], &[], false),
        _ => return None,
    })
}

/// Names of the predefined reward sets.
pub const NAMED_SETS: [&str; 7] = ["full", "no_oct", "no_vlt", "no_ict", "only_ict", "no_length_gate", "preferthinker"];

/// A weighted set of reward functions with the ablation that produced it.
pub struct RewardSet {
    entries: Vec<(Box<dyn Reward>, f32)>,
    removed: Vec<Method>,
    mode: AblationMode,
}

/// The scores of one sample: the weighted total and each function's score ("none" where it does not apply).
#[derive(Clone, Debug, PartialEq)]
pub struct SampleScore {
    /// Sum of weight * score over the functions that apply.
    pub total: f32,
    /// Per function, in [`RewardSet::names`] order.
    pub per_fn: Vec<Option<f32>>,
}

impl RewardSet {
    /// Build the set a `[rewards]` config describes.
    pub fn from_config(cfg: &RewardConfig) -> Result<Self, RewardError> {
        let (fns, removed, no_gate) = named_set(&cfg.set).ok_or_else(|| {
            RewardError::Config(format!("unknown reward set `{}` (known: {})", cfg.set, NAMED_SETS.join(", ")))
        })?;
        let mut cfg = cfg.clone();
        if no_gate {
            cfg.ict.min_len = 0;
        }
        let mut names: Vec<&str> = fns.to_vec();
        for extra in &cfg.extra {
            if !names.contains(&extra.as_str()) {
                names.push(extra);
            }
        }
        for (name, w) in &cfg.weights {
            if !names.contains(&name.as_str()) {
                return Err(RewardError::Config(format!("weight given for `{name}`, which is not in the set")));
            }
            if !w.is_finite() {
                return Err(RewardError::Config(format!("weight of `{name}` is not finite")));
            }
        }
        let mut entries = Vec::new();
        for name in names {
            let f = builtin_reward(name, &cfg)?;
            let removed_here = cfg.ablation == AblationMode::Zero && removed.iter().any(|m| f.applies(*m));
            let w = if removed_here { 0.0 } else { cfg.weights.get(name).copied().unwrap_or(1.0) };
            entries.push((f, w));
        }
        Ok(RewardSet { entries, removed: removed.to_vec(), mode: cfg.ablation })
    }

    /// A set from explicit functions and weights (no ablation).
    pub fn new(entries: Vec<(Box<dyn Reward>, f32)>) -> Self {
        RewardSet { entries, removed: Vec::new(), mode: AblationMode::Drop }
    }

    /// Function names, in scoring order.
    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|(f, _)| f.name()).collect()
    }

    /// Weights, in scoring order.
    pub fn weights(&self) -> Vec<f32> {
        self.entries.iter().map(|(_, w)| *w).collect()
    }

    /// Whether training keeps records of `method` (false for tasks removed by a "drop" ablation).
    pub fn keeps(&self, method: Method) -> bool {
        self.mode == AblationMode::Zero || !self.removed.contains(&method)
    }

    /// Score one completion: every applicable function, and their weighted sum.
    pub fn score(&self, completion: &str, sample: &Sample<'_>) -> Result<SampleScore, RewardError> {
        let mut total = 0.0;
        let mut per_fn = Vec::with_capacity(self.entries.len());
        for (f, w) in &self.entries {
            if f.applies(sample.method) {
                let r = f.score(completion, sample)?;
                total += w * r;
                per_fn.push(Some(r));
            } else {
                per_fn.push(None);
            }
        }
        if per_fn.iter().all(Option::is_none) {
            return Err(RewardError::NoRewardFor(sample.method));
        }
        Ok(SampleScore { total, per_fn })
    }
}
