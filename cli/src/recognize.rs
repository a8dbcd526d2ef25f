//! `repic recognize`: which concept of a store is in a query image, by R2P (retrieval shortlist, attribute
//! reasoning, CLIP verification, pairwise check), with the trace of which stage decided.

use std::path::PathBuf;

use repic_models::{DefaultBackend as Backend, default_device as device};
use repic_personalize::r2p::{R2pOptions, recognize};
use repic_personalize::{Retriever, SqliteStore};

/// `repic recognize`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: crate::prompt::ModelArgs,
    /// The concept store.
    #[arg(long)]
    db: PathBuf,
    /// The query image.
    #[arg(long)]
    image: PathBuf,
    /// Shortlist size (1 to 5; R2P: 3).
    #[arg(long, default_value_t = 3)]
    shortlist: usize,
    /// Token limit of stage 1's reasoning.
    #[arg(long, default_value_t = 256)]
    max_new_tokens: usize,
    /// Print the whole trace as JSON.
    #[arg(long)]
    json: bool,
}

/// Run `repic recognize`.
pub fn run(a: Args) -> anyhow::Result<()> {
    let dev = device();
    let mut store = SqliteStore::open(&a.db)?;
    let (bar, mut update) = crate::db::embed_bar();
    let (retriever, _) = Retriever::<Backend>::open(&mut store, None, &dev, &mut update)?;
    bar.finish_and_clear();
    let ckpt = a.model.load()?;
    let opts = R2pOptions { shortlist: a.shortlist, max_new_tokens: a.max_new_tokens, ..Default::default() };
    let r = recognize(&repic_personalize::LocalVlm { ckpt: &ckpt, device: &dev }, &retriever, &a.image, &opts)?;
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!("{}", r.key);
        eprintln!("decided by {:?}: {}", r.decided_by, r.reason);
    }
    Ok(())
}
