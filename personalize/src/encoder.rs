//! The retrieval encoder: a Hugging Face CLIP folder (weights, processor, tokenizer) with an id that changes
//! when its files change, and the step that brings a store's embeddings up to date with it.

use std::io::Read;
use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use image::RgbImage;
use repic_models::{Clip, ClipProcessor, ClipTokenizer};
use sha2::{Digest, Sha256};

use crate::store::{ConceptStore, EmbeddingKind, EncoderRef, hash_bytes};
use crate::{PersonalizeError, Result};

/// Images embedded per forward pass.
const BATCH: usize = 16;

/// The files that make an encoder: config, processor, tokenizer and every safetensors file, sorted.
fn encoder_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> =
        ["config.json", "preprocessor_config.json", "tokenizer.json"].iter().map(|f| dir.join(f)).collect();
    let entries = std::fs::read_dir(dir).map_err(|e| PersonalizeError::io(dir, e))?;
    let mut weights: Vec<PathBuf> =
        entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "safetensors")).collect();
    if weights.is_empty() {
        return Err(PersonalizeError::invalid(dir.display().to_string(), "holds no *.safetensors weights"));
    }
    weights.sort();
    files.extend(weights);
    Ok(files)
}

/// Sizes and modification times of the encoder's files (cheap to recompute; equal stamps reuse the id).
pub fn encoder_stamp(dir: &Path) -> Result<String> {
    let mut out = String::new();
    for f in encoder_files(dir)? {
        let m = std::fs::metadata(&f).map_err(|e| PersonalizeError::io(&f, e))?;
        let t =
            m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
        out.push_str(&format!("{}:{}:{t};", f.file_name().unwrap_or_default().to_string_lossy(), m.len()));
    }
    Ok(out)
}

/// SHA-256 over the encoder's files (names and contents).
pub fn encoder_id(dir: &Path) -> Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    for f in encoder_files(dir)? {
        h.update(f.file_name().unwrap_or_default().to_string_lossy().as_bytes());
        let mut file = std::fs::File::open(&f).map_err(|e| PersonalizeError::io(&f, e))?;
        loop {
            let n = file.read(&mut buf).map_err(|e| PersonalizeError::io(&f, e))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// CLIP with its processor and tokenizer: image and text embeddings, L2-normalised.
pub struct Encoder<B: Backend> {
    clip: Clip<B>,
    processor: ClipProcessor,
    tokenizer: ClipTokenizer,
    reference: EncoderRef,
    device: B::Device,
}

impl<B: Backend> Encoder<B> {
    /// Load the CLIP folder `dir`; its id is taken from `known` when that names the same folder with the same
    /// stamp, and computed (hashing the weights) otherwise.
    pub fn load(dir: &Path, known: Option<&EncoderRef>, device: &B::Device) -> Result<Self> {
        let dir = std::fs::canonicalize(dir).map_err(|e| PersonalizeError::io(dir, e))?;
        let stamp = encoder_stamp(&dir)?;
        let id = match known {
            Some(k) if k.dir == dir && k.stamp == stamp => k.id.clone(),
            _ => encoder_id(&dir)?,
        };
        Ok(Encoder {
            clip: Clip::load(&dir, device)?,
            processor: ClipProcessor::load(&dir)?,
            tokenizer: ClipTokenizer::load(&dir)?,
            reference: EncoderRef { dir, id, stamp },
            device: device.clone(),
        })
    }

    /// The encoder of `store`: `clip` when given (it becomes the store's encoder at the next sync), else the one
    /// the store names; `None` when neither names one.
    pub fn for_store(store: &dyn ConceptStore, clip: Option<&Path>, device: &B::Device) -> Result<Option<Self>> {
        let known = store.encoder()?;
        let dir = match (clip, &known) {
            (Some(d), _) => d.to_path_buf(),
            (None, Some(k)) => k.dir.clone(),
            (None, None) => return Ok(None),
        };
        Ok(Some(Self::load(&dir, known.as_ref(), device)?))
    }

    /// The store's record of this encoder.
    pub fn reference(&self) -> &EncoderRef {
        &self.reference
    }

    /// Embedding width.
    pub fn dim(&self) -> usize {
        self.clip.config().projection_dim
    }

    /// The device embeddings are computed on.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// Image embeddings `[N, D]` (one forward pass).
    pub fn image_tensor(&self, images: &[RgbImage]) -> Tensor<B, 2> {
        let mut px = Vec::new();
        for img in images {
            px.extend(self.processor.process(img));
        }
        let width = px.len() / images.len().max(1);
        self.clip.image_embeds(Tensor::from_data(TensorData::new(px, [images.len(), width]), &self.device))
    }

    /// Image embeddings as rows.
    pub fn embed_images(&self, images: &[RgbImage]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::new();
        for chunk in images.chunks(BATCH) {
            let flat = to_vec(self.image_tensor(chunk))?;
            out.extend(flat.chunks(self.dim()).map(<[f32]>::to_vec));
        }
        Ok(out)
    }

    /// Text embedding `[1, D]`; text longer than CLIP's context keeps its first tokens and the end token.
    pub fn text_tensor(&self, text: &str) -> Result<Tensor<B, 2>> {
        let mut ids = self.tokenizer.encode(text)?;
        let max = self.clip.config().text.max_position_embeddings;
        if ids.len() > max {
            let end = *ids.last().expect("longer than max");
            ids.truncate(max - 1);
            ids.push(end);
        }
        Ok(self.clip.text_embed(&ids)?)
    }
}

/// A tensor's values as f32.
pub(crate) fn to_vec<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| PersonalizeError::Model(repic_models::ModelError::Input(format!("{e:?}"))))
}

/// Open an image file as RGB, naming the file on failure.
pub fn open_rgb(path: &Path) -> Result<RgbImage> {
    Ok(image::open(path).map_err(|e| PersonalizeError::Image { path: path.into(), msg: e.to_string() })?.to_rgb8())
}

/// What [`sync_embeddings`] computed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Image embeddings computed.
    pub images: usize,
    /// Description embeddings computed.
    pub texts: usize,
    /// Images without a file in the store (imported paths only), which retrieval cannot use.
    pub without_file: usize,
}

/// Bring the store up to date with `enc`: record it as the store's encoder (dropping other encoders'
/// embeddings), then embed every stored image and every concept description that has no embedding by it yet.
/// `progress(done, total)` is called after each batch.
pub fn sync_embeddings<B: Backend>(
    store: &mut dyn ConceptStore,
    enc: &Encoder<B>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<SyncReport> {
    if store.encoder()?.as_ref() != Some(enc.reference()) {
        store.set_encoder(enc.reference())?;
    }
    let id = enc.reference().id.clone();
    let have_img = store.embeddings(EmbeddingKind::Image, &id)?;
    let have_txt = store.embeddings(EmbeddingKind::Text, &id)?;
    let mut report = SyncReport::default();
    let mut todo_img: Vec<(String, PathBuf)> = Vec::new();
    let mut todo_txt: Vec<(String, String)> = Vec::new();
    for c in store.concepts()? {
        for img in &c.images {
            match (&img.hash, &img.file) {
                (Some(h), Some(f)) if !have_img.contains_key(h) && !todo_img.iter().any(|(x, _)| x == h) => {
                    todo_img.push((h.clone(), store.root().join(f)));
                }
                (None, _) | (_, None) => report.without_file += 1,
                _ => {}
            }
        }
        let text = c.info_text();
        let h = hash_bytes(text.as_bytes());
        if !have_txt.contains_key(&h) && !todo_txt.iter().any(|(x, _)| *x == h) {
            todo_txt.push((h, text));
        }
    }
    let total = todo_img.len() + todo_txt.len();
    let mut done = 0;
    for chunk in todo_img.chunks(BATCH) {
        let imgs = chunk.iter().map(|(_, p)| open_rgb(p)).collect::<Result<Vec<_>>>()?;
        let rows = enc.embed_images(&imgs)?;
        let items: Vec<(String, Vec<f32>)> = chunk.iter().map(|(h, _)| h.clone()).zip(rows).collect();
        store.put_embeddings(EmbeddingKind::Image, &id, &items)?;
        done += chunk.len();
        report.images += chunk.len();
        progress(done, total);
    }
    for chunk in todo_txt.chunks(BATCH) {
        let mut items = Vec::new();
        for (h, text) in chunk {
            items.push((h.clone(), to_vec(enc.text_tensor(text)?)?));
        }
        store.put_embeddings(EmbeddingKind::Text, &id, &items)?;
        done += chunk.len();
        report.texts += chunk.len();
        progress(done, total);
    }
    Ok(report)
}
