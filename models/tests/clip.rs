//! CLIP parity with transformers on the tiny random checkpoint in `tests/fixtures/clip`: processor pixels
//! (max abs diff <= 1e-6), token ids, and L2-normalised image and text embeddings (cosine >= 0.9999).

use std::path::PathBuf;

use burn::tensor::{Tensor, TensorData};
use repic_models::{Clip, ClipProcessor, ClipTokenizer};
use safetensors::SafeTensors;
use serde_json::Value;

type B = repic_models::DefaultBackend;

fn rows(bytes: &[u8], key: &str) -> (Vec<usize>, Vec<f32>) {
    let st = SafeTensors::deserialize(bytes).unwrap();
    let t = st.tensor(key).unwrap();
    (t.shape().to_vec(), t.data().chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect())
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let n = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (n(a) * n(b))
}

#[test]
fn clip_matches_transformers() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clip");
    let meta: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
    let bytes = std::fs::read(dir.join("reference.safetensors")).unwrap();
    let dev = Default::default();
    let model = Clip::<B>::load(&dir, &dev).unwrap();
    let proc = ClipProcessor::load(&dir).unwrap();
    let tok = ClipTokenizer::load(&dir).unwrap();

    let (shape, want_px) = rows(&bytes, "pixel_values");
    let mut px = Vec::new();
    for f in meta["images"].as_array().unwrap() {
        px.extend(proc.process(&image::open(dir.join(f.as_str().unwrap())).unwrap().to_rgb8()));
    }
    let d = px.iter().zip(&want_px).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert_eq!(px.len(), want_px.len());
    assert!(d <= 1e-6, "pixel values differ by {d}");

    let n = shape[0];
    let width = px.len() / n;
    let img = model.image_embeds(Tensor::from_data(TensorData::new(px, [n, width]), &dev));
    let got = img.into_data().to_vec::<f32>().unwrap();
    let (_, want) = rows(&bytes, "image_embeds");
    let p = model.config().projection_dim;
    for i in 0..n {
        let c = cosine(&got[i * p..(i + 1) * p], &want[i * p..(i + 1) * p]);
        assert!(c >= 0.9999, "image {i}: cosine {c}");
    }

    let (_, want_txt) = rows(&bytes, "text_embeds");
    for (i, (text, ids)) in
        meta["texts"].as_array().unwrap().iter().zip(meta["input_ids"].as_array().unwrap()).enumerate()
    {
        let got_ids = tok.encode(text.as_str().unwrap()).unwrap();
        let want_ids: Vec<u32> = ids.as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(got_ids, want_ids, "text {i} ids");
        let e = model.text_embed(&got_ids).unwrap().into_data().to_vec::<f32>().unwrap();
        let c = cosine(&e, &want_txt[i * p..(i + 1) * p]);
        assert!(c >= 0.9999, "text {i}: cosine {c}");
    }
}

#[test]
fn a_saved_clip_loads_back_identical() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clip");
    let dev = Default::default();
    let model = Clip::<B>::load(&dir, &dev).unwrap();
    let proc = ClipProcessor::load(&dir).unwrap();
    let out = tempfile::tempdir().unwrap();
    let saved = out.path().join("clip");
    repic_models::save_clip(&model, &proc, &dir.join("tokenizer.json"), None, &saved, false).unwrap();
    let back = Clip::<B>::load(&saved, &dev).unwrap();
    let px: Vec<f32> = proc.process(&image::open(dir.join("image0.png")).unwrap().to_rgb8());
    let n = px.len();
    let t = || Tensor::<B, 2>::from_data(TensorData::new(px.clone(), [1, n]), &dev);
    let a = model.image_embeds(t()).into_data().to_vec::<f32>().unwrap();
    let b = back.image_embeds(t()).into_data().to_vec::<f32>().unwrap();
    assert_eq!(a, b);
    let tok = ClipTokenizer::load(&saved).unwrap();
    let ids = tok.encode("a photo of a blue striped cube").unwrap();
    assert_eq!(model.text_embed(&ids).unwrap().into_data(), back.text_embed(&ids).unwrap().into_data());
    assert!(repic_models::save_clip(&model, &proc, &dir.join("tokenizer.json"), None, &saved, false).is_err());
}
