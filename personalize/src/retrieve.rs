//! Retrieval over a store's embeddings: RAP's (name match first, then each query crop's nearest reference
//! images by cosine, merged), and R2P's shortlist score `0.5 * (cos(q, f_V) + cos(q, f_T))`. Every score is
//! an exact cosine of L2-normalised vectors, computed as one matmul on the backend.

use std::collections::HashMap;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use serde::Serialize;

use crate::encoder::to_vec;
use crate::store::{ConceptStore, EmbeddingKind, StoredConcept, hash_bytes};
use crate::{PersonalizeError, Result};

/// How a reference was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "by")]
pub enum Via {
    /// Its key occurs in the user's text.
    Name,
    /// Image similarity to query crop `crop` (0 = the first crop; the whole image when there is one crop).
    Image {
        /// Index of the crop.
        crop: usize,
    },
    /// R2P's image + description score.
    Fingerprint,
}

/// One retrieved reference: a concept, the image that stands for it, and its score.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Reference {
    /// Concept key (`<bo>`).
    pub key: String,
    /// The reference image's database path.
    pub image: String,
    /// Cosine similarity (R2P: the mean of image and text cosines); `None` for a name match.
    pub score: Option<f32>,
    /// Why it was chosen.
    #[serde(flatten)]
    pub via: Via,
}

/// RAP's retrieval settings.
#[derive(Clone, Copy, Debug)]
pub struct RetrieveOptions {
    /// References retrieved by image (name matches come on top, uncapped). RAP: 2 for captioning, 1 for VQA.
    pub top_k: usize,
    /// Nearest images each crop fetches before merging (RAP: 2).
    pub per_crop: usize,
    /// Minimum cosine for an image match (RAP has none).
    pub threshold: Option<f32>,
}

impl Default for RetrieveOptions {
    fn default() -> Self {
        RetrieveOptions { top_k: 2, per_crop: 2, threshold: None }
    }
}

impl RetrieveOptions {
    /// Check ranges.
    pub fn validate(&self) -> Result<()> {
        if self.per_crop == 0 {
            return Err(PersonalizeError::invalid("per_crop", "must be at least 1"));
        }
        if let Some(t) = self.threshold
            && !(-1.0..=1.0).contains(&t)
        {
            return Err(PersonalizeError::invalid("threshold", format!("{t} is not a cosine in [-1, 1]")));
        }
        Ok(())
    }
}

/// The keys of a store: every concept, the image embeddings (one row per reference image) and, for R2P, one
/// description embedding per concept.
pub struct KeyIndex<B: Backend> {
    concepts: Vec<StoredConcept>,
    image_keys: Option<Tensor<B, 2>>,
    image_rows: Vec<(usize, usize)>,
    text_keys: Option<Tensor<B, 2>>,
}

impl<B: Backend> KeyIndex<B> {
    /// Load the store's embeddings by `encoder` onto `device`. Every stored image file must have one (run
    /// [`crate::sync_embeddings`] after edits); concepts imported without image files take part in name
    /// matching only. Description embeddings are used when every concept has one.
    pub fn load(store: &dyn ConceptStore, encoder: &str, dim: usize, device: &B::Device) -> Result<Self> {
        let concepts = store.concepts()?;
        let images = store.embeddings(EmbeddingKind::Image, encoder)?;
        let texts = store.embeddings(EmbeddingKind::Text, encoder)?;
        let mut rows = Vec::new();
        let mut flat = Vec::new();
        let check = |what: &str, v: &Vec<f32>| {
            if v.len() == dim {
                Ok(())
            } else {
                Err(PersonalizeError::Store {
                    path: store.root().into(),
                    msg: format!("{what}: embedding of width {} where the encoder gives {dim}", v.len()),
                })
            }
        };
        for (ci, c) in concepts.iter().enumerate() {
            for (ii, img) in c.images.iter().enumerate() {
                let Some(h) = &img.hash else { continue };
                let v = images.get(h).ok_or_else(|| PersonalizeError::Store {
                    path: store.root().into(),
                    msg: format!("image {} of {} has no embedding yet; run `repic db embed`", img.path, c.key),
                })?;
                check(&img.path, v)?;
                rows.push((ci, ii));
                flat.extend_from_slice(v);
            }
        }
        let mut text_flat = Vec::new();
        for c in &concepts {
            match texts.get(&hash_bytes(c.info_text().as_bytes())) {
                Some(v) => {
                    check(&c.key, v)?;
                    text_flat.extend_from_slice(v);
                }
                None => {
                    text_flat.clear();
                    break;
                }
            }
        }
        let text = (!text_flat.is_empty()).then_some(text_flat);
        Ok(Self::from_vectors(concepts, rows, flat, text, dim, device))
    }

    /// An index from vectors already in memory: `image_rows[i]` = (concept, image) of row `i` of `images`
    /// (`[rows, dim]` flattened), `texts` one row per concept. Vectors are used as given (unit length expected).
    pub fn from_vectors(
        concepts: Vec<StoredConcept>,
        image_rows: Vec<(usize, usize)>,
        images: Vec<f32>,
        texts: Option<Vec<f32>>,
        dim: usize,
        device: &B::Device,
    ) -> Self {
        let n = image_rows.len();
        let image_keys = (n > 0).then(|| Tensor::from_data(TensorData::new(images, [n, dim]), device));
        let text_keys = texts.map(|t| Tensor::from_data(TensorData::new(t, [concepts.len(), dim]), device));
        KeyIndex { concepts, image_keys, image_rows, text_keys }
    }

    /// The store's concepts, in order.
    pub fn concepts(&self) -> &[StoredConcept] {
        &self.concepts
    }

    /// Reference image rows.
    pub fn len(&self) -> usize {
        self.image_rows.len()
    }

    /// Whether no reference image has an embedding.
    pub fn is_empty(&self) -> bool {
        self.image_rows.is_empty()
    }

    /// For each query row (`[Q, D]`), the `k` most similar reference images as (concept, image, cosine), best
    /// first (ties: earlier rows first).
    pub fn nearest(&self, queries: Tensor<B, 2>, k: usize) -> Result<Vec<Vec<(usize, usize, f32)>>> {
        let q = queries.dims()[0];
        let Some(keys) = &self.image_keys else { return Ok(vec![Vec::new(); q]) };
        let n = self.image_rows.len();
        let scores = to_vec(queries.matmul(keys.clone().transpose()))?;
        Ok(scores
            .chunks(n)
            .map(|row| {
                top_k(row, k).into_iter().map(|(r, s)| (self.image_rows[r].0, self.image_rows[r].1, s)).collect()
            })
            .collect())
    }

    /// RAP: every concept whose key occurs in `text` (in order of occurrence), then the image matches of the
    /// query crops (`[crops, D]`): each crop's `per_crop` nearest images, all merged best first, each new concept
    /// added until `top_k` are retrieved (at or above the threshold, if one is set).
    pub fn rap(&self, crops: Option<Tensor<B, 2>>, text: &str, opts: &RetrieveOptions) -> Result<Vec<Reference>> {
        opts.validate()?;
        let mut out: Vec<Reference> = name_matches(text, &self.concepts)
            .into_iter()
            .map(|ci| {
                let c = &self.concepts[ci];
                Reference { key: c.key.clone(), image: first_image(c), score: None, via: Via::Name }
            })
            .collect();
        let Some(crops) = crops else { return Ok(out) };
        let mut pairs: Vec<(f32, usize, usize, usize)> = Vec::new();
        for (crop, hits) in self.nearest(crops, opts.per_crop)?.into_iter().enumerate() {
            pairs.extend(hits.into_iter().map(|(ci, ii, s)| (s, crop, ci, ii)));
        }
        // Best first; equal scores keep crop order, then index order (a stable sort).
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut retrieved = 0;
        for (s, crop, ci, ii) in pairs {
            if retrieved == opts.top_k {
                break;
            }
            if opts.threshold.is_some_and(|t| s < t) {
                continue;
            }
            let c = &self.concepts[ci];
            if out.iter().any(|r| r.key == c.key) {
                continue;
            }
            out.push(Reference {
                key: c.key.clone(),
                image: c.images[ii].path.clone(),
                score: Some(s),
                via: Via::Image { crop },
            });
            retrieved += 1;
        }
        Ok(out)
    }

    /// R2P's shortlist for one query image embedding (`[1, D]`): per concept `0.5 * (max over its images of
    /// cos(q, f_V) + cos(q, f_T))`, the `k` best, best first. Needs the description embeddings.
    pub fn r2p(&self, query: Tensor<B, 2>, k: usize) -> Result<Vec<Reference>> {
        let text_keys = self.text_keys.as_ref().ok_or_else(|| {
            PersonalizeError::invalid("R2P retrieval", "the store has no description embeddings; run `repic db embed`")
        })?;
        let cos_t = to_vec(query.clone().matmul(text_keys.clone().transpose()))?;
        let mut best_v: HashMap<usize, (f32, usize)> = HashMap::new();
        if let Some(keys) = &self.image_keys {
            let cos_v = to_vec(query.matmul(keys.clone().transpose()))?;
            for (r, s) in cos_v.into_iter().enumerate() {
                let (ci, ii) = self.image_rows[r];
                let e = best_v.entry(ci).or_insert((s, ii));
                if s > e.0 {
                    *e = (s, ii);
                }
            }
        }
        let scored: Vec<f32> = (0..self.concepts.len())
            .map(|ci| best_v.get(&ci).map_or(f32::NEG_INFINITY, |(v, _)| 0.5 * (v + cos_t[ci])))
            .collect();
        Ok(top_k(&scored, k)
            .into_iter()
            .filter(|(_, s)| s.is_finite())
            .map(|(ci, s)| {
                let c = &self.concepts[ci];
                Reference {
                    key: c.key.clone(),
                    image: c.images[best_v[&ci].1].path.clone(),
                    score: Some(s),
                    via: Via::Fingerprint,
                }
            })
            .collect())
    }
}

fn first_image(c: &StoredConcept) -> String {
    c.images.first().map(|i| i.path.clone()).unwrap_or_default()
}

/// Indices and values of the `k` largest values, largest first (ties: lower index first).
pub fn top_k(values: &[f32], k: usize) -> Vec<(usize, f32)> {
    let k = k.min(values.len());
    if k == 0 {
        return Vec::new();
    }
    let order = |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    let mut all: Vec<(usize, f32)> = values.iter().copied().enumerate().collect();
    if k < all.len() {
        all.select_nth_unstable_by(k - 1, order);
        all.truncate(k);
    }
    all.sort_by(order);
    all
}

/// Concepts whose bracketed key occurs in `text`, in order of first occurrence (RAP's name match).
pub fn name_matches(text: &str, concepts: &[StoredConcept]) -> Vec<usize> {
    let mut found: Vec<(usize, usize)> =
        concepts.iter().enumerate().filter_map(|(i, c)| text.find(&c.key).map(|at| (at, i))).collect();
    found.sort();
    found.into_iter().map(|(_, i)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoredImage;

    type B = repic_models::DefaultBackend;

    fn concept(key: &str, images: usize) -> StoredConcept {
        StoredConcept {
            key: key.into(),
            name: key.trim_matches(['<', '>']).into(),
            category: None,
            info: Some(String::new()),
            fingerprint: None,
            images: (0..images)
                .map(|i| StoredImage { path: format!("{key}{i}.png"), hash: Some(format!("{key}{i}")), file: None })
                .collect(),
            image_list: images > 1,
            extra: Default::default(),
        }
    }

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    /// Three concepts (<a> with two images) on the unit circle; queries given as angles.
    fn index() -> KeyIndex<B> {
        let concepts = vec![concept("<a>", 2), concept("<b>", 1), concept("<c>", 1)];
        let rows = vec![(0, 0), (0, 1), (1, 0), (2, 0)];
        let imgs: Vec<f32> = [[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]].concat();
        let texts: Vec<f32> = [[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]].concat();
        KeyIndex::from_vectors(concepts, rows, imgs, Some(texts), 2, &Default::default())
    }

    fn q(rows: &[[f32; 2]]) -> Tensor<B, 2> {
        let flat: Vec<f32> = rows.iter().flat_map(|r| unit(r)).collect();
        Tensor::from_data(TensorData::new(flat, [rows.len(), 2]), &Default::default())
    }

    #[test]
    fn top_k_is_exact_and_stable() {
        assert_eq!(top_k(&[0.1, 0.9, 0.5, 0.9], 3), [(1, 0.9), (3, 0.9), (2, 0.5)]);
        assert_eq!(top_k(&[0.3], 5), [(0, 0.3)]);
        assert!(top_k(&[0.3], 0).is_empty());
    }

    #[test]
    fn rap_merges_crops_and_puts_names_first() {
        let idx = index();
        // Crop 0 points between <a>'s second image and <b>; crop 1 at <c>.
        let crops = q(&[[0.5, 1.0], [-1.0, 0.05]]);
        let opts = RetrieveOptions { top_k: 2, per_crop: 2, threshold: None };
        let refs = idx.rap(Some(crops.clone()), "Where is <c>?", &opts).unwrap();
        let keys: Vec<&str> = refs.iter().map(|r| r.key.as_str()).collect();
        // <c> by name; then the merged pairs best first: crop 1's <c> (0.999, already in), crop 0's <a> image 1
        // and <b> (both 0.894), so <a> comes with its second image, not its first (0.447).
        assert_eq!(refs[0].via, Via::Name);
        assert_eq!(keys.len(), 3, "{refs:?}");
        assert!(keys[1..].contains(&"<a>") && keys[1..].contains(&"<b>"));
        let a = refs.iter().find(|r| r.key == "<a>").unwrap();
        assert_eq!(a.image, "<a>1.png");
        // A threshold above every image score leaves the name match only.
        let strict = RetrieveOptions { threshold: Some(0.99), ..opts };
        let refs = idx.rap(Some(crops), "Where is <c>?", &strict).unwrap();
        // <c> by name; crop 1's near-exact hit on <c> (0.9988) is that same concept; everything else is < 0.99.
        assert_eq!(refs.len(), 1, "{refs:?}");
        assert!(idx.rap(None, "", &RetrieveOptions { threshold: Some(2.0), ..opts }).is_err());
    }

    #[test]
    fn r2p_score_is_the_mean_of_image_and_text_cosines() {
        let idx = index();
        let refs = idx.r2p(q(&[[1.0, 0.0]]), 3).unwrap();
        // <a>: (1 + 1)/2 = 1; <c>: (-1 + 0.6)/2 = -0.2; <b>: (0 + 0)/2 = 0.
        let keys: Vec<&str> = refs.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["<a>", "<b>", "<c>"]);
        for (r, want) in refs.iter().zip([1.0, 0.0, -0.2]) {
            assert!((r.score.unwrap() - want).abs() < 1e-6, "{r:?}");
        }
        assert_eq!(refs[0].image, "<a>0.png");
    }

    #[test]
    fn name_matches_follow_the_text() {
        let cs = vec![concept("<a>", 1), concept("<bb>", 1), concept("<black widow>", 1)];
        assert_eq!(name_matches("<black widow> and <a> with <a>", &cs), [2, 0]);
        assert!(name_matches("a, bb", &cs).is_empty());
    }
}
