//! `repic ask`: answer a question about an image with the concepts of a store: RAP retrieval (names in the
//! question first, then the nearest reference images), RePIC's prompt, greedy decoding.

use std::path::{Path, PathBuf};

use repic_data::reference_turn;
use repic_models::{DefaultBackend as Backend, GenerateOptions, SamplingOptions, default_device as device};
use repic_personalize::ground::ground;
use repic_personalize::{CropSource, RetrieveOptions, Retriever, SqliteStore, open_rgb};

/// `repic ask`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: crate::prompt::ModelArgs,
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
    /// Crop the query at the boxes the model itself gives for the store's categories (the VLM as RAP's
    /// detector) instead of embedding the whole image.
    #[arg(long, requires = "image")]
    detect: bool,
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
    let ckpt = a.model.load()?;
    let image = a.image.as_deref().map(open_rgb).transpose()?;
    let grounding = match (&a.image, a.detect) {
        (Some(path), true) => {
            let mut cats: Vec<String> =
                retriever.index().concepts().iter().filter_map(|c| c.category.clone()).collect();
            cats.sort();
            cats.dedup();
            Some(ground(&ckpt, path, &cats, &dev)?)
        }
        _ => None,
    };
    let crops = grounding.as_ref().map_or(CropSource::Whole, |g| g.crops.clone());
    let found = retriever.rap(image.as_ref(), &a.question, &crops, &opts)?;
    let refs = retriever.prompt_references(&found.results);
    let query = a.image.as_ref().map(|p| p.to_string_lossy().into_owned());
    let turn = reference_turn(&refs, query.as_deref(), &a.question);
    let prepared = ckpt.prepare(&[turn], Path::new(""))?;
    let gen_opts = GenerateOptions {
        max_new_tokens: a.max_new_tokens,
        sampling: SamplingOptions::default(),
        stop_tokens: ckpt.stop_tokens.clone(),
        ..Default::default()
    };
    let out = ckpt.engine(&dev).generate(&prepared.input, &gen_opts)?;
    if a.json {
        let v = serde_json::json!({"answer": out.text, "references": found.results, "crops": found.crops,
            "grounding": grounding.map(|g| g.answer), "prompt": prepared.prompt});
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
