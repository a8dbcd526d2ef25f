//! Record generation: references, training and held-out RePIC records (OCT, VLT, single and multi ICT), look
//! records and caption queries, each scene rendered and saved as it is drawn.

use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use repic_rewards::{GroundTruth, Method};
use serde_json::{Map, Value};

use super::concept::{self, COLOURS, Look, SynthConcept};
use super::config::SynthConfig;
use super::scene::render_scene;
use super::text::*;
use super::write::Staging;
use crate::{DataError, Record};

/// A scene written to the data set.
pub(super) struct Saved {
    /// Path relative to the output folder.
    pub(super) path: String,
    /// Boxes of the requested concepts, in order.
    pub(super) boxes: Vec<[i64; 4]>,
}

/// The generator's state while writing one data set.
pub(super) struct Gen<'a> {
    pub(super) cfg: &'a SynthConfig,
    pub(super) rng: ChaCha8Rng,
    pub(super) concepts: Vec<SynthConcept>,
    pub(super) stage: Staging<'a>,
}

impl Gen<'_> {
    pub(super) fn distractors(&mut self) -> Vec<Look> {
        let n = self.rng.random_range(0..=self.cfg.max_distractors);
        (0..n).map(|_| concept::distractor_look(&self.concepts, self.cfg.distinct_colours, &mut self.rng)).collect()
    }

    /// Render and save a scene with concepts `idx` (plus random distractors); returns its path and the concepts'
    /// boxes.
    pub(super) fn scene(&mut self, rel: String, idx: &[usize]) -> Result<Saved, DataError> {
        let looks: Vec<Look> = idx.iter().map(|&i| self.concepts[i].look).collect();
        let distractors = self.distractors();
        self.render(rel, &looks, &distractors)
    }

    /// Render and save a scene of exactly `looks` and `distractors`.
    pub(super) fn render(&mut self, rel: String, looks: &[Look], distractors: &[Look]) -> Result<Saved, DataError> {
        let s = render_scene(looks, distractors, self.cfg.scene_size, self.cfg.plain_background, &mut self.rng);
        self.stage.png(&rel, &s.image)?;
        Ok(Saved { path: rel, boxes: s.boxes })
    }

    /// A look warm-up record: one object (a concept's look or a distractor's) and "is it <colour>?", after a
    /// reference image of a random concept with `look_reference`.
    pub(super) fn look_record(&mut self, rel: String) -> Result<Record, DataError> {
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

    pub(super) fn reference(&mut self, i: usize) -> String {
        let k = self.rng.random_range(0..self.cfg.refs_per_concept);
        format!("concepts/{}_{k}.png", self.concepts[i].name)
    }

    pub(super) fn others(&mut self, not: &[usize], n: usize) -> Vec<usize> {
        let pool: Vec<usize> = (0..self.concepts.len()).filter(|i| !not.contains(i)).collect();
        pool.choose_multiple(&mut self.rng, n).copied().collect()
    }

    /// One record of `method` whose query scene is saved as `rel`.
    pub(super) fn record(&mut self, method: Method, rel: String) -> Result<Record, DataError> {
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
