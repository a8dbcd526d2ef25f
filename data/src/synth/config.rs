//! What `repic synth` makes: the task mix, the configuration and its checks, and the manifest of a run.

use indexmap::IndexMap;
use rand::Rng;
use repic_rewards::Method;
use serde::Serialize;
use serde_json::Value;

use super::concept::{COLOURS, MAX_CONCEPTS};

/// Share of each training task; normalised before use.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TaskMix {
    /// OCT (yes/no) share.
    pub oct: f64,
    /// VLT (box) share.
    pub vlt: f64,
    /// Single ICT share.
    pub ict: f64,
    /// Multi ICT share.
    pub ict_multi: f64,
}

impl Default for TaskMix {
    /// RePIC's mix: identity tasks ~31% of which multi-identity 4.7% of all; OCT and VLT split the rest.
    fn default() -> Self {
        TaskMix { oct: 0.345, vlt: 0.345, ict: 0.263, ict_multi: 0.047 }
    }
}

impl TaskMix {
    /// Parse `oct=0.4,vlt=0.3,ict=0.2,ict_multi=0.1` (omitted tasks get 0).
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut m = TaskMix { oct: 0.0, vlt: 0.0, ict: 0.0, ict_multi: 0.0 };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| format!("`{part}`: expected task=share"))?;
            let v: f64 = v.trim().parse().map_err(|_| format!("`{part}`: share is not a number"))?;
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("`{part}`: share must be >= 0"));
            }
            match k.trim() {
                "oct" => m.oct = v,
                "vlt" => m.vlt = v,
                "ict" => m.ict = v,
                "ict_multi" => m.ict_multi = v,
                other => return Err(format!("unknown task `{other}` (known: oct, vlt, ict, ict_multi)")),
            }
        }
        if m.oct + m.vlt + m.ict + m.ict_multi <= 0.0 {
            return Err("the shares sum to zero".into());
        }
        Ok(m)
    }

    pub(super) fn draw(&self, rng: &mut impl Rng) -> Method {
        let total = self.oct + self.vlt + self.ict + self.ict_multi;
        let mut u = rng.random_range(0.0..total);
        for (share, m) in [(self.oct, Method::YesNo), (self.vlt, Method::Iou), (self.ict, Method::YesNoName)] {
            if u < share {
                return m;
            }
            u -= share;
        }
        Method::YesNoNameMulti
    }
}

/// Everything that shapes a synthetic data set; equal configs give byte-identical output.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SynthConfig {
    /// Master seed.
    pub seed: u64,
    /// Number of concepts.
    pub concepts: usize,
    /// Reference images per concept.
    pub refs_per_concept: usize,
    /// Training records.
    pub train_records: usize,
    /// Held-out records per task.
    pub eval_records: usize,
    /// Held-out captioning queries per split (1, 2 and 4 concepts).
    pub eval_queries: usize,
    /// Side of query scenes in pixels (a multiple of 28 keeps boxes exact for Qwen's processor).
    pub scene_size: u32,
    /// Side of reference images in pixels.
    pub ref_size: u32,
    /// Most distractor objects per scene.
    pub max_distractors: usize,
    /// Task shares of the training records.
    pub mix: TaskMix,
    /// No two concepts share a body colour, and distractors take colours no concept has: recognition by colour
    /// alone (an easier set for models trained from scratch; at most 10 concepts).
    pub distinct_colours: bool,
    /// Flat grey backgrounds at one brightness instead of random gradients with noise (another easier set).
    pub plain_background: bool,
    /// OCT scenes show one object and no distractors: the concept when the answer is yes, another concept when
    /// it is no; the worked answer says what the image shows before comparing (recognition without search).
    pub oct_single_object: bool,
    /// Extra training records (`train/look_records.jsonl`, and `eval_records` held out in
    /// `eval/look_records.jsonl`) that ask whether the one object of a scene has a named colour: a perception
    /// warm-up for models trained from scratch. Scored like OCT (yes/no).
    pub look_records: usize,
    /// Look records also show a reference image of a random concept first and ask about the object in the
    /// second image (OCT's layout); a no asks for the reference's colour when it differs from the shown one, so
    /// describing the first image instead of the second gives the wrong answer.
    pub look_reference: bool,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            seed: 0,
            concepts: 12,
            refs_per_concept: 2,
            train_records: 240,
            eval_records: 20,
            eval_queries: 20,
            scene_size: 224,
            ref_size: 112,
            max_distractors: 2,
            mix: TaskMix::default(),
            distinct_colours: false,
            plain_background: false,
            oct_single_object: false,
            look_records: 0,
            look_reference: false,
        }
    }
}

/// What a run wrote, also saved as `manifest.json`.
#[derive(Clone, Debug, Serialize)]
pub struct Manifest {
    /// Generator name and version: 2 since held-out records, look records and queries draw from their own
    /// random streams (a seed gives other images than version 1 did).
    pub generator: String,
    /// The configuration used.
    pub config: SynthConfig,
    /// The concepts with their attributes.
    pub concepts: Vec<Value>,
    /// Counts per kind of output.
    pub counts: IndexMap<String, usize>,
    /// Every file written, relative to the output folder, sorted.
    pub files: Vec<String>,
}

/// Number of images [`generate`] renders for `cfg` (for progress bars).
pub fn total_images(cfg: &SynthConfig) -> usize {
    let looks = if cfg.look_records > 0 { cfg.look_records + cfg.eval_records } else { 0 };
    cfg.concepts * cfg.refs_per_concept + cfg.train_records + 4 * cfg.eval_records + 3 * cfg.eval_queries + looks
}

pub(super) fn check(cfg: &SynthConfig) -> Result<(), String> {
    let limit = MAX_CONCEPTS / 2;
    if cfg.concepts < 4 || cfg.concepts > limit {
        return Err(format!("concepts must be between 4 and {limit} (4-concept queries need at least 4)"));
    }
    if cfg.distinct_colours && cfg.concepts > COLOURS.len() {
        return Err(format!("distinct_colours allows at most {} concepts (one per colour)", COLOURS.len()));
    }
    if cfg.oct_single_object && !cfg.distinct_colours {
        return Err("oct_single_object needs distinct_colours (its worked answers compare body colours)".into());
    }
    if cfg.refs_per_concept == 0 {
        return Err("refs_per_concept must be at least 1".into());
    }
    if cfg.scene_size < 112 || cfg.ref_size < 56 {
        return Err("scene_size must be >= 112 and ref_size >= 56 pixels".into());
    }
    Ok(())
}
