//! `repic db`: create and edit a concept store (SQLite + images + embeddings), import and export RAP/R2P
//! `database.json` files, and keep the store's embeddings in step with its encoder.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args as ClapArgs, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use repic_data::Fingerprint;
use repic_models::{DefaultBackend as Backend, default_device};
use repic_personalize::store::{export_file, import_file};
use repic_personalize::{
    ConceptEdit, ConceptStore, Encoder, ImageMode, ImportOptions, NewConcept, SqliteStore, sync_embeddings,
};

/// `repic db` subcommands.
#[derive(Subcommand)]
pub enum DbCommand {
    /// Create a store (a folder); `--clip` names the retrieval encoder, a Hugging Face CLIP folder.
    Init {
        /// The store's folder.
        store: PathBuf,
        /// CLIP folder (config.json, *.safetensors, preprocessor_config.json, tokenizer.json).
        #[arg(long)]
        clip: Option<PathBuf>,
    },
    /// Import a RAP / R2P database.json (one transaction: all or nothing).
    Import {
        /// The store.
        store: PathBuf,
        /// The database.json.
        file: PathBuf,
        /// Folder the file's image paths are relative to (default: the file's folder).
        #[arg(long)]
        image_root: Option<PathBuf>,
        /// Keep image paths without reading the images (for databases whose images are not at hand).
        #[arg(long)]
        paths_only: bool,
        /// Replace concepts already in the store instead of refusing the import.
        #[arg(long)]
        replace: bool,
    },
    /// Write the store as a database.json (RAP or R2P form, as imported), atomically.
    Export {
        /// The store.
        store: PathBuf,
        /// Output file.
        file: PathBuf,
        /// Also write the images, at their paths relative to the output file's folder.
        #[arg(long)]
        images: bool,
    },
    /// Add a concept from image files, a name and info text.
    Add(AddArgs),
    /// Change a concept's name, category, info, fingerprint or images.
    Edit(EditArgs),
    /// Remove a concept.
    Rm {
        /// The store.
        store: PathBuf,
        /// The concept key, e.g. `<bo>`.
        key: String,
    },
    /// List the concepts.
    List {
        /// The store.
        store: PathBuf,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Embed every image and description not embedded yet by the store's encoder (or by `--clip`, which
    /// becomes the store's encoder and re-embeds everything).
    Embed {
        /// The store.
        store: PathBuf,
        /// A new encoder.
        #[arg(long)]
        clip: Option<PathBuf>,
    },
}

/// `repic db add`.
#[derive(ClapArgs)]
pub struct AddArgs {
    /// The store.
    store: PathBuf,
    /// The concept key, e.g. `<bo>`.
    #[arg(long)]
    key: String,
    /// Reference image (repeat for several).
    #[arg(long = "image", required = true)]
    images: Vec<PathBuf>,
    /// Display name (default: the key without brackets).
    #[arg(long, default_value = "")]
    name: String,
    /// Category, e.g. `dog`.
    #[arg(long)]
    category: Option<String>,
    /// Info text.
    #[arg(long, default_value = "")]
    info: String,
    /// An R2P fingerprint as a JSON file (`{"general", "category", "distinct features"}`).
    #[arg(long, conflicts_with = "fingerprint")]
    fingerprint_json: Option<PathBuf>,
    /// Extract the R2P fingerprint with the VLM `--model` from the first image (an unreadable answer is an
    /// error, and nothing is added).
    #[arg(long, requires = "model")]
    fingerprint: bool,
    /// The VLM for `--fingerprint` (model folder, PEFT adapter, checkpoint or run folder).
    #[arg(long)]
    model: Option<PathBuf>,
}

/// `repic db edit`.
#[derive(ClapArgs)]
pub struct EditArgs {
    /// The store.
    store: PathBuf,
    /// The concept key.
    key: String,
    /// New display name.
    #[arg(long)]
    name: Option<String>,
    /// New category.
    #[arg(long)]
    category: Option<String>,
    /// New info text.
    #[arg(long)]
    info: Option<String>,
    /// Replace the images by these (repeat).
    #[arg(long = "image")]
    images: Vec<PathBuf>,
    /// Append these images (repeat).
    #[arg(long = "add-image")]
    add_images: Vec<PathBuf>,
    /// A new R2P fingerprint as a JSON file.
    #[arg(long, conflicts_with = "clear_fingerprint")]
    fingerprint_json: Option<PathBuf>,
    /// Remove the fingerprint.
    #[arg(long)]
    clear_fingerprint: bool,
}

/// Read an R2P fingerprint file, naming it on error.
fn read_fingerprint(path: &Path) -> anyhow::Result<Fingerprint> {
    let src = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&src).map_err(|e| {
        anyhow::anyhow!(
            "{}:{}: not an R2P fingerprint ({e}); expected {{\"general\": ..., \"category\": ..., \
             \"distinct features\": [...]}}",
            path.display(),
            e.line()
        )
    })
}

/// A progress bar for embedding (hidden when nothing is to be done).
pub fn embed_bar() -> (ProgressBar, impl FnMut(usize, usize)) {
    let bar = ProgressBar::hidden();
    bar.set_style(ProgressStyle::with_template("embedding {bar:30} {pos}/{len} {elapsed}").expect("static template"));
    let b = bar.clone();
    let update = move |done: usize, total: usize| {
        if b.is_hidden() && total > 0 {
            b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
        b.set_length(total as u64);
        b.set_position(done as u64);
    };
    (bar, update)
}

/// Embed what is missing when the store names an encoder (after an edit: only what changed).
fn sync(store: &mut SqliteStore, clip: Option<&Path>) -> anyhow::Result<()> {
    let Some(enc) = Encoder::<Backend>::for_store(store, clip, &default_device())? else { return Ok(()) };
    let (bar, mut update) = embed_bar();
    let r = sync_embeddings(store, &enc, &mut update)?;
    bar.finish_and_clear();
    if r.images + r.texts > 0 {
        eprintln!("embedded {} images and {} descriptions with {}", r.images, r.texts, enc.reference().dir.display());
    }
    if r.without_file > 0 {
        eprintln!("{} images were imported as paths only and take no part in image retrieval", r.without_file);
    }
    Ok(())
}

/// Run a `repic db` subcommand.
pub fn run(cmd: DbCommand) -> anyhow::Result<()> {
    match cmd {
        DbCommand::Init { store, clip } => {
            let mut s = SqliteStore::create(&store)?;
            sync(&mut s, clip.as_deref())?;
            println!("created the concept store {}", store.display());
        }
        DbCommand::Import { store, file, image_root, paths_only, replace } => {
            let mut s = SqliteStore::open(&store)?;
            let images = if paths_only { ImageMode::PathsOnly } else { ImageMode::Copy };
            let opts = ImportOptions { image_root: image_root.unwrap_or_default(), images, replace };
            let r = import_file(&mut s, &file, &opts)?;
            println!("imported {} new and {} replaced concepts, {} images", r.added, r.replaced, r.images);
            sync(&mut s, None)?;
        }
        DbCommand::Export { store, file, images } => {
            let s = SqliteStore::open(&store)?;
            let (written, skipped) = export_file(&s, &file, images)?;
            println!("wrote {}", file.display());
            if images {
                println!("wrote {written} images; {skipped} had no file (imported as paths only)");
            }
        }
        DbCommand::Add(a) => {
            let mut s = SqliteStore::open(&a.store)?;
            let mut fingerprint = a.fingerprint_json.as_deref().map(read_fingerprint).transpose()?;
            if a.fingerprint {
                let model = a.model.as_deref().expect("clap requires --model with --fingerprint");
                let ckpt = crate::prompt::load_model(model, None)?;
                let name = if a.name.is_empty() { a.key.clone() } else { a.name.clone() };
                let cat = a.category.as_deref().unwrap_or("object");
                let f =
                    repic_personalize::r2p::extract_fingerprint(&ckpt, &a.images[0], cat, &name, &default_device())?;
                eprintln!("fingerprint: {}", serde_json::to_string(&f)?);
                fingerprint = Some(f);
            }
            let c = NewConcept {
                key: a.key,
                name: a.name,
                category: a.category,
                info: a.info,
                fingerprint,
                images: a.images,
            };
            let added = s.add(&c)?;
            println!("added {} with {} images", added.key, added.images.len());
            sync(&mut s, None)?;
        }
        DbCommand::Edit(a) => {
            let mut s = SqliteStore::open(&a.store)?;
            let fingerprint = match (a.fingerprint_json, a.clear_fingerprint) {
                (Some(p), _) => Some(Some(read_fingerprint(&p)?)),
                (None, true) => Some(None),
                (None, false) => None,
            };
            let edit = ConceptEdit {
                name: a.name,
                category: a.category.map(Some),
                info: a.info,
                fingerprint,
                images: (!a.images.is_empty()).then_some(a.images),
                add_images: a.add_images,
            };
            if edit.is_empty() {
                anyhow::bail!(
                    "nothing to change: give --name, --category, --info, --image, --add-image or a fingerprint"
                );
            }
            let c = s.edit(&a.key, &edit)?;
            println!("edited {} ({} images)", c.key, c.images.len());
            sync(&mut s, None)?;
        }
        DbCommand::Rm { store, key } => {
            let mut s = SqliteStore::open(&store)?;
            s.remove(&key)?;
            println!("removed {key}");
        }
        DbCommand::List { store, json } => {
            let s = SqliteStore::open(&store)?;
            for c in s.concepts()? {
                if json {
                    let line = serde_json::json!({
                        "key": c.key, "name": c.name, "category": c.category, "info": c.info_text(),
                        "images": c.images.iter().map(|i| &i.path).collect::<Vec<_>>(),
                        "fingerprint": c.fingerprint.is_some(),
                    });
                    println!("{line}");
                } else {
                    let cat = c.category.as_deref().unwrap_or("-");
                    println!("{}\t{}\t{cat}\t{} images\t{}", c.key, c.name, c.images.len(), c.info_text());
                }
            }
        }
        DbCommand::Embed { store, clip } => {
            let mut s = SqliteStore::open(&store)?;
            if clip.is_none() && s.encoder()?.is_none() {
                anyhow::bail!("{} names no encoder: give --clip DIR", store.display());
            }
            sync(&mut s, clip.as_deref())?;
        }
    }
    Ok(())
}
