//! The concept store on real data: the nine RePIC release databases round-trip through it; the 2-concept one
//! with its images; every bad input is a clear error that leaves the store exactly as it was.

use std::path::{Path, PathBuf};

use repic_data::ConceptDb;
use repic_personalize::store::{export_file, import_file};
use repic_personalize::{
    ConceptEdit, ConceptStore, ImageMode, ImportOptions, NewConcept, PersonalizeError, SqliteStore,
};
use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/repic")
}

fn release_databases() -> Vec<PathBuf> {
    let root = fixtures().join("data/database_tot");
    let mut out = Vec::new();
    for dir in std::fs::read_dir(&root).unwrap() {
        for f in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|e| e == "json") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn paths_only() -> ImportOptions {
    ImportOptions { image_root: PathBuf::new(), images: ImageMode::PathsOnly, replace: false }
}

fn png(dir: &Path, name: &str, rgb: [u8; 3]) -> PathBuf {
    let p = dir.join(name);
    image::RgbImage::from_pixel(8, 6, image::Rgb(rgb)).save(&p).unwrap();
    p
}

/// Everything a reader could see of a store: its export and the files in its image folder.
fn snapshot(store: &SqliteStore) -> (Value, Vec<String>) {
    let db = serde_json::to_value(store.export().unwrap()).unwrap();
    let mut files: Vec<String> = std::fs::read_dir(store.root().join("images"))
        .map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    files.sort();
    (db, files)
}

#[test]
fn the_nine_release_databases_round_trip() {
    let dbs = release_databases();
    assert_eq!(dbs.len(), 9, "{dbs:?}");
    for file in dbs {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::create(&dir.path().join("store")).unwrap();
        let report = import_file(&mut store, &file, &paths_only()).unwrap();
        let original = json(&file);
        assert_eq!(report.added, original["concept_dict"].as_object().unwrap().len());
        drop(store);
        // Reopened from disk: the export is the file, key order included.
        let store = SqliteStore::open(&dir.path().join("store")).unwrap();
        let out = dir.path().join("out/database.json");
        export_file(&store, &out, false).unwrap();
        let back = json(&out);
        assert_eq!(back, original, "{}", file.display());
        let keys = |v: &Value| v["concept_dict"].as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&back), keys(&original));
        let idx = |v: &Value| v["path_to_concept"].as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(idx(&back), idx(&original));
    }
}

#[test]
fn the_two_concept_database_round_trips_with_its_images() {
    let file = fixtures().join("data/database_tot/database_2_concepts/database_mod.json");
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::create(&dir.path().join("store")).unwrap();
    let opts = ImportOptions { image_root: fixtures(), images: ImageMode::Copy, replace: false };
    let report = import_file(&mut store, &file, &opts).unwrap();
    assert_eq!((report.added, report.images), (16, 16));
    let out = dir.path().join("export/database_mod.json");
    assert_eq!(export_file(&store, &out, true).unwrap(), (16, 0));
    assert_eq!(json(&out), json(&file));
    let db = ConceptDb::load(&file).unwrap();
    for c in db.concept_dict.values() {
        let p = &c.image.paths()[0];
        assert_eq!(
            std::fs::read(out.parent().unwrap().join(p)).unwrap(),
            std::fs::read(fixtures().join(p)).unwrap(),
            "{p}"
        );
    }
    let anya = store.concept("<Anya>").unwrap();
    assert_eq!(anya.info.as_deref(), Some("A young girl with pink hair and big green eyes."));
    assert!(store.root().join(anya.images[0].file.as_ref().unwrap()).is_file());
}

#[test]
fn a_missing_or_broken_image_fails_the_whole_import() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("db");
    std::fs::create_dir_all(&src).unwrap();
    png(&src, "a.png", [1, 2, 3]);
    std::fs::write(src.join("b.png"), "text, not pixels").unwrap();
    let db = |b: &str| {
        format!(
            r#"{{"concept_dict": {{"<a>": {{"name": "a", "image": "a.png", "info": "x"}},
                "<b>": {{"name": "b", "image": "{b}", "info": "y"}}}}, "path_to_concept": {{}}}}"#
        )
    };
    let mut store = SqliteStore::create(&dir.path().join("store")).unwrap();
    let before = snapshot(&store);
    let copy = ImportOptions { image_root: PathBuf::new(), images: ImageMode::Copy, replace: false };
    for (b, want) in [
        ("missing.png", "missing.png: No such file or directory"),
        ("b.png", "b.png: is not an image (PNG and JPEG are supported)"),
        ("../a.png", "concept_dict[\"<b>\"].image[0] \"../a.png\": leaves its folder"),
        ("/etc/passwd", "\"/etc/passwd\": is absolute"),
    ] {
        let f = src.join("database.json");
        std::fs::write(&f, db(b)).unwrap();
        let e = import_file(&mut store, &f, &copy).unwrap_err().to_string();
        assert!(e.contains(want), "{b}: {e}");
        assert_eq!(snapshot(&store), before, "{b} changed the store");
    }
}

/// One change to try on a store.
type Edit<'a> = dyn Fn(&mut SqliteStore) -> Result<(), PersonalizeError> + 'a;

#[test]
fn edits_are_checked_and_leave_the_store_as_it_was_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::create(&dir.path().join("store")).unwrap();
    let red = png(dir.path(), "red.png", [255, 0, 0]);
    let blue = png(dir.path(), "blue.png", [0, 0, 255]);
    let bo = NewConcept {
        key: "<bo>".into(),
        name: "Bo".into(),
        category: Some("dog".into()),
        info: "A shiba.".into(),
        fingerprint: None,
        images: vec![red.clone()],
    };
    let added = store.add(&bo).unwrap();
    assert_eq!(added.images[0].path, "bo/red.png");
    let before = snapshot(&store);
    let text = dir.path().join("notes.png");
    std::fs::write(&text, "hello").unwrap();
    let cases: Vec<(Box<Edit<'_>>, &str)> = vec![
        (Box::new(|s| s.add(&bo).map(drop)), "concept <bo> is already in the store"),
        (Box::new(|s| s.remove("<nope>").map(drop)), "no concept <nope> in the store"),
        (
            Box::new(|s| s.edit("<nope>", &ConceptEdit { info: Some("x".into()), ..Default::default() }).map(drop)),
            "no concept <nope> in the store",
        ),
        (Box::new(|s| s.add(&NewConcept { key: "bo2".into(), ..bo.clone() }).map(drop)), "must be in angle brackets"),
        (
            Box::new(|s| s.add(&NewConcept { key: "<x>".into(), images: vec![text.clone()], ..bo.clone() }).map(drop)),
            "notes.png: is not an image",
        ),
        (
            Box::new(|s| s.add(&NewConcept { key: "<x>".into(), images: vec![], ..bo.clone() }).map(drop)),
            "a concept needs at least one image",
        ),
        (
            Box::new(|s| {
                let e = ConceptEdit { add_images: vec![blue.clone(), text.clone()], ..Default::default() };
                s.edit("<bo>", &e).map(drop)
            }),
            "notes.png: is not an image",
        ),
        (
            Box::new(|s| {
                s.edit("<bo>", &ConceptEdit { name: Some("two\nlines".into()), ..Default::default() }).map(drop)
            }),
            "<bo> name: must be one line",
        ),
    ];
    for (f, want) in cases {
        let e = f(&mut store).unwrap_err().to_string();
        assert!(e.contains(want), "want {want:?}, got {e:?}");
        assert_eq!(snapshot(&store), before, "after {want:?}");
    }
    // A user's key never becomes a path: the image copy is named by its hash, the database path is made safe.
    let odd = store.add(&NewConcept { key: "<../../etc/x>".into(), ..bo.clone() }).unwrap();
    assert_eq!(odd.images[0].path, "_.._etc_x/red.png");
    assert!(odd.images[0].file.as_ref().unwrap().starts_with("images/"));
    assert_eq!(odd.images[0].hash, added.images[0].hash);
}

#[test]
fn edits_replace_images_and_remove_sweeps_unused_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::create(&dir.path().join("store")).unwrap();
    let red = png(dir.path(), "red.png", [255, 0, 0]);
    let blue = png(dir.path(), "blue.png", [0, 0, 255]);
    let mk = |key: &str, img: &PathBuf| NewConcept {
        key: key.into(),
        name: String::new(),
        category: None,
        info: "info".into(),
        fingerprint: None,
        images: vec![img.clone()],
    };
    let v0 = store.version().unwrap();
    store.add(&mk("<a>", &red)).unwrap();
    store.add(&mk("<b>", &red)).unwrap();
    assert!(store.version().unwrap() > v0, "a commit bumps the version");
    assert_eq!(snapshot(&store).1.len(), 1, "one copy for two concepts");
    let e = ConceptEdit { add_images: vec![blue.clone(), blue.clone()], ..Default::default() };
    let a = store.edit("<a>", &e).unwrap();
    let paths: Vec<&str> = a.images.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(paths, ["a/red.png", "a/blue.png", "a/2-blue.png"]);
    assert_eq!(a.name, "a");
    let exported = store.export().unwrap();
    assert_eq!(exported.path_to_concept.len(), 4);
    assert!(matches!(exported.concept_dict["<a>"].image, repic_data::Images::Many(_)));
    store.edit("<a>", &ConceptEdit { images: Some(vec![blue.clone()]), ..Default::default() }).unwrap();
    assert_eq!(snapshot(&store).1.len(), 2);
    store.remove("<b>").unwrap();
    assert_eq!(snapshot(&store).1.len(), 1, "red.png's copy went with its last concept");
    assert_eq!(store.concepts().unwrap().len(), 1);
}

#[test]
fn a_store_is_refused_when_missing_or_newer() {
    let dir = tempfile::tempdir().unwrap();
    let e = SqliteStore::open(dir.path()).err().unwrap().to_string();
    assert!(e.contains("is not a concept store (no concepts.sqlite)"), "{e}");
    SqliteStore::create(&dir.path().join("s")).unwrap();
    let e = SqliteStore::create(&dir.path().join("s")).err().unwrap().to_string();
    assert!(e.ends_with("is already a concept store"), "{e}");
    let conn = rusqlite_conn(&dir.path().join("s/concepts.sqlite"));
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'", []).unwrap();
    let e = SqliteStore::open(&dir.path().join("s")).err().unwrap().to_string();
    assert!(e.contains("has schema version 99"), "{e}");
}

fn rusqlite_conn(p: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(p).unwrap()
}
