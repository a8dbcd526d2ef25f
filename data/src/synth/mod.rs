//! `repic synth`: a deterministic synthetic personalization data set (concepts, scenes, RePIC records,
//! a concept database and held-out queries), small enough for CPU training.

mod concept;
mod render;
mod write;

use std::path::Path;

use indexmap::IndexMap;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use repic_rewards::{GroundTruth, Method};
use serde::Serialize;
use serde_json::{Map, Value, json};

pub use concept::{
    ACCESSORIES, COLOURS, Look, MAX_CONCEPTS, PATTERNS, SHAPES, SynthConcept, distractor_look, draw_concepts,
};
pub use render::{Canvas, Placed, place};

use crate::{CaptionResult, Concept, ConceptDb, DataError, Fingerprint, Images, Info, Record};
use write::Staging;

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

    fn draw(&self, rng: &mut impl Rng) -> Method {
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

const OCT_QUESTIONS: [&str; 3] =
    ["Is {} visible in this picture?", "Is {} in this image?", "Do you see {} in the photo?"];
const CAPTION_QUESTIONS: [&str; 3] =
    ["Give a caption of the image.", "Give a personalized caption of this image.", "Describe the image in detail."];
const VLT_QUESTIONS: [&str; 2] = [
    "Please provide the bounding box coordinate of the region this sentence describes: {}.",
    "Give {}'s bounding box in the image.",
];

fn pick<'a>(options: &[&'a str], rng: &mut impl Rng) -> &'a str {
    options.choose(rng).copied().unwrap_or_default()
}

/// A scene written to the data set.
struct Saved {
    /// Path relative to the output folder.
    path: String,
    /// Boxes of the requested concepts, in order.
    boxes: Vec<[i64; 4]>,
}

/// The generator's state while writing one data set.
struct Gen<'a> {
    cfg: &'a SynthConfig,
    rng: ChaCha8Rng,
    concepts: Vec<SynthConcept>,
    stage: Staging<'a>,
}

impl Gen<'_> {
    fn distractors(&mut self) -> Vec<Look> {
        let n = self.rng.random_range(0..=self.cfg.max_distractors);
        (0..n).map(|_| concept::distractor_look(&self.concepts, self.cfg.distinct_colours, &mut self.rng)).collect()
    }

    /// Render and save a scene with concepts `idx` (plus random distractors); returns its path and the concepts'
    /// boxes.
    fn scene(&mut self, rel: String, idx: &[usize]) -> Result<Saved, DataError> {
        let looks: Vec<Look> = idx.iter().map(|&i| self.concepts[i].look).collect();
        let distractors = self.distractors();
        self.render(rel, &looks, &distractors)
    }

    /// Render and save a scene of exactly `looks` and `distractors`.
    fn render(&mut self, rel: String, looks: &[Look], distractors: &[Look]) -> Result<Saved, DataError> {
        let s = render_scene(looks, distractors, self.cfg.scene_size, self.cfg.plain_background, &mut self.rng);
        self.stage.png(&rel, &s.image)?;
        Ok(Saved { path: rel, boxes: s.boxes })
    }

    /// A look warm-up record: one object (a concept's look or a distractor's) and "is it <colour>?", after a
    /// reference image of a random concept with `look_reference`.
    fn look_record(&mut self, rel: String) -> Result<Record, DataError> {
        let look = if self.rng.random_bool(0.5) {
            self.concepts[self.rng.random_range(0..self.concepts.len())].look
        } else {
            concept::distractor_look(&self.concepts, self.cfg.distinct_colours, &mut self.rng)
        };
        let reference = if self.cfg.look_reference {
            let i = self.rng.random_range(0..self.concepts.len());
            Some((self.reference(i), self.concepts[i].look.colour))
        } else {
            None
        };
        let positive = self.rng.random_bool(0.5);
        let colour = match reference {
            _ if positive => look.colour,
            Some((_, c)) if c != look.colour => c,
            _ => (look.colour + self.rng.random_range(1..COLOURS.len())) % COLOURS.len(),
        };
        let scene = self.render(rel, &[look], &[])?.path;
        let verdict = if positive { "yes" } else { "no" };
        let answer =
            format!("The image shows {}. {}", a_or_an(&look.description()), colour_verdict(look.colour, colour));
        let (images, which) = match reference {
            Some((r, _)) => (vec![r, scene], "the second image"),
            None => (vec![scene], "this image"),
        };
        let problem = format!("Is the object in {which} {}? Answer with yes or no.", COLOURS[colour].0);
        let mut extra = Map::new();
        extra.insert("answer".into(), Value::String(answer));
        Ok(Record { images, problem, solution: GroundTruth::Text(verdict.into()), method: Method::YesNo, extra })
    }

    fn reference(&mut self, i: usize) -> String {
        let k = self.rng.random_range(0..self.cfg.refs_per_concept);
        format!("concepts/{}_{k}.png", self.concepts[i].name)
    }

    fn others(&mut self, not: &[usize], n: usize) -> Vec<usize> {
        let pool: Vec<usize> = (0..self.concepts.len()).filter(|i| !not.contains(i)).collect();
        pool.choose_multiple(&mut self.rng, n).copied().collect()
    }

    /// One record of `method` whose query scene is saved as `rel`.
    fn record(&mut self, method: Method, rel: String) -> Result<Record, DataError> {
        let n = self.concepts.len();
        let target = self.rng.random_range(0..n);
        let key = self.concepts[target].key();
        let mut answer = None;
        let (images, problem, solution) = match method {
            Method::YesNo => {
                let positive = self.rng.random_bool(0.5);
                let scene = if self.cfg.oct_single_object {
                    let shown = if positive { target } else { self.others(&[target], 1)[0] };
                    let look = self.concepts[shown].look;
                    answer = Some(oct_rationale_seen(&self.concepts[target], &look));
                    self.render(rel, &[look], &[])?.path
                } else {
                    let extra = self.rng.random_range(0..=1.min(n - 1));
                    let mut present = self.others(&[target], extra + usize::from(!positive));
                    if positive {
                        present.insert(0, target);
                    }
                    answer = Some(oct_rationale(&self.concepts[target], positive));
                    self.scene(rel, &present)?.path
                };
                let q = pick(&OCT_QUESTIONS, &mut self.rng).replace("{}", &key);
                let problem = format!(
                    "As an evaluation expert, your task is to verify whether the object identified as {key} in the first image is also present in the second image. Answer with yes or no. {q}"
                );
                let ans = if positive { "yes" } else { "no" };
                (vec![self.reference(target), scene], problem, GroundTruth::Text(ans.into()))
            }
            Method::Iou => {
                let extra = self.rng.random_range(0..=2.min(n - 1));
                let mut present = vec![target];
                present.extend(self.others(&[target], extra));
                let Saved { path: scene, boxes } = self.scene(rel, &present)?;
                let expr = self.concepts[target].look.referring_expression();
                let problem = pick(&VLT_QUESTIONS, &mut self.rng).replace("{}", &expr);
                (vec![scene], problem, GroundTruth::Box(boxes[0].to_vec()))
            }
            Method::YesNoName => {
                let Saved { path: scene, boxes } = self.scene(rel, &[target])?;
                answer = Some(training_caption(&[&self.concepts[target]], &boxes, self.cfg.scene_size));
                let q = pick(&CAPTION_QUESTIONS, &mut self.rng);
                let problem = format!(
                    "You are a captioning expert. Your task is to generate an accurate caption for the second image while referencing the first image. Both images contain the same object. The object in the first image is named {key}. {q}"
                );
                (vec![self.reference(target), scene], problem, GroundTruth::Text(key))
            }
            _ => {
                let k = self.rng.random_range(2..=3.min(n).max(2));
                let mut present = vec![target];
                present.extend(self.others(&[target], k - 1));
                let mut images: Vec<String> = present.iter().map(|&i| self.reference(i)).collect();
                let Saved { path: scene, boxes } = self.scene(rel, &present)?;
                images.push(scene);
                let looks: Vec<&SynthConcept> = present.iter().map(|&i| &self.concepts[i]).collect();
                answer = Some(training_caption(&looks, &boxes, self.cfg.scene_size));
                let keys: Vec<String> = present.iter().map(|&i| self.concepts[i].key()).collect();
                let q = pick(&CAPTION_QUESTIONS, &mut self.rng);
                let problem = format!(
                    "You are a captioning expert. Your task is to generate an accurate caption for the last query image while referencing the given reference images. The reference images each contain an object, named respectively as {}. {q}",
                    keys.join(", ")
                );
                (images, problem, GroundTruth::Names(keys))
            }
        };
        let mut extra = Map::new();
        if let Some(a) = answer {
            // The reference answer for supervised fine-tuning (RePIC's records carry none).
            extra.insert("answer".into(), Value::String(a));
        }
        Ok(Record { images, problem, solution, method, extra })
    }
}

fn database(concepts: &[SynthConcept], refs: usize, r2p: bool) -> ConceptDb {
    let mut db = ConceptDb::default();
    for c in concepts {
        let paths: Vec<String> = (0..refs).map(|k| format!("concepts/{}_{k}.png", c.name)).collect();
        let (image, info) = if r2p {
            let f = Fingerprint {
                general: c.general(),
                category: c.category.clone(),
                distinct_features: c.distinct_features(),
                extra: Map::new(),
            };
            (Images::Many(paths), Info::Fingerprint(f))
        } else {
            (Images::One(paths[0].clone()), Info::Text(c.info_text()))
        };
        let entry =
            Concept { name: c.name.clone(), image, info, category: Some(c.category.clone()), extra: Map::new() };
        db.upsert(c.key(), entry);
    }
    db
}

fn concept_json(c: &SynthConcept) -> Value {
    let l = &c.look;
    json!({
        "key": c.key(), "name": c.name, "category": c.category,
        "colour": COLOURS[l.colour].0, "pattern": PATTERNS[l.pattern], "shape": SHAPES[l.shape],
        "accessory": ACCESSORIES[l.accessory],
        "rgb": l.rgb(), "ink_rgb": l.ink_rgb(), "accessory_rgb": l.accessory_rgb(),
        "referring_expression": l.referring_expression(),
    })
}

/// Where a box sits in a `side`-pixel image, in words ("top left", "centre").
fn position(b: &[i64; 4], side: u32) -> &'static str {
    let third = |v: i64| ((v * 3) / i64::from(side)).clamp(0, 2) as usize;
    let (col, row) = (third((b[0] + b[2]) / 2), third((b[1] + b[3]) / 2));
    [["top left", "top", "top right"], ["left", "centre", "right"], ["bottom left", "bottom", "bottom right"]][row][col]
}

/// A ground-truth caption naming every concept with its look and place: an oracle for the scorer and
/// cold-start captions for supervised fine-tuning.
pub fn oracle_caption(concepts: &[&SynthConcept], boxes: &[[i64; 4]], side: u32) -> String {
    let parts: Vec<String> = concepts
        .iter()
        .zip(boxes)
        .map(|(c, b)| format!("{} ({}) at the {}", c.key(), a_or_an(&c.look.description()), position(b, side)))
        .collect();
    format!("In this image we see {} on a pastel background.", parts.join(", and "))
}

/// A training caption for identity (ICT) records: where each concept is and its full description (over 100
/// characters for one concept, so that it passes RePIC's length gate).
pub fn training_caption(concepts: &[&SynthConcept], boxes: &[[i64; 4]], side: u32) -> String {
    let parts: Vec<String> = concepts
        .iter()
        .zip(boxes)
        .map(|(c, b)| format!("In this image, {} is at the {}. {}", c.key(), position(b, side), c.info_text()))
        .collect();
    format!("{} The scene has a plain pastel background.", parts.join(" "))
}

/// `phrase` with its indefinite article ("an orange ball", "a red cube").
fn a_or_an(phrase: &str) -> String {
    let vowel = phrase.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {phrase}", if vowel { "an" } else { "a" })
}

/// A worked OCT answer for supervised fine-tuning: which look the concept has, whether the image shows that
/// look, then the verdict. The look comes first so that seeing is a question about one named look (a model
/// trained from scratch learns that far sooner than listing a scene), and the text before the verdict holds
/// no yes/no word (the OCT reward reads the first one).
pub fn oct_rationale(target: &SynthConcept, present: bool) -> String {
    let look = target.look.description();
    let (seen, verdict) = if present { ("I see", "yes") } else { ("I do not see", "no") };
    format!("{} is the {look}. {seen} {} in the image, so the answer is {verdict}.", target.key(), a_or_an(&look))
}

/// A worked OCT answer for a scene of one object (`shown`), for data sets with distinct colours: what the
/// (query) image shows, the concept's look, then the two body colours side by side and the verdict.
/// Reading one object is the perception step; putting the colours next to each other turns the comparison into
/// a local one, which a small model trained from scratch learns (compared across the sentence, it stayed at
/// chance: docs/demo-notes.md). No yes/no word comes before the verdict.
pub fn oct_rationale_seen(target: &SynthConcept, shown: &Look) -> String {
    format!(
        "The image shows {}. {} is the {}. {}",
        a_or_an(&shown.description()),
        target.key(),
        target.look.description(),
        colour_verdict(shown.colour, target.look.colour)
    )
}

/// "The colours green and pink differ, so the answer is no." (indices into [`COLOURS`]).
fn colour_verdict(seen: usize, asked: usize) -> String {
    let (how, verdict) = if seen == asked { ("match", "yes") } else { ("differ", "no") };
    format!("The colours {} and {} {how}, so the answer is {verdict}.", COLOURS[seen].0, COLOURS[asked].0)
}

/// The parts of a data set that draw from their own random stream, so that the size of one (say, more
/// held-out records for a steadier evaluation) leaves the others unchanged. Concepts, references and training
/// records share the seed's first stream.
#[derive(Clone, Copy)]
enum Section {
    HeldOut = 1,
    LookTrain = 2,
    LookEval = 3,
    Queries = 4,
}

/// The generator of `section`'s draws for `seed`.
fn section_rng(seed: u64, section: Section) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(section as u64);
    rng
}

/// Number of images [`generate`] renders for `cfg` (for progress bars).
pub fn total_images(cfg: &SynthConfig) -> usize {
    let looks = if cfg.look_records > 0 { cfg.look_records + cfg.eval_records } else { 0 };
    cfg.concepts * cfg.refs_per_concept + cfg.train_records + 4 * cfg.eval_records + 3 * cfg.eval_queries + looks
}

fn check(cfg: &SynthConfig) -> Result<(), String> {
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

/// Write the data set for `cfg` into `out` (created; an existing folder is replaced only with `force`). All
/// files are written into a staging folder beside `out` and moved into place at the end, so an interrupted or
/// failed run leaves nothing half written. `progress` is called after every image.
pub fn generate(
    cfg: &SynthConfig,
    out: &Path,
    force: bool,
    progress: &mut dyn FnMut(usize),
) -> Result<Manifest, DataError> {
    check(cfg).map_err(|msg| DataError::Invalid { path: out.into(), msg })?;
    if out.exists() && !force {
        return Err(DataError::Invalid { path: out.into(), msg: "already exists (pass --force to replace it)".into() });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let concepts = draw_concepts(cfg.concepts, cfg.distinct_colours, &mut rng);
    let mut g = Gen { cfg, rng, concepts, stage: Staging::new(out, progress)? };
    let mut counts = IndexMap::new();

    for i in 0..g.concepts.len() {
        for k in 0..cfg.refs_per_concept {
            let c = &g.concepts[i];
            let side = cfg.ref_size as f32;
            let mut canvas = Canvas::background(cfg.ref_size, cfg.ref_size, cfg.plain_background, &mut g.rng);
            let size = g.rng.random_range(0.17..0.24) * side;
            let jitter = side * 0.06;
            let p = Placed {
                look: c.look,
                cx: side / 2.0 + g.rng.random_range(-jitter..jitter),
                cy: side / 2.0 + 0.1 * size + g.rng.random_range(-jitter..jitter),
                size,
                angle: g.rng.random_range(-0.26..0.26),
            };
            canvas.paint(&p, 1);
            let brightness = canvas.brightness(0.9..1.1, &mut g.rng);
            let img = canvas.into_image(brightness);
            g.stage.png(&format!("concepts/{}_{k}.png", c.name), &img)?;
        }
    }
    counts.insert("reference_images".into(), cfg.concepts * cfg.refs_per_concept);

    let mut train = Vec::with_capacity(cfg.train_records);
    for i in 0..cfg.train_records {
        let method = cfg.mix.draw(&mut g.rng);
        train.push(g.record(method, format!("train/images/{i:05}.png"))?);
    }
    for m in [Method::YesNo, Method::Iou, Method::YesNoName, Method::YesNoNameMulti] {
        counts.insert(format!("train_{m}"), train.iter().filter(|r| r.method == m).count());
    }
    g.stage.records("train/records.jsonl", &train)?;

    let mut held_out = Vec::new();
    g.rng = section_rng(cfg.seed, Section::HeldOut);
    for (t, m) in [Method::YesNo, Method::Iou, Method::YesNoName, Method::YesNoNameMulti].into_iter().enumerate() {
        for i in 0..cfg.eval_records {
            held_out.push(g.record(m, format!("eval/images/r{t}_{i:04}.png"))?);
        }
    }
    counts.insert("eval_records".into(), held_out.len());
    g.stage.records("eval/records.jsonl", &held_out)?;

    if cfg.look_records > 0 {
        for (split, n, section) in
            [("train", cfg.look_records, Section::LookTrain), ("eval", cfg.eval_records, Section::LookEval)]
        {
            g.rng = section_rng(cfg.seed, section);
            let recs = (0..n)
                .map(|i| g.look_record(format!("{split}/images/look_{i:05}.png")))
                .collect::<Result<Vec<_>, _>>()?;
            g.stage.records(&format!("{split}/look_records.jsonl"), &recs)?;
            counts.insert(format!("{split}_look_records"), n);
        }
    }

    g.rng = section_rng(cfg.seed, Section::Queries);
    for k in [1usize, 2, 4] {
        let mut queries = crate::QueryList::default();
        let mut boxes: IndexMap<String, IndexMap<String, [i64; 4]>> = IndexMap::new();
        let mut oracle: Vec<CaptionResult> = Vec::new();
        for i in 0..cfg.eval_queries {
            let mut idx: Vec<usize> = (0..g.concepts.len()).collect();
            idx.shuffle(&mut g.rng);
            idx.truncate(k);
            let Saved { path, boxes: bx } = g.scene(format!("eval/images/q{k}_{i:04}.png"), &idx)?;
            let keys: Vec<String> = idx.iter().map(|&c| g.concepts[c].key()).collect();
            let question = pick(&CAPTION_QUESTIONS, &mut g.rng).to_string();
            let caption = oracle_caption(&idx.iter().map(|&c| &g.concepts[c]).collect::<Vec<_>>(), &bx, cfg.scene_size);
            oracle.push(CaptionResult { image: path.clone(), concepts: keys.clone(), caption, question });
            boxes.insert(path.clone(), keys.iter().cloned().zip(bx).collect());
            queries.insert(path, keys);
        }
        let suffix = if k == 1 { "concept" } else { "concepts" };
        g.stage.json(&format!("eval/queries_{k}_{suffix}.json"), &queries)?;
        g.stage.json(&format!("eval/boxes_{k}_{suffix}.json"), &boxes)?;
        g.stage.json(&format!("eval/captions_oracle_{k}_{suffix}.json"), &oracle)?;
        counts.insert(format!("eval_queries_{k}"), queries.entries.len());
    }

    g.stage.json("database.json", &database(&g.concepts, cfg.refs_per_concept, true))?;
    g.stage.json("database_rap.json", &database(&g.concepts, cfg.refs_per_concept, false))?;
    counts.insert("concepts".into(), g.concepts.len());

    let mut files = g.stage.files().to_vec();
    files.push("manifest.json".into());
    files.sort();
    let manifest = Manifest {
        generator: "repic-synth 2".into(),
        config: cfg.clone(),
        concepts: g.concepts.iter().map(concept_json).collect(),
        counts,
        files,
    };
    g.stage.json("manifest.json", &manifest)?;
    g.stage.commit(force)?;
    Ok(manifest)
}
