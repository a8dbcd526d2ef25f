//! Crash safety and isolation of the concept store: a writer process killed at random points (mostly inside
//! a transaction: an import copying images, a removal) leaves the last committed state, and a reader in
//! another process never sees half an edit. The writer is this test binary run again in child mode.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use repic_personalize::store::import_file;
use repic_personalize::{ConceptStore, ImageMode, ImportOptions, SqliteStore};

const CONCEPTS: usize = 24;
const IMAGES: usize = 2;

/// A database of `CONCEPTS` concepts with `IMAGES` images each (distinct content, so every one is copied).
fn source(dir: &Path) -> PathBuf {
    let mut dict = serde_json::Map::new();
    let mut index = serde_json::Map::new();
    for c in 0..CONCEPTS {
        let mut paths = Vec::new();
        for i in 0..IMAGES {
            let p = format!("img/c{c}_{i}.png");
            let px =
                image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 4) as u8, (y * 5) as u8, (c * 10 + i) as u8]));
            std::fs::create_dir_all(dir.join("img")).unwrap();
            px.save(dir.join(&p)).unwrap();
            index.insert(p.clone(), format!("<c{c}>").into());
            paths.push(serde_json::Value::from(p));
        }
        dict.insert(format!("<c{c}>"), serde_json::json!({"name": format!("c{c}"), "image": paths, "info": "x"}));
    }
    let f = dir.join("database.json");
    std::fs::write(&f, serde_json::json!({"concept_dict": dict, "path_to_concept": index}).to_string()).unwrap();
    f
}

/// Every concept in the store is whole: all its images, each with its file, and its index entries.
fn check_whole(store: &SqliteStore) -> usize {
    let concepts = store.concepts().unwrap();
    let db = store.export().unwrap();
    for c in &concepts {
        assert_eq!(c.images.len(), IMAGES, "{} has {} images", c.key, c.images.len());
        for img in &c.images {
            assert!(store.root().join(img.file.as_ref().unwrap()).is_file(), "{} lost {}", c.key, img.path);
            assert_eq!(db.path_to_concept.get(&img.path), Some(&c.key));
        }
    }
    assert_eq!(db.path_to_concept.len(), concepts.len() * IMAGES);
    concepts.len()
}

/// Start a writer and wait until it has opened the store (a binary linked to LibTorch takes a second or more
/// to start, longer than the kill delays).
fn spawn_writer(store: &Path, src: &Path) -> Child {
    let ready = store.with_extension(format!("ready-{}", std::process::id()));
    let _ = std::fs::remove_file(&ready);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["writer_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env("REPIC_TEST_STORE", store)
        .env("REPIC_TEST_SOURCE", src)
        .env("REPIC_TEST_READY", &ready)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !ready.exists() {
        assert!(child.try_wait().unwrap().is_none(), "the writer process ended before it was ready");
        assert!(start.elapsed() < Duration::from_secs(60), "the writer process did not start within 60 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

/// Child mode: import everything (one transaction), remove every concept (one transaction each), forever.
#[test]
#[ignore = "run by the crash tests as a child process"]
fn writer_child() {
    let (Ok(store), Ok(src)) = (std::env::var("REPIC_TEST_STORE"), std::env::var("REPIC_TEST_SOURCE")) else {
        return;
    };
    let mut store = SqliteStore::open(Path::new(&store)).unwrap();
    if let Ok(ready) = std::env::var("REPIC_TEST_READY") {
        std::fs::write(ready, b"").unwrap();
    }
    let opts = ImportOptions { image_root: PathBuf::new(), images: ImageMode::Copy, replace: true };
    loop {
        import_file(&mut store, Path::new(&src), &opts).unwrap();
        for c in store.concepts().unwrap() {
            store.remove(&c.key).unwrap();
        }
    }
}

#[test]
fn a_killed_writer_leaves_the_last_committed_state() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let root = dir.path().join("store");
    drop(SqliteStore::create(&root).unwrap());
    let mut seen = std::collections::BTreeSet::new();
    for round in 0..8u64 {
        let mut child = spawn_writer(&root, &src);
        std::thread::sleep(Duration::from_millis(150 + 97 * round));
        child.kill().unwrap();
        child.wait().unwrap();
        let store = SqliteStore::open(&root).unwrap();
        let n = check_whole(&store);
        let ok: String = rusqlite::Connection::open(root.join("concepts.sqlite"))
            .unwrap()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        seen.insert(n);
    }
    // The kills landed in different places of the loop (not all before the first commit).
    assert!(seen.len() > 1, "every kill saw {seen:?} concepts");
}

#[test]
fn readers_never_see_half_an_edit() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let root = dir.path().join("store");
    drop(SqliteStore::create(&root).unwrap());
    let mut child = spawn_writer(&root, &src);
    let store = SqliteStore::open(&root).unwrap();
    let start = Instant::now();
    let mut counts = std::collections::BTreeSet::new();
    while start.elapsed() < Duration::from_secs(3) {
        // Concepts and their images come from one snapshot; files may be swept by a later commit, so only
        // the database side is checked here.
        for c in store.concepts().unwrap() {
            assert_eq!(c.images.len(), IMAGES, "{} seen with {} images", c.key, c.images.len());
        }
        counts.insert(store.concepts().unwrap().len());
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(counts.len() > 1, "the reader saw only {counts:?}");
}
