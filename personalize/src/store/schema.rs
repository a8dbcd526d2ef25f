//! The SQLite schema of the concept store and its version check.

/// Version written by this build; a store with a higher version is refused.
pub(crate) const VERSION: i64 = 1;

/// Tables: `meta` (schema version, encoder, top-level JSON extras), `concepts` (one row per key, in insertion
/// order), `images` (a concept's reference images, in order), `path_index` (database.json's
/// `path_to_concept`, verbatim, for lossless export) and `embeddings` (f32 little-endian vectors keyed by what
/// they embed, its hash and the encoder id).
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS concepts (
    key TEXT PRIMARY KEY,
    position INTEGER NOT NULL UNIQUE,
    name TEXT NOT NULL,
    category TEXT,
    info TEXT,
    fingerprint TEXT,
    text_hash TEXT NOT NULL,
    image_list INTEGER NOT NULL,
    extra TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    concept TEXT NOT NULL REFERENCES concepts(key) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    path TEXT NOT NULL,
    hash TEXT,
    file TEXT,
    PRIMARY KEY (concept, position)
);
CREATE TABLE IF NOT EXISTS path_index (
    position INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    concept TEXT NOT NULL REFERENCES concepts(key) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS embeddings (
    kind TEXT NOT NULL,
    hash TEXT NOT NULL,
    encoder TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (kind, hash, encoder)
);
";
