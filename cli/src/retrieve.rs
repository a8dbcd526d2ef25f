//! `repic retrieve`: RAP (or R2P) retrieval from a concept store for a query image and text.

use std::path::PathBuf;

use clap::{Args as ClapArgs, ValueEnum};
use repic_models::{DefaultBackend as Backend, default_device};
use repic_personalize::{CropSource, RetrieveOptions, Retriever, SqliteStore, open_rgb};
use repic_rewards::VltCoords;

/// Frame of the numbers in `--grounding`.
#[derive(Clone, Copy, ValueEnum)]
pub enum Frame {
    /// Pixels of the query image (Qwen2.5-VL).
    Pixels,
    /// 0..1000 (Qwen2-VL).
    Norm1000,
}

/// `repic retrieve`.
#[derive(ClapArgs)]
pub struct Args {
    /// The concept store.
    #[arg(long)]
    db: PathBuf,
    /// The query image.
    #[arg(long)]
    image: Option<PathBuf>,
    /// The user's text: every concept key in it is retrieved by name first.
    #[arg(long, default_value = "")]
    text: String,
    /// Image matches to retrieve (name matches come on top). RAP: 2 for captioning, 1 for VQA.
    #[arg(long, default_value_t = 2)]
    top_k: usize,
    /// Nearest images each crop fetches before merging (RAP: 2).
    #[arg(long, default_value_t = 2)]
    per_crop: usize,
    /// Minimum cosine of an image match.
    #[arg(long)]
    threshold: Option<f32>,
    /// Crop the query at the boxes of this grounding answer (the VLM's VLT output) instead of using the whole
    /// image; no box, no image match.
    #[arg(long)]
    grounding: Option<String>,
    /// Frame of the grounding boxes.
    #[arg(long, value_enum, default_value = "pixels")]
    frame: Frame,
    /// R2P's shortlist (image + description score) instead of RAP's.
    #[arg(long, conflicts_with_all = ["grounding", "text"])]
    r2p: bool,
    /// Print JSON: `{"results": [{"key", "image", "score", "by"}...], "crops": [...]}`.
    #[arg(long)]
    json: bool,
}

/// Run `repic retrieve`.
pub fn run(a: Args) -> anyhow::Result<()> {
    let mut store = SqliteStore::open(&a.db)?;
    let (bar, mut update) = crate::db::embed_bar();
    let (retriever, _) = Retriever::<Backend>::open(&mut store, None, &default_device(), &mut update)?;
    bar.finish_and_clear();
    let image = a.image.as_deref().map(open_rgb).transpose()?;
    let opts = RetrieveOptions { top_k: a.top_k, per_crop: a.per_crop, threshold: a.threshold };
    let out = if a.r2p {
        let Some(img) = &image else { anyhow::bail!("--r2p needs --image") };
        opts.validate()?;
        let results = retriever.r2p(img, a.top_k)?;
        serde_json::json!({ "results": results })
    } else {
        let crops = match a.grounding {
            Some(answer) => {
                let coords = match a.frame {
                    Frame::Pixels => VltCoords::Absolute,
                    Frame::Norm1000 => VltCoords::Norm1000,
                };
                CropSource::Grounding { answer, coords, seen_as: None }
            }
            None => CropSource::Whole,
        };
        serde_json::to_value(retriever.rap(image.as_ref(), &a.text, &crops, &opts)?)?
    };
    if a.json {
        println!("{out}");
    } else {
        for r in out["results"].as_array().into_iter().flatten() {
            let score = r["score"].as_f64().map_or("-".into(), |s| format!("{s:.4}"));
            println!(
                "{}\t{}\t{score}\t{}",
                r["key"].as_str().unwrap_or(""),
                r["by"].as_str().unwrap_or(""),
                r["image"].as_str().unwrap_or("")
            );
        }
    }
    Ok(())
}
