//! The synthetic generator: determinism, boxes on their concepts, valid records, atomic output.

use std::collections::BTreeMap;
use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use repic_data::synth::{Look, SynthConfig, TaskMix, draw_concepts, generate, render_scene};
use repic_data::{ConceptDb, GroundTruth, Info, Method, load_query_list, load_records};
use serde_json::Value;

fn small(seed: u64) -> SynthConfig {
    SynthConfig {
        seed,
        concepts: 6,
        train_records: 40,
        eval_records: 3,
        eval_queries: 4,
        scene_size: 168,
        ..SynthConfig::default()
    }
}

fn read_tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn same_seed_same_bytes_other_seed_differs() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
    let m = generate(&small(7), &a, false, &mut |_| {}).unwrap();
    generate(&small(7), &b, false, &mut |_| {}).unwrap();
    generate(&small(8), &c, false, &mut |_| {}).unwrap();
    let (ta, tb, tc) = (read_tree(&a), read_tree(&b), read_tree(&c));
    assert_eq!(ta.keys().cloned().collect::<Vec<_>>(), m.files);
    assert!(ta == tb, "same seed must give identical bytes");
    assert_ne!(ta.get("train/records.jsonl"), tc.get("train/records.jsonl"));
    // Only the three outputs are left: no staging folders.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
}

#[test]
fn held_out_sizes_leave_the_training_files_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let base = SynthConfig { look_records: 5, ..small(5) };
    generate(&base, &a, false, &mut |_| {}).unwrap();
    generate(&SynthConfig { eval_records: 7, eval_queries: 9, ..base }, &b, false, &mut |_| {}).unwrap();
    let (ta, tb) = (read_tree(&a), read_tree(&b));
    let training = |t: &BTreeMap<String, Vec<u8>>| -> BTreeMap<String, Vec<u8>> {
        t.iter()
            .filter(|(k, _)| k.starts_with("train/") || k.starts_with("concepts/") || k.starts_with("database"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let (train_a, train_b) = (training(&ta), training(&tb));
    assert!(train_a.contains_key("train/records.jsonl") && train_a.contains_key("train/look_records.jsonl"));
    assert!(train_a.keys().any(|k| k.starts_with("concepts/")));
    assert!(train_a == train_b, "training files must not depend on the held-out sizes");
    assert_eq!(load_records(&b.join("eval/look_records.jsonl")).unwrap().len(), 7);
    assert_ne!(ta.get("eval/records.jsonl"), tb.get("eval/records.jsonl"));
}

#[test]
fn output_is_a_consistent_data_set() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("set");
    let cfg = small(3);
    generate(&cfg, &out, false, &mut |_| {}).unwrap();

    let db = ConceptDb::load(&out.join("database.json")).unwrap();
    let rap = ConceptDb::load(&out.join("database_rap.json")).unwrap();
    assert_eq!(db.concept_dict.len(), 6);
    for (key, c) in &db.concept_dict {
        assert!(key.starts_with('<') && key.ends_with('>'));
        assert_eq!(c.image.paths().len(), cfg.refs_per_concept);
        assert!(matches!(&c.info, Info::Fingerprint(f) if f.distinct_features.len() >= 2));
        assert!(matches!(&rap.concept_dict[key].info, Info::Text(t) if t.starts_with(key.as_str())));
        for p in c.image.paths() {
            assert!(out.join(p).is_file(), "{p}");
        }
    }

    let train = load_records(&out.join("train/records.jsonl")).unwrap();
    assert_eq!(train.len(), 40);
    let held = load_records(&out.join("eval/records.jsonl")).unwrap();
    assert_eq!(held.len(), 12);
    for r in train.iter().chain(&held) {
        for img in &r.images {
            assert!(out.join(img).is_file(), "{img}");
        }
        let ref_count = match r.method {
            Method::Iou => 0,
            Method::YesNoNameMulti => r.images.len() - 1,
            _ => 1,
        };
        assert_eq!(r.images.len(), ref_count + 1);
        let answer = r.extra.get("answer").and_then(|a| a.as_str());
        match (&r.method, &r.solution) {
            (Method::YesNoName, GroundTruth::Text(k)) => {
                assert!(r.problem.contains(k.as_str()));
                // The SFT caption names the concept and passes RePIC's 100-character gate.
                let a = answer.expect("ICT records carry a training caption");
                assert!(a.contains(k.as_str()) && a.len() >= 100, "{a}");
            }
            (Method::YesNoNameMulti, GroundTruth::Names(n)) => {
                assert!((2..=3).contains(&n.len()));
                assert!(n.iter().all(|k| r.problem.contains(k.as_str())));
                assert!(n.iter().all(|k| answer.expect("a training caption").contains(k.as_str())));
            }
            (Method::Iou, GroundTruth::Box(b)) => assert!(b[0] < b[2] && b[1] < b[3] && b[2] <= 168 && b[3] <= 168),
            (Method::YesNo, GroundTruth::Text(a)) => {
                assert!(a == "yes" || a == "no");
                // The worked answer for SFT ends in the verdict, which is the first yes/no the reward reads.
                let why = answer.expect("OCT records carry a worked answer");
                let opts = repic_rewards::OctOptions { word_boundary: true };
                assert_eq!(repic_rewards::oct_reward(why, a, &opts), 1.0, "{why}");
                assert!(why.ends_with(&format!("so the answer is {a}.")), "{why}");
            }
            other => panic!("unexpected record {other:?}"),
        }
    }

    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    for (k, suffix) in [(1, "concept"), (2, "concepts"), (4, "concepts")] {
        let q = load_query_list(&out.join(format!("eval/queries_{k}_{suffix}.json"))).unwrap();
        assert_eq!(q.queries().count(), 4);
        let boxes: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join(format!("eval/boxes_{k}_{suffix}.json"))).unwrap())
                .unwrap();
        let oracle = out.join(format!("eval/captions_oracle_{k}_{suffix}.json"));
        let captions = repic_data::load_caption_results(&oracle).unwrap();
        assert_eq!(captions.len(), 4);
        for c in &captions {
            assert!(c.concepts.iter().all(|k| c.caption.contains(k.as_str())), "{}", c.caption);
        }
        for (img, keys) in q.queries() {
            assert_eq!(keys.len(), k);
            let png = image::open(out.join(img)).unwrap().to_rgb8();
            for key in keys {
                let b: Vec<i64> = serde_json::from_value(boxes[img][key].clone()).unwrap();
                let c = manifest["concepts"].as_array().unwrap().iter().find(|c| c["key"] == *key).unwrap();
                assert_box_shows_concept(&png, &b, c);
            }
        }
    }
}

/// At least a quarter of the box (a star fills ~40% of its box) shows the concept's body, pattern or accessory colour (under any of the
/// generator's brightness factors).
fn assert_box_shows_concept(png: &image::RgbImage, b: &[i64], concept: &Value) {
    let mut colours: Vec<[f32; 3]> = ["rgb", "ink_rgb", "accessory_rgb"]
        .iter()
        .map(|k| serde_json::from_value::<[f32; 3]>(concept[*k].clone()).unwrap())
        .collect();
    if concept["accessory"] == "eyes" {
        colours.extend([[250.0; 3], [10.0; 3]]);
    }
    let (mut hits, mut total) = (0, 0);
    for y in b[1]..b[3] {
        for x in b[0]..b[2] {
            let p = png.get_pixel(x as u32, y as u32).0.map(f32::from);
            total += 1;
            let near = colours.iter().any(|c| {
                (0..=6).any(|s| {
                    let f = 0.85 + 0.05 * s as f32;
                    (0..3).map(|k| (p[k] - (c[k] * f).min(255.0)).powi(2)).sum::<f32>().sqrt() < 30.0
                })
            });
            hits += usize::from(near);
        }
    }
    assert!(hits * 4 >= total, "box {b:?} of {} shows its colours on {hits}/{total} pixels", concept["key"]);
}

#[test]
fn scene_boxes_are_tight_around_each_concept_and_unoccluded() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let concepts = draw_concepts(8, false, &mut rng);
    for n in 1..=4 {
        let looks: Vec<Look> = concepts.iter().take(n).map(|c| c.look).collect();
        let distractors: Vec<Look> = concepts.iter().skip(6).map(|c| c.look).collect();
        let s = render_scene(&looks, &distractors, 224, false, &mut rng);
        assert_eq!(s.boxes.len(), n);
        for (i, b) in s.boxes.iter().enumerate() {
            let id = i as u16 + 1;
            assert!(0 <= b[0] && b[0] < b[2] && b[2] <= 224 && 0 <= b[1] && b[1] < b[3] && b[3] <= 224);
            let (mut mine, mut others, mut outside) = (0, 0, 0);
            for (p, &l) in s.labels.iter().enumerate() {
                let (x, y) = ((p % 224) as i64, (p / 224) as i64);
                let inside = b[0] <= x && x < b[2] && b[1] <= y && y < b[3];
                match (inside, l == id) {
                    (true, true) => mine += 1,
                    (false, true) => outside += 1,
                    (true, false) if l != 0 => others += 1,
                    _ => {}
                }
            }
            let area = (b[2] - b[0]) * (b[3] - b[1]);
            assert_eq!(outside, 0, "concept pixels outside its box");
            assert_eq!(others, 0, "another object inside the box");
            assert!(mine * 10 >= area * 3, "concept covers {mine} of {area} box pixels");
        }
    }
}

#[test]
fn refuses_existing_output_and_bad_options() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("set");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "mine").unwrap();
    let e = generate(&small(1), &out, false, &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("already exists"), "{e}");
    assert_eq!(std::fs::read(out.join("keep.txt")).unwrap(), b"mine");
    let bad = SynthConfig { concepts: 2, ..small(1) };
    assert!(generate(&bad, &dir.path().join("x"), false, &mut |_| {}).is_err());
    let bad = SynthConfig { concepts: 11, distinct_colours: true, ..small(1) };
    let e = generate(&bad, &dir.path().join("x"), false, &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("distinct_colours"), "{e}");
    let bad = SynthConfig { oct_single_object: true, ..small(1) };
    let e = generate(&bad, &dir.path().join("x"), false, &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("oct_single_object needs distinct_colours"), "{e}");
    assert!(!dir.path().join("x").exists());
    // A killed generation left its staging folder: the next one clears it.
    std::fs::create_dir_all(dir.path().join(".set.partial-Ab12/train")).unwrap();
    generate(&small(1), &out, true, &mut |_| {}).unwrap();
    assert!(!out.join("keep.txt").exists() && out.join("manifest.json").is_file());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no staging, lock or leftover beside the output");
}

#[test]
fn task_mix_parses_and_rejects() {
    let m = TaskMix::parse("oct=1, ict=1").unwrap();
    assert_eq!((m.oct, m.vlt, m.ict, m.ict_multi), (1.0, 0.0, 1.0, 0.0));
    assert!(TaskMix::parse("octo=1").unwrap_err().contains("unknown task"));
    assert!(TaskMix::parse("oct=-1").is_err());
    assert!(TaskMix::parse("oct=0").is_err());
    let only_vlt = SynthConfig { mix: TaskMix::parse("vlt=1").unwrap(), ..small(2) };
    let dir = tempfile::tempdir().unwrap();
    generate(&only_vlt, &dir.path().join("v"), false, &mut |_| {}).unwrap();
    let recs = load_records(&dir.path().join("v/train/records.jsonl")).unwrap();
    assert!(recs.iter().all(|r| r.method == Method::Iou));
}

#[test]
fn oct_rationale_names_the_look_then_whether_it_is_seen_then_the_verdict() {
    use repic_data::synth::{SynthConcept, oct_rationale};
    // orange (1) plain (0) ball (1).
    let look = Look { shape: 1, colour: 1, pattern: 0, ink: 0, accessory: 0, accessory_colour: 2 };
    let target = SynthConcept { name: "zori".into(), category: "toy".into(), look };
    assert_eq!(
        oct_rationale(&target, true),
        "<zori> is the orange plain ball. I see an orange plain ball in the image, so the answer is yes."
    );
    let no = oct_rationale(&target, false);
    assert_eq!(
        no,
        "<zori> is the orange plain ball. I do not see an orange plain ball in the image, so the answer is no."
    );
    // The OCT reward reads the first yes/no word: it must be the verdict.
    for (text, verdict) in [(oct_rationale(&target, true), "yes"), (no, "no")] {
        let first = text.split(|c: char| !c.is_alphanumeric()).find(|w| *w == "yes" || *w == "no");
        assert_eq!(first, Some(verdict), "{text}");
    }
}

#[test]
fn distinct_colours_give_each_concept_its_colour_and_distractors_the_rest() {
    let cfg = SynthConfig { concepts: 8, max_distractors: 2, distinct_colours: true, ..small(5) };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("set");
    let manifest = generate(&cfg, &out, false, &mut |_| {}).unwrap();
    let colours: Vec<&str> = manifest.concepts.iter().map(|c| c["colour"].as_str().unwrap()).collect();
    let mut unique = colours.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 8, "{colours:?}");
    // The same concepts as the data set (drawn first from the seed); distractors never take their colours.
    let concepts = draw_concepts(8, true, &mut ChaCha8Rng::seed_from_u64(5));
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for _ in 0..200 {
        let l = repic_data::synth::distractor_look(&concepts, true, &mut rng);
        assert!(concepts.iter().all(|c| c.look.colour != l.colour), "{l:?}");
    }
}

#[test]
fn plain_backgrounds_are_one_flat_grey_outside_the_objects() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let concepts = draw_concepts(4, false, &mut rng);
    let looks: Vec<Look> = concepts.iter().take(2).map(|c| c.look).collect();
    let grey = |img: &image::RgbImage| img.pixels().filter(|p| p.0 == [215, 215, 215]).count();
    let s = render_scene(&looks, &[concepts[3].look], 112, true, &mut rng);
    assert_eq!(s.brightness, 1.0);
    let background = s.labels.iter().filter(|&&l| l == 0).count();
    // Every background pixel is the grey except the few an object edge covers by less than half.
    assert!(grey(&s.image) > background * 9 / 10, "{} grey of {background} background pixels", grey(&s.image));
    let g = render_scene(&looks, &[], 112, false, &mut rng);
    assert!(grey(&g.image) < 112, "the default gradient background is not flat");
}

#[test]
fn one_object_oct_scenes_show_the_concept_exactly_when_the_answer_is_yes() {
    let cfg = SynthConfig {
        concepts: 6,
        mix: TaskMix::parse("oct=1").unwrap(),
        distinct_colours: true,
        plain_background: true,
        oct_single_object: true,
        look_records: 12,
        ..small(7)
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("set");
    let manifest = generate(&cfg, &out, false, &mut |_| {}).unwrap();
    let concepts = manifest.concepts.clone();
    let rgb = |c: &Value, k: &str| -> [u8; 3] { serde_json::from_value(c[k].clone()).unwrap() };
    let recs = load_records(&out.join("train/records.jsonl")).unwrap();
    let mut verdicts = [0usize; 2];
    for r in &recs {
        let answer = r.extra["answer"].as_str().unwrap();
        let shown = answer.strip_prefix("The image shows ").unwrap().split('.').next().unwrap();
        let shown = shown.trim_start_matches("an ").trim_start_matches("a ");
        let c = concepts.iter().find(|c| c["referring_expression"] == format!("the {shown}")).expect(answer);
        let target = r.problem.split("identified as ").nth(1).unwrap().split(' ').next().unwrap();
        let yes = c["key"] == target;
        let GroundTruth::Text(solution) = &r.solution else { panic!("{:?}", r.solution) };
        assert_eq!(solution, if yes { "yes" } else { "no" }, "{answer}");
        assert!(answer.ends_with(&format!("so the answer is {solution}.")), "{answer}");
        verdicts[usize::from(yes)] += 1;
        // One object: the shown concept's body colour is painted, no other concept's is (bar its accessory).
        let img = image::open(out.join(&r.images[1])).unwrap().to_rgb8();
        let count = |px: [u8; 3]| img.pixels().filter(|p| p.0 == px).count();
        assert!(count(rgb(c, "rgb")) > 20, "{answer}");
        for other in concepts.iter().filter(|o| o["key"] != c["key"] && rgb(o, "rgb") != rgb(c, "accessory_rgb")) {
            assert_eq!(count(rgb(other, "rgb")), 0, "{} in a scene of {shown}", other["key"]);
        }
    }
    assert!(verdicts[0] > 5 && verdicts[1] > 5, "{verdicts:?}");
    // Look records: one image, a colour question, the answer says what is shown and gives the right verdict.
    for (split, n) in [("train", 12), ("eval", 3)] {
        let looks = load_records(&out.join(format!("{split}/look_records.jsonl"))).unwrap();
        assert_eq!(looks.len(), n);
        for r in &looks {
            assert_eq!((r.images.len(), r.method), (1, Method::YesNo));
            let asked = r.problem.strip_prefix("Is the object in this image ").unwrap().split('?').next().unwrap();
            let answer = r.extra["answer"].as_str().unwrap();
            let shown = answer.strip_prefix("The image shows ").unwrap();
            let shown_colour = shown.split(' ').nth(1).unwrap();
            assert!(answer.contains(&format!("The colours {shown_colour} and {asked} ")), "{answer}");
            let GroundTruth::Text(solution) = &r.solution else { panic!() };
            assert_eq!(solution, if asked == shown_colour { "yes" } else { "no" }, "{} / {answer}", r.problem);
            assert!(answer.ends_with(&format!("so the answer is {solution}.")));
        }
    }
    assert_eq!(manifest.counts["train_look_records"], 12);
}

#[test]
fn look_records_with_a_reference_ask_about_the_second_image() {
    let cfg = SynthConfig {
        concepts: 6,
        train_records: 4,
        distinct_colours: true,
        plain_background: true,
        look_records: 40,
        look_reference: true,
        ..small(3)
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("set");
    let manifest = generate(&cfg, &out, false, &mut |_| {}).unwrap();
    let mut asked_reference = 0;
    for r in load_records(&out.join("train/look_records.jsonl")).unwrap() {
        assert_eq!(r.images.len(), 2, "{:?}", r.images);
        let name = r.images[0].strip_prefix("concepts/").unwrap().rsplit_once('_').unwrap().0;
        let reference = manifest.concepts.iter().find(|c| c["name"] == name).expect(name);
        let asked = r.problem.strip_prefix("Is the object in the second image ").unwrap().split('?').next().unwrap();
        let answer = r.extra["answer"].as_str().unwrap();
        let shown_colour = answer.strip_prefix("The image shows ").unwrap().split(' ').nth(1).unwrap();
        let GroundTruth::Text(solution) = &r.solution else { panic!() };
        assert_eq!(solution, if asked == shown_colour { "yes" } else { "no" }, "{} / {answer}", r.problem);
        assert!(answer.contains(&format!("The colours {shown_colour} and {asked} ")), "{answer}");
        // A no asks for the reference's colour whenever the shown object has another one.
        if solution == "no" && reference["colour"] != shown_colour {
            assert_eq!(reference["colour"], asked, "{} / {answer}", r.problem);
            asked_reference += 1;
        }
    }
    assert!(asked_reference > 5, "{asked_reference}");
}

#[test]
fn oct_rationale_for_one_object_says_what_is_shown_then_compares() {
    use repic_data::synth::{SynthConcept, oct_rationale_seen};
    let look = Look { shape: 1, colour: 1, pattern: 0, ink: 0, accessory: 0, accessory_colour: 2 };
    let target = SynthConcept { name: "zori".into(), category: "toy".into(), look };
    let other = Look { colour: 5, pattern: 1, ..look };
    assert_eq!(
        oct_rationale_seen(&target, &look),
        "The image shows an orange plain ball. <zori> is the orange plain ball. The colours orange and orange match, \
         so the answer is yes."
    );
    assert_eq!(
        oct_rationale_seen(&target, &other),
        "The image shows a blue striped ball. <zori> is the orange plain ball. The colours blue and orange differ, so \
         the answer is no."
    );
}
