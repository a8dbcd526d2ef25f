//! The demo's personalization stage: a retrieval encoder trained here (a tiny CLIP image tower, contrastively
//! on the training scenes and the concepts' reference images, no downloaded weights), the synthetic concepts in
//! a concept store, and the GRPO model captioning held-out queries with the references retrieved by image
//! instead of given, and answering recognition questions.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use repic_data::{ConceptDb, GroundTruth, Method, load_query_list, load_records};
use repic_eval::captioning::CaptionOptions;
use repic_eval::personalized::{
    RecognitionOptions, RecognitionPrompt, References, caption_with_store, recognition, recognition_items,
};
use repic_eval::{Accuracy, CaseRule, Scorer, score_captions};
use repic_models::{Checkpoint, Clip, ClipConfig, ClipProcessor, DefaultBackend as Backend, TowerConfig, save_clip};
use repic_personalize::store::import_file;
use repic_personalize::{ConceptStore, CropSource, ImageMode, ImportOptions, RetrieveOptions, Retriever, SqliteStore};
use repic_trainer::contrastive::{ConceptViews, ContrastiveConfig, train_image_tower};

use repic_eval::held_out::QUESTION;

/// Side of the encoder's input (scenes are 112 px, references 56 px).
const SIDE: u32 = 56;

fn encoder_config(vocab: usize, eos: i64) -> ClipConfig {
    let tower = |hidden: usize, layers: usize| TowerConfig {
        hidden_size: hidden,
        intermediate_size: 2 * hidden,
        num_hidden_layers: layers,
        num_attention_heads: 4,
        layer_norm_eps: 1e-5,
        hidden_act: "quick_gelu".into(),
        vocab_size: vocab,
        max_position_embeddings: 77,
        eos_token_id: Some(eos),
        image_size: SIDE as usize,
        patch_size: 8,
        num_channels: 3,
    };
    ClipConfig { text: tower(32, 1), vision: tower(64, 2), projection_dim: 32 }
}

fn processor() -> ClipProcessor {
    serde_json::from_value(serde_json::json!({
        "size": {"shortest_edge": SIDE}, "crop_size": {"height": SIDE, "width": SIDE},
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]
    }))
    .expect("static processor config")
}

/// Per concept of `db`: its reference images and the training scenes that show it (OCT records answered yes and
/// captioning records with one reference), preprocessed.
fn views(data: &Path, db: &ConceptDb, proc: &ClipProcessor) -> anyhow::Result<Vec<ConceptViews>> {
    let keys: Vec<&String> = db.concept_dict.keys().collect();
    let mut out = vec![ConceptViews::default(); keys.len()];
    let open = |p: &str| -> anyhow::Result<Vec<f32>> { Ok(proc.process(&repic_personalize::open_rgb(&data.join(p))?)) };
    for (i, c) in db.concept_dict.values().enumerate() {
        for p in c.image.paths() {
            out[i].references.push(open(p)?);
        }
    }
    for r in load_records(&data.join("train/records.jsonl"))? {
        let shows = match (r.method, &r.solution) {
            (Method::YesNo, GroundTruth::Text(s)) => s == "yes",
            (Method::YesNoName, _) => true,
            _ => false,
        };
        if !shows || r.images.len() != 2 {
            continue;
        }
        if let Some(i) = db.concept_of_image(&r.images[0]).and_then(|k| keys.iter().position(|x| *x == k)) {
            out[i].scenes.push(open(&r.images[1])?);
        }
    }
    Ok(out)
}

/// Train the encoder and write it to `dir`; returns the training seconds.
fn train_encoder(data: &Path, tokenizer: &Path, dir: &Path, quick: bool, seed: u64) -> anyhow::Result<f64> {
    let start = Instant::now();
    let db = ConceptDb::load(&data.join("database_rap.json"))?;
    let proc = processor();
    let views = views(data, &db, &proc)?;
    let tok = repic_models::ChatTokenizer::load(tokenizer.parent().unwrap_or(Path::new(".")))?;
    let eos = tok.encode("<|endoftext|>")?.first().copied().unwrap_or(0);
    let vocab = tokenizers_vocab(tokenizer)?;
    let cfg = encoder_config(vocab, i64::from(eos));
    let dev = repic_models::default_device();
    let clip = Clip::<Autodiff<Backend>>::new(&cfg, &dev);
    let train = ContrastiveConfig {
        steps: if quick { 10 } else { 400 },
        concepts_per_step: views.len().min(8),
        learning_rate: 1e-3,
        temperature: 0.1,
        seed,
    };
    let bar = indicatif::ProgressBar::new(train.steps as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("encoder [{bar:30}] {pos}/{len} {msg} ETA {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let clip = train_image_tower(clip, &views, &train, &mut |step, loss| {
        bar.set_position(step as u64);
        bar.set_message(format!("loss {loss:.3}"));
    })?;
    bar.finish_and_clear();
    save_clip(&clip.valid(), &proc, tokenizer, Some(("<|im_start|>", "<|endoftext|>")), dir, true)?;
    Ok(start.elapsed().as_secs_f64())
}

/// Vocabulary size of a tokenizer file (added tokens included).
fn tokenizers_vocab(path: &Path) -> anyhow::Result<usize> {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let base = v["model"]["vocab"].as_object().map_or(0, |m| m.len());
    let added = v["added_tokens"].as_array().map_or(0, Vec::len);
    let max_added = v["added_tokens"].as_array().into_iter().flatten().filter_map(|t| t["id"].as_u64()).max();
    Ok(base.max(max_added.map_or(0, |m| m as usize + 1)).max(base + added.min(1)))
}

/// The retrieval setup of a demo folder `out`: an encoder trained on `data`'s training scenes (`out/encoder`)
/// and the concepts in a store (`out/store`), embedded. Each is made under a temporary name and renamed when
/// finished, so a finished setup is reused (the ablation runner shares one per seed) and a killed one is made
/// again. Returns the store, its retriever and the encoder's training seconds (0 when reused).
pub(crate) fn retrieval_setup(
    out: &Path,
    data: &Path,
    quick: bool,
    seed: u64,
    dev: &burn::tensor::Device<Backend>,
) -> anyhow::Result<(SqliteStore, Retriever<Backend>, f64)> {
    let (clip_dir, store_dir) = (out.join("encoder"), out.join("store"));
    let mut secs = 0.0;
    if !(clip_dir.is_dir() && store_dir.is_dir()) {
        let (clip_tmp, store_tmp) = (out.join("encoder.tmp"), out.join("store.tmp"));
        for d in [&clip_dir, &store_dir, &clip_tmp, &store_tmp] {
            if d.exists() {
                std::fs::remove_dir_all(d).with_context(|| format!("removing {}", d.display()))?;
            }
        }
        tracing::info!("personalization: a retrieval encoder trained on the training scenes -> {}", clip_dir.display());
        secs = train_encoder(data, &out.join("model-init/tokenizer.json"), &clip_tmp, quick, seed)?;
        rename(&clip_tmp, &clip_dir)?;
        tracing::info!("personalization: the concepts into a store, embedded -> {}", store_dir.display());
        let mut store = SqliteStore::create(&store_tmp)?;
        let opts = ImportOptions { image_root: data.to_path_buf(), images: ImageMode::Copy, replace: false };
        import_file(&mut store, &data.join("database_rap.json"), &opts)?;
        Retriever::<Backend>::open(&mut store, Some(&clip_dir), dev, &mut |_, _| {})?;
        drop(store);
        rename(&store_tmp, &store_dir)?;
    }
    let mut store = SqliteStore::open(&store_dir)?;
    let (retriever, _) = Retriever::<Backend>::open(&mut store, Some(&clip_dir), dev, &mut |_, _| {})?;
    Ok((store, retriever, secs))
}

fn rename(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::rename(from, to).with_context(|| format!("renaming {} to {}", from.display(), to.display()))
}

/// Run the stage; returns its figures for `summary.json`.
pub(crate) fn run_stage(
    out: &Path,
    data: &Path,
    ckpt: &Checkpoint<Backend>,
    quick: bool,
    seed: u64,
) -> anyhow::Result<serde_json::Value> {
    let dev = repic_models::default_device();
    for d in ["encoder", "store"] {
        if out.join(d).exists() {
            std::fs::remove_dir_all(out.join(d)).with_context(|| format!("removing {}", out.join(d).display()))?;
        }
    }
    let (store, retriever, secs) = retrieval_setup(out, data, quick, seed, &dev)?;
    tracing::info!("personalization: retrieval, captions with retrieved references, recognition");
    let limit = if quick { 2 } else { usize::MAX };
    let split = |name: &str| -> anyhow::Result<Vec<(String, Vec<String>)>> {
        let list = load_query_list(&data.join(format!("eval/queries_{name}.json")))?;
        Ok(list.queries().take(limit).map(|(i, k)| (i.to_string(), k.to_vec())).collect())
    };
    let (one, two) = (split("1_concept")?, split("2_concepts")?);
    let mut top1 = Accuracy::default();
    for (image, keys) in &one {
        let img = repic_personalize::open_rgb(&data.join(image))?;
        let found =
            retriever.rap(Some(&img), "", &CropSource::Whole, &RetrieveOptions { top_k: 1, ..Default::default() })?;
        top1.total += 1;
        top1.correct += usize::from(found.results.first().is_some_and(|r| r.key == keys[0]));
    }
    let copts = CaptionOptions { question: QUESTION.into(), max_new_tokens: 64, batch: 8 };
    let mut rows = serde_json::Map::new();
    let mut table = Vec::new();
    for (label, refs1, refs2) in [
        ("given", References::GroundTruth, References::GroundTruth),
        ("retrieved", References::Retrieved { top_k: 1 }, References::Retrieved { top_k: 2 }),
    ] {
        let a = caption_with_store(ckpt, &retriever, &one, data, refs1, &copts, &dev)?;
        let b = caption_with_store(ckpt, &retriever, &two, data, refs2, &copts, &dev)?;
        let results: Vec<_> = a.captions.results.iter().chain(&b.captions.results).cloned().collect();
        let s = score_captions(&results, Scorer::Official, CaseRule::Auto, None);
        let hits = Accuracy {
            correct: a.retrieval.correct + b.retrieval.correct,
            total: a.retrieval.total + b.retrieval.total,
        };
        let (p, r, f) = s.rounded();
        table.push((label, p, r, f, hits.percent()));
        rows.insert(
            label.into(),
            serde_json::json!({"precision": p, "recall": r, "f1": f, "references_right": hits.percent()}),
        );
    }
    let keys: Vec<String> = store.concepts()?.into_iter().map(|c| c.key).collect();
    let items = recognition_items(&one, &keys, 1, seed);
    let (rec, _) = recognition(
        ckpt,
        &retriever,
        &items,
        data,
        &RecognitionOptions { prompt: RecognitionPrompt::Oct, max_new_tokens: 64, batch: 8 },
        &dev,
    )?;
    println!();
    println!(
        "personalization (the GRPO model with a concept store of {} concepts; encoder trained in {secs:.0} s)",
        keys.len()
    );
    println!("retrieval top-1 on 1-concept queries: {:.1}% of {}", top1.percent(), top1.total);
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>16}",
        "captions (1+2-concept queries)", "precision", "recall", "F1", "right references"
    );
    for (label, p, r, f, hits) in &table {
        println!("{:<34} {p:>9.1} {r:>9.1} {f:>9.1} {hits:>15.1}%", format!("references {label}"));
    }
    println!(
        "recognition (RePIC's OCT prompt): weighted {:.1}% (positives {:.1}% of {}, negatives {:.1}% of {})",
        rec.weighted(),
        rec.positives.percent(),
        rec.positives.total,
        rec.negatives.percent(),
        rec.negatives.total
    );
    Ok(serde_json::json!({
        "encoder_seconds": secs, "retrieval_top1": top1.percent(), "retrieval_queries": top1.total,
        "captions": rows, "recognition_weighted": rec.weighted(), "recognition_positives": rec.positives.percent(),
        "recognition_negatives": rec.negatives.percent(),
    }))
}
