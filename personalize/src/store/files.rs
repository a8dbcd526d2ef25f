//! The store's image files and the checks on names and paths that come from users: images are copied in under
//! their content hash (`images/<sha256>.<ext>`), so no user-given name ever becomes a path inside the store;
//! database paths must be relative and stay below their root.

use std::io::Write;
use std::path::{Component, Path};

use sha2::{Digest, Sha256};

use crate::{PersonalizeError, Result};

/// The folder of image copies, relative to the store's folder.
pub(crate) const IMAGES: &str = "images";

/// Longest key, name or path accepted (characters).
const MAX_LEN: usize = 512;

/// SHA-256 of `bytes` as lower-case hex.
pub fn hash_bytes(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A concept key: `<` + 1..=200 characters without angle brackets or control characters + `>`.
pub fn check_key(key: &str) -> Result<()> {
    let inner = key.strip_prefix('<').and_then(|k| k.strip_suffix('>'));
    let msg = match inner {
        None => "must be in angle brackets, e.g. <bo>".to_string(),
        Some(k) if k.trim().is_empty() => "is empty between its brackets".into(),
        Some(k) if k.chars().count() > 200 => "is longer than 200 characters".into(),
        Some(k) if k.contains(['<', '>']) || k.chars().any(char::is_control) => {
            "may not hold angle brackets or control characters".into()
        }
        Some(k) if k != k.trim() => "may not start or end with spaces".into(),
        Some(_) => return Ok(()),
    };
    Err(PersonalizeError::invalid(format!("key {key:?}"), msg))
}

/// A non-empty, single-line text field of at most 512 characters (names, categories).
pub(crate) fn check_label(field: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(PersonalizeError::invalid(field, "is empty"));
    }
    if value.chars().count() > MAX_LEN || value.chars().any(char::is_control) {
        return Err(PersonalizeError::invalid(field, "must be one line of at most 512 characters"));
    }
    Ok(())
}

/// A database image path: relative, below its root (`.` allowed, `..` and absolute paths refused), no NUL.
pub fn check_rel_path(field: &str, path: &str) -> Result<()> {
    let bad = |msg: &str| Err(PersonalizeError::invalid(format!("{field} {path:?}"), msg));
    if path.is_empty() || path.len() > 4096 || path.contains('\0') {
        return bad("must be a non-empty path without NUL bytes");
    }
    let p = Path::new(path);
    let mut normal = 0;
    for c in p.components() {
        match c {
            Component::Normal(_) => normal += 1,
            Component::CurDir => {}
            Component::ParentDir => return bad("leaves its folder (`..`); paths must stay below the image root"),
            Component::RootDir | Component::Prefix(_) => {
                return bad("is absolute; database paths are relative to the image root");
            }
        }
    }
    if normal == 0 || path.contains('\\') {
        return bad("must name a file below the image root with `/` separators");
    }
    Ok(())
}

/// Check that `bytes` are a whole PNG or JPEG image with pixels; returns its file extension (`png`, `jpg`), or
/// what is wrong ("is not an image ...", "is a Gif image ...", "does not decode: ...", "has no pixels").
pub fn check_image_bytes(bytes: &[u8]) -> Result<&'static str, String> {
    let format = image::guess_format(bytes).map_err(|_| "is not an image (PNG and JPEG are supported)".to_string())?;
    let ext = match format {
        image::ImageFormat::Png => "png",
        image::ImageFormat::Jpeg => "jpg",
        other => return Err(format!("is a {other:?} image; PNG and JPEG are supported")),
    };
    let img = image::load_from_memory_with_format(bytes, format).map_err(|e| format!("does not decode: {e}"))?;
    if img.width() == 0 || img.height() == 0 {
        return Err("has no pixels".into());
    }
    Ok(ext)
}

/// Read an image file, check that it decodes, and copy it into `root/images` under its hash (written to a
/// temporary file, synced, then renamed: a crash leaves either nothing or the whole file). Returns (hash,
/// file relative to `root`). A file already stored is not written again.
pub(crate) fn ingest(root: &Path, src: &Path) -> Result<(String, String)> {
    let bytes = std::fs::read(src).map_err(|e| PersonalizeError::Image { path: src.into(), msg: e.to_string() })?;
    let ext = check_image_bytes(&bytes).map_err(|msg| PersonalizeError::Image { path: src.into(), msg })?;
    let hash = hash_bytes(&bytes);
    let rel = format!("{IMAGES}/{hash}.{ext}");
    let dest = root.join(&rel);
    if !dest.exists() {
        let dir = root.join(IMAGES);
        std::fs::create_dir_all(&dir).map_err(|e| PersonalizeError::io(&dir, e))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".incoming-")
            .tempfile_in(&dir)
            .map_err(|e| PersonalizeError::io(&dir, e))?;
        tmp.write_all(&bytes).map_err(|e| PersonalizeError::io(&dest, e))?;
        tmp.as_file().sync_all().map_err(|e| PersonalizeError::io(&dest, e))?;
        tmp.persist(&dest).map_err(|e| PersonalizeError::io(&dest, e.error))?;
    }
    Ok((hash, rel))
}

/// Delete the image copies in `root/images` that `referenced` does not name, and leftovers of interrupted
/// copies. Called after a commit that dropped references; a failure to delete is logged, never an error
/// (an unreferenced file costs disk only).
pub(crate) fn delete_unreferenced(root: &Path, referenced: &std::collections::HashSet<String>) {
    let dir = root.join(IMAGES);
    let Ok(entries) = std::fs::read_dir(&dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !referenced.contains(&format!("{IMAGES}/{name}"))
            && let Err(err) = std::fs::remove_file(e.path())
        {
            tracing::warn!("could not delete the unused image {}: {err}", e.path().display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_paths_from_users_are_checked() {
        for ok in ["<bo>", "<black widow>", "<Character_A>", "<brown-duck>"] {
            check_key(ok).unwrap();
        }
        for bad in ["bo", "<>", "< >", "<a<b>", "<a\nb>", "<bo", "< bo>", ""] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        for ok in ["bo.png", "./data/database_tot/x/Anya.jpg", "database_qa/bo.png"] {
            check_rel_path("image", ok).unwrap();
        }
        for bad in ["", "/etc/passwd", "../x.png", "a/../../x.png", ".", "a\\..\\b.png", "a\0.png"] {
            assert!(check_rel_path("image", bad).is_err(), "{bad:?}");
        }
        let e = check_rel_path("concept_dict[\"<a>\"].image", "../../x.png").unwrap_err().to_string();
        assert_eq!(
            e,
            "concept_dict[\"<a>\"].image \"../../x.png\": leaves its folder (`..`); paths must stay below the image root"
        );
    }

    #[test]
    fn ingest_copies_by_hash_and_refuses_non_images() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a.png");
        image::RgbImage::from_pixel(3, 2, image::Rgb([1, 2, 3])).save(&src).unwrap();
        let store = dir.path().join("store");
        let (hash, rel) = ingest(&store, &src).unwrap();
        assert_eq!(rel, format!("images/{hash}.png"));
        assert_eq!(std::fs::read(store.join(&rel)).unwrap(), std::fs::read(&src).unwrap());
        assert_eq!(ingest(&store, &src).unwrap().0, hash);
        let txt = dir.path().join("notes.png");
        std::fs::write(&txt, "not an image").unwrap();
        let e = ingest(&store, &txt).unwrap_err().to_string();
        assert!(e.ends_with("notes.png: is not an image (PNG and JPEG are supported)"), "{e}");
        let e = ingest(&store, &dir.path().join("missing.png")).unwrap_err().to_string();
        assert!(e.contains("missing.png: No such file"), "{e}");
        let mut truncated = std::fs::read(&src).unwrap();
        truncated.truncate(30);
        std::fs::write(&txt, truncated).unwrap();
        assert!(ingest(&store, &txt).unwrap_err().to_string().contains("does not decode"));
    }
}
