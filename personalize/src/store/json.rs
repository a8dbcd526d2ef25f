//! RAP / R2P `database.json` files in and out of a store: import reads a file (images relative to an image
//! root), export writes the JSON atomically and, if asked, the image copies under the paths it names.

use std::path::Path;

use repic_data::ConceptDb;

use super::{ConceptStore, ImportOptions, ImportReport, check_rel_path};
use crate::{PersonalizeError, Result};

/// Import a database.json file; `opts.image_root` defaults to the file's folder when empty.
pub fn import_file(store: &mut dyn ConceptStore, file: &Path, opts: &ImportOptions) -> Result<ImportReport> {
    let db = ConceptDb::load(file)?;
    let mut opts = opts.clone();
    if opts.image_root.as_os_str().is_empty() {
        opts.image_root = file.parent().unwrap_or(Path::new(".")).to_path_buf();
    }
    store.import(&db, &opts).map_err(|e| match e {
        PersonalizeError::Invalid { field, msg } => {
            PersonalizeError::invalid(format!("{}: {field}", file.display()), msg)
        }
        other => other,
    })
}

/// Write the store as database.json at `file` (atomically); with `images`, copy every stored image to its path
/// relative to the file's folder (images imported without their files are skipped and counted). Returns the
/// number of images written and skipped.
pub fn export_file(store: &dyn ConceptStore, file: &Path, images: bool) -> Result<(usize, usize)> {
    let db = store.export()?;
    let counts = if images { export_images(store, file.parent().unwrap_or(Path::new(".")))? } else { (0, 0) };
    db.save(file)?;
    Ok(counts)
}

/// Copy every stored image of `store` to `dir/<its database path>`; returns (written, skipped for having no
/// file). Paths are checked again, so a path can never leave `dir`.
pub fn export_images(store: &dyn ConceptStore, dir: &Path) -> Result<(usize, usize)> {
    let (mut written, mut skipped) = (0, 0);
    for c in store.concepts()? {
        for img in &c.images {
            check_rel_path(&format!("{} image", c.key), &img.path)?;
            let Some(file) = &img.file else {
                skipped += 1;
                continue;
            };
            let src = store.root().join(file);
            let bytes = std::fs::read(&src).map_err(|e| PersonalizeError::io(&src, e))?;
            repic_data::write_atomic(&dir.join(&img.path), &bytes)?;
            written += 1;
        }
    }
    Ok((written, skipped))
}
