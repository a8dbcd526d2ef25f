//! A store opened for retrieval: its encoder loaded, its embeddings brought up to date, its keys on the
//! backend; RAP and R2P queries on a query image.

use burn::tensor::backend::Backend;
use image::RgbImage;
use repic_data::PromptReference;
use serde::Serialize;

use crate::crops::{CropBox, CropSource, crop_boxes, cut};
use crate::encoder::{Encoder, SyncReport, sync_embeddings};
use crate::retrieve::{KeyIndex, Reference, RetrieveOptions};
use crate::store::ConceptStore;
use crate::{PersonalizeError, Result};

/// What a RAP query found and where it looked.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Retrieval {
    /// References in prompt order: name matches, then image matches best first.
    pub results: Vec<Reference>,
    /// The query crops that were embedded.
    pub crops: Vec<CropBox>,
}

/// Retrieval over one store with its encoder.
pub struct Retriever<B: Backend> {
    encoder: Encoder<B>,
    index: KeyIndex<B>,
    root: std::path::PathBuf,
}

impl<B: Backend> Retriever<B> {
    /// Load the store's encoder (`clip` overrides the one it names), embed what is not embedded yet (new or
    /// changed images and descriptions only; everything after a change of encoder), and load the keys.
    pub fn open(
        store: &mut dyn ConceptStore,
        clip: Option<&std::path::Path>,
        device: &B::Device,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<(Self, SyncReport)> {
        let encoder = Encoder::for_store(store, clip, device)?.ok_or_else(|| PersonalizeError::Store {
            path: store.root().into(),
            msg: "names no encoder; give one with `repic db init --clip DIR` or `repic db embed --clip DIR`".into(),
        })?;
        let report = sync_embeddings(store, &encoder, progress)?;
        let index = KeyIndex::load(store, &encoder.reference().id, encoder.dim(), device)?;
        Ok((Retriever { encoder, index, root: store.root().to_path_buf() }, report))
    }

    /// The keys.
    pub fn index(&self) -> &KeyIndex<B> {
        &self.index
    }

    /// The encoder.
    pub fn encoder(&self) -> &Encoder<B> {
        &self.encoder
    }

    /// RAP: name matches in `text`, then the nearest images of the crops of `image` (none without an image).
    pub fn rap(
        &self,
        image: Option<&RgbImage>,
        text: &str,
        crops: &CropSource,
        opts: &RetrieveOptions,
    ) -> Result<Retrieval> {
        let boxes = image.map(|img| crop_boxes(crops, img.dimensions())).unwrap_or_default();
        let embeds = match image {
            Some(img) if !boxes.is_empty() => Some(self.encoder.image_tensor(&cut(img, &boxes))),
            _ => None,
        };
        Ok(Retrieval { results: self.index.rap(embeds, text, opts)?, crops: boxes })
    }

    /// The prompt entries of `refs` (RePIC's format, [`repic_data::reference_turn`]): each concept's key, the
    /// store's copy of the image that was matched (or its first image for a name match) and its description. A
    /// concept imported without image files goes in as text only.
    pub fn prompt_references(&self, refs: &[Reference]) -> Vec<PromptReference> {
        refs.iter()
            .filter_map(|r| {
                let c = self.index.concepts().iter().find(|c| c.key == r.key)?;
                let img = c.images.iter().find(|i| i.path == r.image).or(c.images.first());
                let image = img.and_then(|i| i.file.as_ref()).map(|f| self.root.join(f).to_string_lossy().into_owned());
                Some(PromptReference { key: c.key.clone(), image, info: c.info_text() })
            })
            .collect()
    }

    /// R2P's shortlist of `k` for `image`.
    pub fn r2p(&self, image: &RgbImage, k: usize) -> Result<Vec<Reference>> {
        self.index.r2p(self.encoder.image_tensor(std::slice::from_ref(image)), k)
    }
}
