//! `repic synth`: a deterministic synthetic personalization data set (concepts, scenes, RePIC records,
//! a concept database and held-out queries), small enough for CPU training.
//!
//! `config` says what to make, `concept` draws the concepts, `render` and `scene` draw images, `text` writes
//! questions, captions and worked answers, `records` makes the records, `database` the concept database,
//! `write` stages the files; this module drives them.

mod concept;
mod config;
mod database;
mod records;
mod render;
mod scene;
mod text;
mod write;

use std::path::Path;

use indexmap::IndexMap;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use repic_rewards::Method;

pub use concept::{
    ACCESSORIES, COLOURS, Look, MAX_CONCEPTS, PATTERNS, SHAPES, SynthConcept, distractor_look, draw_concepts,
};
pub use config::{Manifest, SynthConfig, TaskMix, total_images};
pub use render::{Canvas, Placed, place};
pub use scene::{Scene, render_scene};
pub use text::{oct_rationale, oct_rationale_seen, oracle_caption, training_caption};

use crate::{CaptionResult, DataError};
use config::check;
use database::{concept_json, database};
use records::{Gen, Saved};
use text::{CAPTION_QUESTIONS, pick};
use write::Staging;

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
