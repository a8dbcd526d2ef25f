//! The concept store on SQLite (WAL mode, synchronous commits, foreign keys): one database file
//! `concepts.sqlite` and the folder `images/` of content-addressed image copies beside it. Every write runs
//! in one `BEGIN IMMEDIATE` transaction, and image files are copied in and swept out only while that write
//! lock is held, so two processes editing one store never lose each other's files.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use repic_data::{ConceptDb, Fingerprint};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde_json::{Map, Value};

use super::files::{check_key, check_label, check_rel_path, hash_bytes, ingest};
use super::schema::{SCHEMA, VERSION};
use super::{
    ConceptEdit, ConceptStore, EmbeddingKind, EncoderRef, ImageMode, ImportOptions, ImportReport, NewConcept,
    StoredConcept, StoredImage,
};
use crate::{PersonalizeError, Result};

/// The store's database file inside its folder.
pub const DB_FILE: &str = "concepts.sqlite";

/// A concept store in a folder: `concepts.sqlite` + `images/`.
pub struct SqliteStore {
    root: PathBuf,
    db: PathBuf,
    conn: Connection,
}

/// A concept's row before its images are attached.
struct Row {
    key: String,
    name: String,
    category: Option<String>,
    info: Option<String>,
    fingerprint: Option<String>,
    image_list: bool,
    extra: String,
}

impl SqliteStore {
    /// Create a store in `root` (made if missing); an existing store there is an error.
    pub fn create(root: &Path) -> Result<Self> {
        let db = root.join(DB_FILE);
        if db.exists() {
            return Err(PersonalizeError::Store { path: root.into(), msg: "is already a concept store".into() });
        }
        std::fs::create_dir_all(root.join(super::files::IMAGES)).map_err(|e| PersonalizeError::io(root, e))?;
        let mut store = Self::connect(root)?;
        store.write(|tx| {
            tx.execute_batch(SCHEMA)?;
            tx.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?1)", [VERSION.to_string()])?;
            Ok(())
        })?;
        Ok(store)
    }

    /// Open an existing store.
    pub fn open(root: &Path) -> Result<Self> {
        if !root.join(DB_FILE).is_file() {
            return Err(PersonalizeError::Store {
                path: root.into(),
                msg: format!("is not a concept store (no {DB_FILE}); create one with `repic db init`"),
            });
        }
        let store = Self::connect(root)?;
        let version: Option<String> = store.sql(
            store.conn.query_row("SELECT value FROM meta WHERE key = 'schema_version'", [], |r| r.get(0)).optional(),
        )?;
        match version.as_deref().map(str::parse::<i64>) {
            Some(Ok(VERSION)) => Ok(store),
            Some(Ok(v)) if v > VERSION => Err(PersonalizeError::Store {
                path: root.into(),
                msg: format!("has schema version {v}; this repic reads version {VERSION} (upgrade repic)"),
            }),
            _ => Err(PersonalizeError::Store { path: root.into(), msg: "has no valid schema version".into() }),
        }
    }

    fn connect(root: &Path) -> Result<Self> {
        let db = root.join(DB_FILE);
        let err = |e: rusqlite::Error| PersonalizeError::Sqlite { path: db.clone(), msg: e.to_string() };
        let conn = Connection::open(&db).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(err)?;
        // WAL: readers see the last commit while a writer works; FULL: a commit survives power loss.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(PersonalizeError::Sqlite { path: db, msg: format!("could not enable WAL (mode {mode})") });
        }
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;").map_err(err)?;
        Ok(SqliteStore { root: root.into(), db, conn })
    }

    fn sql<T>(&self, r: rusqlite::Result<T>) -> Result<T> {
        r.map_err(|e| PersonalizeError::Sqlite { path: self.db.clone(), msg: e.to_string() })
    }

    /// Run `f` in one write transaction (taken up front, so writers queue instead of failing mid-way).
    fn write<T>(&mut self, f: impl FnOnce(&Transaction) -> Result<T, WriteError>) -> Result<T> {
        let db = self.db.clone();
        let sql = |e: rusqlite::Error| PersonalizeError::Sqlite { path: db.clone(), msg: e.to_string() };
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql)?;
        let out = f(&tx).map_err(|e| match e {
            WriteError::Sql(e) => sql(e),
            WriteError::Other(e) => e,
        })?;
        // Every commit bumps the store's version, so a reader holding keys in memory knows to reload them.
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('version', '1')
             ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
            [],
        )
        .map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(out)
    }

    /// [`Self::write`] for a change that copies image files in: when it fails, the copies it made are swept
    /// out again, so a failed edit leaves the store's folder exactly as it was.
    fn write_with_files<T>(&mut self, f: impl FnOnce(&Transaction) -> Result<T, WriteError>) -> Result<T> {
        let out = self.write(f);
        if out.is_err()
            && let Err(e) = self.sweep()
        {
            tracing::warn!("could not remove the image copies of a failed edit: {e}");
        }
        out
    }

    /// Delete image copies and embeddings nothing refers to any more (under the write lock).
    fn sweep(&mut self) -> Result<()> {
        let root = self.root.clone();
        self.write(|tx| {
            tx.execute(
                "DELETE FROM embeddings WHERE kind = 'image' AND hash NOT IN
                 (SELECT hash FROM images WHERE hash IS NOT NULL)",
                [],
            )?;
            tx.execute(
                "DELETE FROM embeddings WHERE kind = 'text' AND hash NOT IN (SELECT text_hash FROM concepts)",
                [],
            )?;
            let mut st = tx.prepare("SELECT DISTINCT file FROM images WHERE file IS NOT NULL")?;
            let files: HashSet<String> = st.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
            super::files::delete_unreferenced(&root, &files);
            Ok(())
        })
    }

    fn read_concepts(&self, key: Option<&str>) -> Result<Vec<StoredConcept>> {
        // One read transaction: the concept rows and their images come from the same snapshot.
        let tx = self.sql(self.conn.unchecked_transaction())?;
        let rows = self.sql(select_rows(&tx, key))?;
        let mut images: HashMap<String, Vec<StoredImage>> = HashMap::new();
        {
            let mut st = self.sql(tx.prepare(
                "SELECT concept, path, hash, file FROM images WHERE (?1 IS NULL OR concept = ?1)
                 ORDER BY concept, position",
            ))?;
            let it = self.sql(st.query_map([key], |r| {
                Ok((r.get::<_, String>(0)?, StoredImage { path: r.get(1)?, hash: r.get(2)?, file: r.get(3)? }))
            }))?;
            for item in it {
                let (k, img) = self.sql(item)?;
                images.entry(k).or_default().push(img);
            }
        }
        self.sql(tx.finish())?;
        rows.into_iter()
            .map(|r| {
                let fingerprint = match r.fingerprint {
                    Some(s) => Some(serde_json::from_str::<Fingerprint>(&s).map_err(|e| PersonalizeError::Store {
                        path: self.root.clone(),
                        msg: format!("concept {}: stored fingerprint is not valid: {e}", r.key),
                    })?),
                    None => None,
                };
                let extra: Map<String, Value> =
                    serde_json::from_str(&r.extra).map_err(|e| PersonalizeError::Store {
                        path: self.root.clone(),
                        msg: format!("concept {}: stored extra keys are not valid JSON: {e}", r.key),
                    })?;
                Ok(StoredConcept {
                    images: images.remove(&r.key).unwrap_or_default(),
                    key: r.key,
                    name: r.name,
                    category: r.category,
                    info: r.info,
                    fingerprint,
                    image_list: r.image_list,
                    extra,
                })
            })
            .collect()
    }

    fn meta(&self, key: &str) -> Result<Option<String>> {
        self.sql(self.conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional())
    }
}

/// An error inside a write transaction: SQLite's (given its path by `write`) or ours.
enum WriteError {
    Sql(rusqlite::Error),
    Other(PersonalizeError),
}

impl From<rusqlite::Error> for WriteError {
    fn from(e: rusqlite::Error) -> Self {
        WriteError::Sql(e)
    }
}

impl From<PersonalizeError> for WriteError {
    fn from(e: PersonalizeError) -> Self {
        WriteError::Other(e)
    }
}

fn select_rows(conn: &Connection, key: Option<&str>) -> rusqlite::Result<Vec<Row>> {
    let mut st = conn.prepare(
        "SELECT key, name, category, info, fingerprint, image_list, extra FROM concepts
         WHERE (?1 IS NULL OR key = ?1) ORDER BY position",
    )?;
    st.query_map([key], |r| {
        Ok(Row {
            key: r.get(0)?,
            name: r.get(1)?,
            category: r.get(2)?,
            info: r.get(3)?,
            fingerprint: r.get(4)?,
            image_list: r.get(5)?,
            extra: r.get(6)?,
        })
    })?
    .collect()
}

fn exists(tx: &Transaction, key: &str) -> rusqlite::Result<bool> {
    tx.query_row("SELECT 1 FROM concepts WHERE key = ?1", [key], |_| Ok(())).optional().map(|o| o.is_some())
}

/// Insert a concept (position after every other) with its images and its `path_to_concept` entries.
fn insert(tx: &Transaction, c: &StoredConcept, index: &[String]) -> Result<(), WriteError> {
    let fingerprint = c.fingerprint.as_ref().map(|f| serde_json::to_string(f).expect("fingerprint serializes"));
    let extra = serde_json::to_string(&c.extra).expect("JSON map serializes");
    tx.execute(
        "INSERT INTO concepts (key, position, name, category, info, fingerprint, text_hash, image_list, extra)
         VALUES (?1, (SELECT COALESCE(MAX(position), -1) + 1 FROM concepts), ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            c.key,
            c.name,
            c.category,
            c.info,
            fingerprint,
            hash_bytes(c.info_text().as_bytes()),
            c.image_list,
            extra
        ],
    )?;
    for (i, img) in c.images.iter().enumerate() {
        tx.execute(
            "INSERT INTO images (concept, position, path, hash, file) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![c.key, i as i64, img.path, img.hash, img.file],
        )?;
    }
    for path in index {
        add_index(tx, path, &c.key)?;
    }
    Ok(())
}

/// Append a `path_to_concept` entry; a path that already names another concept is an error.
fn add_index(tx: &Transaction, path: &str, key: &str) -> Result<(), WriteError> {
    let owner: Option<String> =
        tx.query_row("SELECT concept FROM path_index WHERE path = ?1", [path], |r| r.get(0)).optional()?;
    if let Some(owner) = owner {
        return Err(PersonalizeError::invalid(
            format!("image path {path:?} of {key}"),
            format!("already belongs to {owner}"),
        )
        .into());
    }
    tx.execute(
        "INSERT INTO path_index (position, path, concept) VALUES
         ((SELECT COALESCE(MAX(position), -1) + 1 FROM path_index), ?1, ?2)",
        params![path, key],
    )?;
    Ok(())
}

/// Replace a concept's images (and their index entries) by `images`.
fn set_images(tx: &Transaction, key: &str, images: &[StoredImage]) -> Result<(), WriteError> {
    tx.execute("DELETE FROM images WHERE concept = ?1", [key])?;
    tx.execute("DELETE FROM path_index WHERE concept = ?1", [key])?;
    for (i, img) in images.iter().enumerate() {
        tx.execute(
            "INSERT INTO images (concept, position, path, hash, file) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![key, i as i64, img.path, img.hash, img.file],
        )?;
        add_index(tx, &img.path, key)?;
    }
    Ok(())
}

/// A safe file-name piece: ASCII letters, digits, `.`, `_` and `-`; anything else becomes `_`.
fn safe_piece(s: &str) -> String {
    let t: String = s.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
    let t = t.trim_start_matches('.').to_string();
    if t.is_empty() { "image".into() } else { t }
}

/// Copy user image files in; their database paths are `<bare key>/<file name>` (made safe, de-duplicated).
fn ingest_new(root: &Path, key: &str, files: &[PathBuf], taken: &[StoredImage]) -> Result<Vec<StoredImage>> {
    let bare = safe_piece(key.trim_start_matches('<').trim_end_matches('>'));
    let mut used: HashSet<String> = taken.iter().map(|i| i.path.clone()).collect();
    let mut out = Vec::new();
    for f in files {
        let (hash, file) = ingest(root, f)?;
        let name = safe_piece(&f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        let mut path = format!("{bare}/{name}");
        let mut n = 1;
        while used.contains(&path) {
            n += 1;
            path = format!("{bare}/{n}-{name}");
        }
        used.insert(path.clone());
        out.push(StoredImage { path, hash: Some(hash), file: Some(file) });
    }
    Ok(out)
}

fn check_fields(key: &str, name: &str, category: Option<&str>) -> Result<()> {
    check_key(key)?;
    check_label(&format!("{key} name"), name)?;
    if let Some(c) = category {
        check_label(&format!("{key} category"), c)?;
    }
    Ok(())
}

impl ConceptStore for SqliteStore {
    fn root(&self) -> &Path {
        &self.root
    }

    fn concepts(&self) -> Result<Vec<StoredConcept>> {
        self.read_concepts(None)
    }

    fn concept(&self, key: &str) -> Result<StoredConcept> {
        self.read_concepts(Some(key))?.pop().ok_or_else(|| PersonalizeError::Unknown(key.into()))
    }

    fn add(&mut self, c: &NewConcept) -> Result<StoredConcept> {
        let name = if c.name.is_empty() { c.key.trim_start_matches('<').trim_end_matches('>') } else { &c.name };
        check_fields(&c.key, name, c.category.as_deref())?;
        if c.images.is_empty() {
            return Err(PersonalizeError::invalid(format!("{} images", c.key), "a concept needs at least one image"));
        }
        let root = self.root.clone();
        let stored = self.write_with_files(|tx| {
            if exists(tx, &c.key)? {
                return Err(PersonalizeError::Duplicate(c.key.clone()).into());
            }
            let images = ingest_new(&root, &c.key, &c.images, &[])?;
            let index: Vec<String> = images.iter().map(|i| i.path.clone()).collect();
            let stored = StoredConcept {
                key: c.key.clone(),
                name: name.to_string(),
                category: c.category.clone(),
                info: Some(c.info.clone()),
                fingerprint: c.fingerprint.clone(),
                image_list: images.len() > 1,
                images,
                extra: Map::new(),
            };
            insert(tx, &stored, &index)?;
            Ok(stored)
        })?;
        Ok(stored)
    }

    fn edit(&mut self, key: &str, e: &ConceptEdit) -> Result<StoredConcept> {
        let old = self.concept(key)?;
        if e.is_empty() {
            return Ok(old);
        }
        let name = e.name.clone().unwrap_or_else(|| old.name.clone());
        let category = e.category.clone().unwrap_or_else(|| old.category.clone());
        check_fields(key, &name, category.as_deref())?;
        if matches!(&e.images, Some(v) if v.is_empty() && e.add_images.is_empty()) {
            return Err(PersonalizeError::invalid(format!("{key} images"), "a concept needs at least one image"));
        }
        let root = self.root.clone();
        let changed_images = e.images.is_some() || !e.add_images.is_empty();
        self.write_with_files(|tx| {
            // Read again under the write lock: another process may have changed the concept meanwhile.
            let cur = select_rows(tx, Some(key))?.pop().ok_or_else(|| PersonalizeError::Unknown(key.into()))?;
            let info = e.info.clone().or(cur.info);
            let fingerprint = match &e.fingerprint {
                Some(f) => f.as_ref().map(|f| serde_json::to_string(f).expect("fingerprint serializes")),
                None => cur.fingerprint,
            };
            if changed_images {
                let mut st = tx.prepare("SELECT path, hash, file FROM images WHERE concept = ?1 ORDER BY position")?;
                let existing: Vec<StoredImage> = st
                    .query_map([key], |r| Ok(StoredImage { path: r.get(0)?, hash: r.get(1)?, file: r.get(2)? }))?
                    .collect::<rusqlite::Result<_>>()?;
                let mut images = match &e.images {
                    Some(files) => ingest_new(&root, key, files, &[])?,
                    None => existing,
                };
                let more = ingest_new(&root, key, &e.add_images, &images)?;
                images.extend(more);
                set_images(tx, key, &images)?;
            }
            let text = StoredConcept {
                key: key.into(),
                name: name.clone(),
                category: category.clone(),
                info: info.clone(),
                fingerprint: fingerprint.as_deref().map(serde_json::from_str).transpose().map_err(|err| {
                    PersonalizeError::invalid(format!("{key} fingerprint"), format!("is not valid: {err}"))
                })?,
                images: Vec::new(),
                image_list: false,
                extra: Map::new(),
            }
            .info_text();
            tx.execute(
                "UPDATE concepts SET name = ?2, category = ?3, info = ?4, fingerprint = ?5, text_hash = ?6,
                 image_list = CASE WHEN ?7 THEN (SELECT COUNT(*) > 1 FROM images WHERE concept = ?1) ELSE image_list END
                 WHERE key = ?1",
                params![key, name, category, info, fingerprint, hash_bytes(text.as_bytes()), changed_images],
            )?;
            Ok(())
        })?;
        if changed_images || e.info.is_some() || e.fingerprint.is_some() {
            self.sweep()?;
        }
        self.concept(key)
    }

    fn remove(&mut self, key: &str) -> Result<StoredConcept> {
        let old = self.concept(key)?;
        self.write(|tx| {
            if tx.execute("DELETE FROM concepts WHERE key = ?1", [key])? == 0 {
                return Err(PersonalizeError::Unknown(key.into()).into());
            }
            Ok(())
        })?;
        self.sweep()?;
        Ok(old)
    }

    fn import(&mut self, db: &ConceptDb, opts: &ImportOptions) -> Result<ImportReport> {
        // Every check before the first write: a bad entry leaves the store as it was.
        for (key, c) in &db.concept_dict {
            check_fields(key, &c.name, c.category.as_deref())?;
            for (i, p) in c.image.paths().iter().enumerate() {
                check_rel_path(&format!("concept_dict[\"{key}\"].image[{i}]"), p)?;
            }
        }
        for (path, key) in &db.path_to_concept {
            check_rel_path(&format!("path_to_concept[{key}]"), path)?;
        }
        let root = self.root.clone();
        let report = self.write_with_files(|tx| {
            let mut report = ImportReport::default();
            let mut seen = HashSet::new();
            for (key, c) in &db.concept_dict {
                let replacing = exists(tx, key)?;
                if replacing && !opts.replace {
                    return Err(PersonalizeError::Duplicate(key.clone()).into());
                }
                let mut images = Vec::new();
                for p in c.image.paths() {
                    let (hash, file) = match opts.images {
                        ImageMode::Copy => {
                            let (h, f) = ingest(&root, &opts.image_root.join(p))?;
                            if seen.insert(h.clone()) {
                                report.images += 1;
                            }
                            (Some(h), Some(f))
                        }
                        ImageMode::PathsOnly => (None, None),
                    };
                    images.push(StoredImage { path: p.clone(), hash, file });
                }
                let (info, fingerprint) = match &c.info {
                    repic_data::Info::Text(t) => (Some(t.clone()), None),
                    repic_data::Info::Fingerprint(f) => (None, Some(f.clone())),
                };
                if replacing {
                    tx.execute("DELETE FROM concepts WHERE key = ?1", [key])?;
                    report.replaced += 1;
                } else {
                    report.added += 1;
                }
                let stored = StoredConcept {
                    key: key.clone(),
                    name: c.name.clone(),
                    category: c.category.clone(),
                    info,
                    fingerprint,
                    images,
                    image_list: matches!(c.image, repic_data::Images::Many(_)),
                    extra: c.extra.clone(),
                };
                insert(tx, &stored, &[])?;
            }
            // `path_to_concept` in the file's own order (it need not follow concept_dict's).
            for (path, key) in &db.path_to_concept {
                add_index(tx, path, key)?;
            }
            if !db.extra.is_empty() {
                let old: Option<String> =
                    tx.query_row("SELECT value FROM meta WHERE key = 'db_extra'", [], |r| r.get(0)).optional()?;
                let mut extra: Map<String, Value> = old.and_then(|s| serde_json::from_str(&s).ok()).unwrap_or_default();
                extra.extend(db.extra.clone());
                tx.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('db_extra', ?1)",
                    [serde_json::to_string(&extra).expect("JSON map serializes")],
                )?;
            }
            Ok(report)
        })?;
        if report.replaced > 0 {
            self.sweep()?;
        }
        Ok(report)
    }

    fn export(&self) -> Result<ConceptDb> {
        let concepts = self.concepts()?;
        let mut st = self.sql(self.conn.prepare("SELECT path, concept FROM path_index ORDER BY position"))?;
        let index = self.sql(st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))))?;
        let mut db = ConceptDb::default();
        for item in index {
            let (p, k) = self.sql(item)?;
            db.path_to_concept.insert(p, k);
        }
        for c in concepts {
            db.concept_dict.insert(c.key.clone(), c.to_concept());
        }
        if let Some(s) = self.meta("db_extra")? {
            db.extra = serde_json::from_str(&s).map_err(|e| PersonalizeError::Store {
                path: self.root.clone(),
                msg: format!("stored top-level keys are not valid JSON: {e}"),
            })?;
        }
        Ok(db)
    }

    fn version(&self) -> Result<u64> {
        Ok(self.meta("version")?.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    fn encoder(&self) -> Result<Option<EncoderRef>> {
        let (Some(dir), Some(id)) = (self.meta("encoder_dir")?, self.meta("encoder_id")?) else { return Ok(None) };
        Ok(Some(EncoderRef { dir: dir.into(), id, stamp: self.meta("encoder_stamp")?.unwrap_or_default() }))
    }

    fn set_encoder(&mut self, enc: &EncoderRef) -> Result<()> {
        self.write(|tx| {
            for (k, v) in [
                ("encoder_dir", enc.dir.to_string_lossy().as_ref()),
                ("encoder_id", &enc.id),
                ("encoder_stamp", &enc.stamp),
            ] {
                tx.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)", [k, v])?;
            }
            // Embeddings of another encoder are never used again: a new encoder re-embeds everything.
            tx.execute("DELETE FROM embeddings WHERE encoder != ?1", [&enc.id])?;
            Ok(())
        })
    }

    fn embeddings(&self, kind: EmbeddingKind, encoder: &str) -> Result<HashMap<String, Vec<f32>>> {
        let mut st =
            self.sql(self.conn.prepare("SELECT hash, dim, vector FROM embeddings WHERE kind = ?1 AND encoder = ?2"))?;
        let rows = self.sql(st.query_map([kind.as_str(), encoder], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, Vec<u8>>(2)?))
        }))?;
        let mut out = HashMap::new();
        for row in rows {
            let (hash, dim, blob) = self.sql(row)?;
            if dim <= 0 || blob.len() != dim as usize * 4 {
                return Err(PersonalizeError::Store {
                    path: self.root.clone(),
                    msg: format!("embedding of {hash}: {} bytes for dimension {dim}", blob.len()),
                });
            }
            out.insert(hash, blob.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect());
        }
        Ok(out)
    }

    fn put_embeddings(&mut self, kind: EmbeddingKind, encoder: &str, items: &[(String, Vec<f32>)]) -> Result<()> {
        for (hash, v) in items {
            if v.is_empty() || v.iter().any(|x| !x.is_finite()) {
                return Err(PersonalizeError::invalid(format!("embedding of {hash}"), "is empty or not finite"));
            }
        }
        self.write(|tx| {
            let mut st = tx.prepare(
                "INSERT OR REPLACE INTO embeddings (kind, hash, encoder, dim, vector) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (hash, v) in items {
                let blob: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                st.execute(params![kind.as_str(), hash, encoder, v.len() as i64, blob])?;
            }
            Ok(())
        })
    }
}
