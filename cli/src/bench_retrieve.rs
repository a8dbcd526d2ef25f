//! `repic bench retrieve`: latency of one RAP query (one crop embedding against every reference image: matmul,
//! exact top-k, merge) for stores of N concepts with synthetic unit-length embeddings, and the time to read those
//! embeddings back from a SQLite store. Medians over repeats; nothing here is a test.

use std::time::Instant;

use burn::tensor::{Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use repic_models::{DefaultBackend as Backend, default_device as device};
use repic_personalize::{
    ConceptStore, EmbeddingKind, KeyIndex, RetrieveOptions, SqliteStore, StoredConcept, StoredImage,
};

/// Arguments of `repic bench retrieve`.
#[derive(clap::Args)]
pub struct Args {
    /// Store sizes (concepts, one image each), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
    concepts: Vec<usize>,
    /// Embedding width (CLIP ViT-L/14: 768).
    #[arg(long, default_value_t = 768)]
    dim: usize,
    /// Timed queries per size after one warm-up (the median is reported).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    repeats: u32,
    /// Also time reading the embeddings from a SQLite store (written to a temporary folder first).
    #[arg(long)]
    sqlite: bool,
    /// Print one JSON line per size.
    #[arg(long)]
    json: bool,
}

fn unit_rows(rng: &mut ChaCha8Rng, n: usize, dim: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..n * dim).map(|_| rng.random::<f32>() - 0.5).collect();
    for row in v.chunks_mut(dim) {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        row.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

fn concept(i: usize) -> StoredConcept {
    StoredConcept {
        key: format!("<c{i}>"),
        name: format!("c{i}"),
        category: None,
        info: Some(String::new()),
        fingerprint: None,
        images: vec![StoredImage { path: format!("c{i}.png"), hash: Some(format!("{i:064x}")), file: None }],
        image_list: false,
        extra: Default::default(),
    }
}

/// Run the benchmark.
pub fn run(a: Args) -> anyhow::Result<()> {
    let dev = device();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    for &n in &a.concepts {
        anyhow::ensure!(n > 0, "--concepts: sizes must be positive");
        let keys = unit_rows(&mut rng, n, a.dim);
        let read_s = if a.sqlite { Some(sqlite_read(&keys, n, a.dim)?) } else { None };
        let index = KeyIndex::<Backend>::from_vectors(
            (0..n).map(concept).collect(),
            (0..n).map(|i| (i, 0)).collect(),
            keys,
            None,
            a.dim,
            &dev,
        );
        let opts = RetrieveOptions::default();
        let mut query = || {
            let q = unit_rows(&mut rng, 1, a.dim);
            let q = Tensor::<Backend, 2>::from_data(TensorData::new(q, [1, a.dim]), &dev);
            index.rap(Some(q), "", &opts)
        };
        query()?;
        let mut times = Vec::new();
        for _ in 0..a.repeats {
            let start = Instant::now();
            let refs = query()?;
            times.push(start.elapsed().as_secs_f64() * 1e3);
            anyhow::ensure!(refs.len() == opts.top_k.min(n), "expected {} references", opts.top_k);
        }
        times.sort_by(f64::total_cmp);
        let (p50, max) = (times[times.len() / 2], times[times.len() - 1]);
        if a.json {
            let line = serde_json::json!({"concepts": n, "dim": a.dim, "query_ms_p50": p50, "query_ms_max": max,
                "sqlite_read_s": read_s});
            println!("{line}");
        } else {
            let read = read_s.map_or(String::new(), |s| format!("; reading the embeddings from SQLite {s:.2} s"));
            println!("{n} concepts x {}-d: one query {p50:.2} ms (median of {}, max {max:.2}){read}", a.dim, a.repeats);
        }
    }
    Ok(())
}

/// Write `n` embeddings into a fresh store, then time reading them back.
fn sqlite_read(keys: &[f32], n: usize, dim: usize) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let mut store = SqliteStore::create(&dir.path().join("store"))?;
    let items: Vec<(String, Vec<f32>)> =
        keys.chunks(dim).enumerate().map(|(i, v)| (format!("{i:064x}"), v.to_vec())).collect();
    store.put_embeddings(EmbeddingKind::Image, "bench", &items)?;
    let start = Instant::now();
    let got = store.embeddings(EmbeddingKind::Image, "bench")?;
    let secs = start.elapsed().as_secs_f64();
    anyhow::ensure!(got.len() == n, "read {} of {n} embeddings", got.len());
    Ok(secs)
}
