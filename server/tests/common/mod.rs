//! What the store-backed server tests share: the fixture store and a server over it on a free loopback port.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use repic_models::Checkpoint;
use repic_personalize::store::import_file;
use repic_personalize::{ImageMode, ImportOptions, Retriever, SqliteStore};
use repic_server::personal::Personal;
use repic_server::scheduler::{Scheduler, SchedulerOptions};
use repic_server::{AppState, Limits, router};

/// The build's backend.
pub type B = repic_models::DefaultBackend;

/// A path below the workspace.
pub fn root(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// The retrieval fixture's folder.
pub fn fixture() -> PathBuf {
    root("personalize/tests/fixtures/retrieval")
}

/// A store in `dir/store` holding the retrieval fixture's 8 concepts, embedded by the tiny CLIP.
pub fn fixture_store(dir: &Path) -> PathBuf {
    let store_dir = dir.join("store");
    let mut store = SqliteStore::create(&store_dir).unwrap();
    let opts = ImportOptions { image_root: PathBuf::new(), images: ImageMode::Copy, replace: false };
    import_file(&mut store, &fixture().join("database.json"), &opts).unwrap();
    let clip = root("models/tests/fixtures/clip");
    Retriever::<B>::open(&mut store, Some(&clip), &Default::default(), &mut |_, _| {}).unwrap();
    store_dir
}

/// The tiny Qwen2-VL served with `store` (batch 4, context 4096); returns the address.
pub async fn serve(store: &Path, api_key: Option<&str>, prefill_chunk: usize) -> String {
    let dev = Default::default();
    let ckpt = Checkpoint::<B>::load(&root("models/tests/fixtures/qwen2_vl"), &dev).unwrap();
    let opts = SchedulerOptions { max_batch: 4, queue: 16, max_context: 4096, prefill_chunk, stream_buffer: 1024 };
    let scheduler = Scheduler::start(ckpt, dev, opts);
    let limits = Limits { max_context: 4096, ..Limits::default() };
    let state = AppState::new(scheduler, "tiny".into(), limits, api_key.map(str::to_string))
        .with_personal(Personal::open(store).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, router(Arc::new(state))).await.unwrap() });
    addr
}
