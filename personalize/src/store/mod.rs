//! The concept store: concepts (key, display name, category, info, R2P fingerprint), their reference images
//! (copied into the store's folder, named by content hash) and their embeddings (f32 vectors keyed by image or
//! text hash and encoder id), behind one trait so that another database can take SQLite's place
//! (`docs/concept-store.md`).

mod files;
mod json;
mod schema;
mod sqlite;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use repic_data::{Concept, ConceptDb, Fingerprint, Images, Info};
use serde_json::{Map, Value};

use crate::Result;

pub use files::{check_image_bytes, check_key, check_rel_path, hash_bytes};
pub use json::{export_file, export_images, import_file};
pub use sqlite::SqliteStore;

/// One reference image of a concept.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredImage {
    /// The path as database.json spells it (relative, e.g. `./data/bo.png`).
    pub path: String,
    /// SHA-256 of the file's bytes (hex); `None` for an entry imported without its image file.
    pub hash: Option<String>,
    /// The copy inside the store, relative to its folder (`images/<hash>.<ext>`); `None` with `hash`.
    pub file: Option<String>,
}

/// A concept as the store holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredConcept {
    /// Bracketed key (`<bo>`).
    pub key: String,
    /// Display name.
    pub name: String,
    /// Category (a detector class for RAP, the noun of R2P's prompts).
    pub category: Option<String>,
    /// Free-text info (RAP); `None` when the database gave a fingerprint object as info (R2P).
    pub info: Option<String>,
    /// R2P fingerprint (extracted by the VLM, or the info object of an R2P database).
    pub fingerprint: Option<Fingerprint>,
    /// Reference images in order.
    pub images: Vec<StoredImage>,
    /// Whether database.json spells `image` as a list (R2P) rather than one string (RAP).
    pub image_list: bool,
    /// Keys of the concept's JSON entry that repic does not interpret, kept for round trips.
    pub extra: Map<String, Value>,
}

impl StoredConcept {
    /// The description put into prompts: the info text, else the fingerprint as text.
    pub fn info_text(&self) -> String {
        match (&self.info, &self.fingerprint) {
            (Some(t), _) => t.clone(),
            (None, Some(f)) => Info::Fingerprint(f.clone()).as_text(),
            (None, None) => String::new(),
        }
    }

    /// The key without its angle brackets.
    pub fn bare_key(&self) -> &str {
        self.key.trim_start_matches('<').trim_end_matches('>')
    }

    /// The concept as a database.json entry.
    pub fn to_concept(&self) -> Concept {
        let paths: Vec<String> = self.images.iter().map(|i| i.path.clone()).collect();
        let image = match (self.image_list, paths.as_slice()) {
            (false, [one]) => Images::One(one.clone()),
            _ => Images::Many(paths),
        };
        let info = match (&self.info, &self.fingerprint) {
            (Some(t), _) => Info::Text(t.clone()),
            (None, Some(f)) => Info::Fingerprint(f.clone()),
            (None, None) => Info::Text(String::new()),
        };
        Concept { name: self.name.clone(), image, info, category: self.category.clone(), extra: self.extra.clone() }
    }
}

/// A concept to add: its image files are read, checked and copied into the store.
#[derive(Clone, Debug, Default)]
pub struct NewConcept {
    /// Bracketed key (`<bo>`).
    pub key: String,
    /// Display name (defaults to the bare key when empty).
    pub name: String,
    /// Category.
    pub category: Option<String>,
    /// Info text.
    pub info: String,
    /// R2P fingerprint, if already extracted.
    pub fingerprint: Option<Fingerprint>,
    /// Image files to copy in (at least one).
    pub images: Vec<PathBuf>,
}

/// Changes to a concept; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct ConceptEdit {
    /// New display name.
    pub name: Option<String>,
    /// New category (`Some(None)` clears it).
    pub category: Option<Option<String>>,
    /// New info text.
    pub info: Option<String>,
    /// New fingerprint (`Some(None)` clears it).
    pub fingerprint: Option<Option<Fingerprint>>,
    /// Replace every reference image by these files.
    pub images: Option<Vec<PathBuf>>,
    /// Append these image files.
    pub add_images: Vec<PathBuf>,
}

impl ConceptEdit {
    /// Whether the edit changes nothing.
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.category.is_none()
            && self.info.is_none()
            && self.fingerprint.is_none()
            && self.images.is_none()
            && self.add_images.is_empty()
    }
}

/// What import does with the image files a database names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageMode {
    /// Read each image relative to the image root and copy it in; a missing or broken image is an error.
    Copy,
    /// Keep only the paths (no file is read): for databases whose images are elsewhere. Such concepts take part
    /// in name matching and prompts but not in image retrieval until their images are added.
    PathsOnly,
}

/// How to import a database.json.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// Folder the database's image paths are relative to (RAP: the file's folder; RePIC's `database_mod.json`
    /// files: the release's root).
    pub image_root: PathBuf,
    /// Copy the images or keep paths only.
    pub images: ImageMode,
    /// Replace concepts whose key is already in the store (otherwise that is an error and nothing is imported).
    pub replace: bool,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Concepts new to the store.
    pub added: usize,
    /// Concepts that replaced one with the same key.
    pub replaced: usize,
    /// Image files read and stored (a file already in the store counts once).
    pub images: usize,
}

/// The encoder a store's embeddings are made with: its folder and an id that changes when its files change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncoderRef {
    /// The Hugging Face CLIP folder.
    pub dir: PathBuf,
    /// SHA-256 over the encoder's config, processor, tokenizer and weights.
    pub id: String,
    /// Sizes and modification times of those files when `id` was computed: while they match, the id is
    /// reused instead of hashing the weights again.
    pub stamp: String,
}

/// What an embedding embeds: a reference image (keyed by the image's hash) or a description (keyed by the
/// text's hash).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EmbeddingKind {
    /// `f_V`: the image embedding.
    Image,
    /// `f_T`: the text embedding of the concept's description (R2P).
    Text,
}

impl EmbeddingKind {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            EmbeddingKind::Image => "image",
            EmbeddingKind::Text => "text",
        }
    }
}

/// A concept store. Every write is one transaction: after a crash the store holds the last committed state,
/// and readers never see half an edit.
pub trait ConceptStore {
    /// The store's folder.
    fn root(&self) -> &Path;
    /// Every concept, in insertion order.
    fn concepts(&self) -> Result<Vec<StoredConcept>>;
    /// One concept.
    fn concept(&self, key: &str) -> Result<StoredConcept>;
    /// Add a concept (its key must be new).
    fn add(&mut self, concept: &NewConcept) -> Result<StoredConcept>;
    /// Change a concept; returns it as changed.
    fn edit(&mut self, key: &str, edit: &ConceptEdit) -> Result<StoredConcept>;
    /// Remove a concept; returns it as it was.
    fn remove(&mut self, key: &str) -> Result<StoredConcept>;
    /// Import a RAP/R2P database in one transaction.
    fn import(&mut self, db: &ConceptDb, opts: &ImportOptions) -> Result<ImportReport>;
    /// The store as a database.json (the form it was imported in: RAP or R2P).
    fn export(&self) -> Result<ConceptDb>;
    /// A number that grows with every committed change (edits, imports, embeddings), from any process.
    fn version(&self) -> Result<u64>;
    /// The encoder the store's embeddings are made with.
    fn encoder(&self) -> Result<Option<EncoderRef>>;
    /// Name the encoder; embeddings made by any other encoder are deleted (a new encoder re-embeds all).
    fn set_encoder(&mut self, encoder: &EncoderRef) -> Result<()>;
    /// Stored embeddings of `kind` by `encoder`, by hash.
    fn embeddings(&self, kind: EmbeddingKind, encoder: &str) -> Result<HashMap<String, Vec<f32>>>;
    /// Store embeddings (hash, vector) in one transaction.
    fn put_embeddings(&mut self, kind: EmbeddingKind, encoder: &str, items: &[(String, Vec<f32>)]) -> Result<()>;
    /// The absolute path of a stored image's copy (an error for an image imported without its file).
    fn image_file(&self, concept: &str, image: &StoredImage) -> Result<PathBuf> {
        match &image.file {
            Some(f) => Ok(self.root().join(f)),
            None => Err(crate::PersonalizeError::invalid(
                format!("{concept} image {}", image.path),
                "was imported without its file (paths only); add the image with `repic db edit --image`",
            )),
        }
    }
}
