//! `repic ask`: answer a question about an image with the concepts of a store: RAP retrieval (names in the
//! question first, then the nearest reference images), RePIC's prompt, greedy decoding.

use std::path::{Path, PathBuf};

use repic_data::reference_turn;
use repic_models::{DefaultBackend as Backend, GenerateOptions, SamplingOptions, default_device as device};
use repic_personalize::{CropSource, RetrieveOptions, Retriever, SqliteStore, open_rgb};

use crate::prompt::load_model;

/// `repic ask`.
#[derive(clap::Args)]
pub struct Args {
    /// The model: a model folder, a PEFT adapter, a run's checkpoint-N/ or a run folder.
    #[arg(long)]
    model: PathBuf,
    /// A PEFT LoRA adapter folder to put on the model.
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// The concept store.
    #[arg(long)]
    db: PathBuf,
    /// The query image.
    #[arg(long)]
    image: Option<PathBuf>,
    /// The question.
    question: String,
    /// References retrieved by image (name matches come on top). RAP: 1 for questions, 2 for captions.
    #[arg(long, default_value_t = 1)]
    top_k: usize,
    /// Minimum cosine of an image match.
    #[arg(long)]
    threshold: Option<f32>,
    /// Tokens to generate at most.
    #[arg(long, default_value_t = 256)]
    max_new_tokens: usize,
    /// Print `{"answer", "references", "prompt"}` as JSON.
    #[arg(long)]
    json: bool,
}

/// Run `repic ask`.
pub fn run(a: Args) -> anyhow::Result<()> {
    let opts = RetrieveOptions { top_k: a.top_k, per_crop: 2, threshold: a.threshold };
    opts.validate()?;
    let dev = device();
    let mut store = SqliteStore::open(&a.db)?;
    let (bar, mut update) = crate::db::embed_bar();
    let (retriever, _) = Retriever::<Backend>::open(&mut store, None, &dev, &mut update)?;
    bar.finish_and_clear();
    let image = a.image.as_deref().map(open_rgb).transpose()?;
    let found = retriever.rap(image.as_ref(), &a.question, &CropSource::Whole, &opts)?;
    let refs = retriever.prompt_references(&found.results);
    let query = a.image.as_ref().map(|p| p.to_string_lossy().into_owned());
    let turn = reference_turn(&refs, query.as_deref(), &a.question);
    let ckpt = load_model(&a.model, a.adapter.as_deref())?;
    let prepared = ckpt.prepare(&[turn], Path::new(""))?;
    let gen_opts = GenerateOptions {
        max_new_tokens: a.max_new_tokens,
        sampling: SamplingOptions::default(),
        stop_tokens: ckpt.stop_tokens.clone(),
        ..Default::default()
    };
    let out = ckpt.engine(&dev).generate(&prepared.input, &gen_opts)?;
    if a.json {
        let v = serde_json::json!({"answer": out.text, "references": found.results, "prompt": prepared.prompt});
        println!("{v}");
    } else {
        for r in &found.results {
            let how = r.score.map_or("named in the question".to_string(), |s| format!("image match {s:.3}"));
            eprintln!("reference {} ({how})", r.key);
        }
        println!("{}", out.text);
    }
    Ok(())
}
