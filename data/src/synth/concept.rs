//! Synthetic concepts: toy objects with a name, a category and distinct attributes, and their texts.

use rand::Rng;
use rand::seq::SliceRandom;
use serde::Serialize;

/// Body shapes, by the noun used in texts.
pub const SHAPES: [&str; 7] = ["cube", "ball", "pyramid", "gem", "star", "egg", "nut"];
/// Colours by name and RGB.
pub const COLOURS: [(&str, [u8; 3]); 10] = [
    ("red", [210, 40, 40]),
    ("orange", [240, 140, 30]),
    ("yellow", [235, 210, 40]),
    ("green", [50, 160, 60]),
    ("teal", [30, 150, 150]),
    ("blue", [40, 80, 210]),
    ("purple", [130, 60, 180]),
    ("pink", [240, 120, 180]),
    ("brown", [120, 75, 40]),
    ("black", [30, 30, 30]),
];
/// Surface patterns.
pub const PATTERNS: [&str; 5] = ["plain", "striped", "dotted", "checkered", "ringed"];
/// Accessories worn on top of (or, for eyes, on) the body.
pub const ACCESSORIES: [&str; 5] = ["none", "hat", "bow", "antenna", "eyes"];
const CATEGORIES: [&str; 4] = ["toy", "figurine", "plush", "ornament"];
const PATTERN_INKS: [(&str, [u8; 3]); 2] = [("white", [245, 245, 245]), ("black", [25, 25, 25])];
const SYLLABLES: [&str; 24] = [
    "zo", "ri", "ba", "ku", "mi", "te", "lo", "na", "pe", "vu", "di", "sa", "fo", "gi", "ha", "jo", "ke", "lu", "mo",
    "ni", "po", "ru", "si", "to",
];

/// The look of an object: indices into the attribute tables above.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Look {
    /// Index into [`SHAPES`].
    pub shape: usize,
    /// Index into [`COLOURS`].
    pub colour: usize,
    /// Index into [`PATTERNS`].
    pub pattern: usize,
    /// Pattern ink: 0 white, 1 black.
    pub ink: usize,
    /// Index into [`ACCESSORIES`].
    pub accessory: usize,
    /// Accessory colour, index into [`COLOURS`].
    pub accessory_colour: usize,
}

impl Look {
    /// A random look.
    pub fn random(rng: &mut impl Rng) -> Self {
        let colour = rng.random_range(0..COLOURS.len());
        let mut accessory_colour = rng.random_range(0..COLOURS.len() - 1);
        if accessory_colour >= colour {
            accessory_colour += 1;
        }
        Look {
            shape: rng.random_range(0..SHAPES.len()),
            colour,
            pattern: rng.random_range(0..PATTERNS.len()),
            // Black bodies get white ink so the pattern stays visible.
            ink: if colour == 9 { 0 } else { rng.random_range(0..2) },
            accessory: rng.random_range(0..ACCESSORIES.len()),
            accessory_colour,
        }
    }

    /// What a referring expression names: colour, pattern and shape.
    pub fn identity(&self) -> (usize, usize, usize) {
        (self.colour, self.pattern, self.shape)
    }

    /// Body colour RGB.
    pub fn rgb(&self) -> [u8; 3] {
        COLOURS[self.colour].1
    }

    /// Pattern ink RGB.
    pub fn ink_rgb(&self) -> [u8; 3] {
        PATTERN_INKS[self.ink].1
    }

    /// Accessory RGB.
    pub fn accessory_rgb(&self) -> [u8; 3] {
        COLOURS[self.accessory_colour].1
    }

    /// "blue striped cube".
    pub fn description(&self) -> String {
        format!("{} {} {}", COLOURS[self.colour].0, PATTERNS[self.pattern], SHAPES[self.shape])
    }

    /// "the blue striped cube".
    pub fn referring_expression(&self) -> String {
        format!("the {}", self.description())
    }

    fn pattern_phrase(&self) -> Option<String> {
        let ink = PATTERN_INKS[self.ink].0;
        match PATTERNS[self.pattern] {
            "plain" => None,
            "striped" => Some(format!("{ink} stripes")),
            "dotted" => Some(format!("{ink} dots")),
            "checkered" => Some(format!("a {ink} checkered pattern")),
            _ => Some(format!("{ink} rings")),
        }
    }

    fn accessory_phrase(&self) -> Option<String> {
        let c = COLOURS[self.accessory_colour].0;
        match ACCESSORIES[self.accessory] {
            "none" => None,
            "eyes" => Some("big round eyes".into()),
            "antenna" => Some(format!("a {c}-tipped antenna")),
            other => Some(format!("a small {c} {other}")),
        }
    }
}

/// A personal concept: key `<name>`, category and look.
#[derive(Clone, Debug, Serialize)]
pub struct SynthConcept {
    /// Bare name, e.g. `zorbi`.
    pub name: String,
    /// Category, e.g. `plush`.
    pub category: String,
    /// Attributes.
    pub look: Look,
}

impl SynthConcept {
    /// The database key, `<name>`.
    pub fn key(&self) -> String {
        format!("<{}>", self.name)
    }

    /// One-sentence description without the name.
    pub fn general(&self) -> String {
        let l = &self.look;
        let mut s = format!("A {} {}-shaped {}", COLOURS[l.colour].0, SHAPES[l.shape], self.category);
        let extras: Vec<String> = [l.pattern_phrase(), l.accessory_phrase()].into_iter().flatten().collect();
        if !extras.is_empty() {
            s.push_str(" with ");
            s.push_str(&extras.join(" and "));
        }
        s.push('.');
        s
    }

    /// RAP-style info text: "<zorbi> is a blue cube-shaped plush with ...".
    pub fn info_text(&self) -> String {
        let g = self.general();
        format!("{} is {}{}", self.key(), g[..1].to_lowercase(), &g[1..])
    }

    /// R2P fingerprint features: the attributes that set this concept apart.
    pub fn distinct_features(&self) -> Vec<String> {
        let l = &self.look;
        let mut f = vec![format!("{} body", COLOURS[l.colour].0), format!("{} shape", SHAPES[l.shape])];
        f.extend(l.pattern_phrase());
        f.extend(l.accessory_phrase());
        f
    }
}

/// Draw `n` concepts whose (colour, pattern, shape) are pairwise distinct, with distinct names; with
/// `distinct_colours` (at most [`COLOURS`]`.len()` concepts) no two share a body colour either.
pub fn draw_concepts(n: usize, distinct_colours: bool, rng: &mut impl Rng) -> Vec<SynthConcept> {
    let mut identities: Vec<(usize, usize, usize)> = (0..COLOURS.len())
        .flat_map(|c| (0..PATTERNS.len()).flat_map(move |p| (0..SHAPES.len()).map(move |s| (c, p, s))))
        .collect();
    identities.shuffle(rng);
    if distinct_colours {
        let mut used = [false; COLOURS.len()];
        identities.retain(|&(c, _, _)| !std::mem::replace(&mut used[c], true));
    }
    let mut names: Vec<String> = Vec::new();
    identities
        .into_iter()
        .take(n)
        .map(|(colour, pattern, shape)| {
            let look = Look { colour, pattern, shape, ..Look::random(rng) };
            let look = Look { ink: if colour == 9 { 0 } else { look.ink }, ..look };
            let name = loop {
                let k = rng.random_range(2..=3);
                let cand: String = (0..k).map(|_| SYLLABLES[rng.random_range(0..SYLLABLES.len())]).collect();
                if !names.contains(&cand) {
                    break cand;
                }
            };
            names.push(name.clone());
            SynthConcept { name, category: CATEGORIES[rng.random_range(0..CATEGORIES.len())].into(), look }
        })
        .collect()
}

/// How many concepts [`draw_concepts`] can draw at most.
pub const MAX_CONCEPTS: usize = COLOURS.len() * PATTERNS.len() * SHAPES.len();

/// A look that no concept in `concepts` shares its (colour, pattern, shape) with: a distractor. With
/// `distinct_colours` its body colour is one no concept has (when one is left).
pub fn distractor_look(concepts: &[SynthConcept], distinct_colours: bool, rng: &mut impl Rng) -> Look {
    let free = distinct_colours && concepts.len() < COLOURS.len();
    loop {
        let l = Look::random(rng);
        let clash = |c: &SynthConcept| c.look.identity() == l.identity() || (free && c.look.colour == l.colour);
        if !concepts.iter().any(clash) {
            return l;
        }
    }
}
