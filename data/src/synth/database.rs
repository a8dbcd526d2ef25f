//! The concept database of a synthetic data set, in RAP's and R2P's `database.json` forms.

use serde_json::{Map, Value, json};

use super::concept::{ACCESSORIES, COLOURS, PATTERNS, SHAPES, SynthConcept};
use crate::{Concept, ConceptDb, Fingerprint, Images, Info};

pub(super) fn database(concepts: &[SynthConcept], refs: usize, r2p: bool) -> ConceptDb {
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

pub(super) fn concept_json(c: &SynthConcept) -> Value {
    let l = &c.look;
    json!({
        "key": c.key(), "name": c.name, "category": c.category,
        "colour": COLOURS[l.colour].0, "pattern": PATTERNS[l.pattern], "shape": SHAPES[l.shape],
        "accessory": ACCESSORIES[l.accessory],
        "rgb": l.rgb(), "ink_rgb": l.ink_rgb(), "accessory_rgb": l.accessory_rgb(),
        "referring_expression": l.referring_expression(),
    })
}
