//! Personalization in the server: the concept store the CLI edits, its keys kept in memory and reloaded when
//! the store's version moves (an edit by any process is seen by the next request), RAP retrieval for a chat's
//! text and query image, and the references put in front of the query as RePIC's prompt does.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use repic_data::{Message, Part, PromptReference, Role, reference_parts};
use repic_models::{DefaultBackend as Backend, default_device};
use repic_personalize::{
    ConceptStore, CropSource, PersonalizeError, Reference, Retrieval, RetrieveOptions, Retriever, SqliteStore, open_rgb,
};

/// The store and its keys.
pub struct Personal {
    store: PathBuf,
    keys: Mutex<Option<(u64, Arc<Retriever<Backend>>)>>,
}

impl Personal {
    /// Open the store in `dir` (it must name an encoder) and load its keys.
    pub fn open(dir: &Path) -> Result<Self, PersonalizeError> {
        let p = Personal { store: dir.to_path_buf(), keys: Mutex::new(None) };
        p.with(|_| Ok(()))?;
        Ok(p)
    }

    /// The store's folder.
    pub fn store(&self) -> &Path {
        &self.store
    }

    /// The up-to-date keys (reloaded, and missing embeddings made, after any commit to the store); the lock is
    /// held only while they are checked, so a long user of them (R2P) does not hold up the others.
    pub fn current(&self) -> Result<Arc<Retriever<Backend>>, PersonalizeError> {
        let mut guard = self.keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut store = SqliteStore::open(&self.store)?;
        let version = store.version()?;
        if guard.as_ref().is_none_or(|(v, _)| *v != version) {
            let (r, _) = Retriever::<Backend>::open(&mut store, None, &default_device(), &mut |_, _| {})?;
            *guard = Some((store.version()?, Arc::new(r)));
        }
        Ok(guard.as_ref().expect("loaded above").1.clone())
    }

    /// Run `f` with up-to-date keys.
    pub fn with<T>(
        &self,
        f: impl FnOnce(&Retriever<Backend>) -> Result<T, PersonalizeError>,
    ) -> Result<T, PersonalizeError> {
        f(self.current()?.as_ref())
    }

    /// RAP retrieval for `text` and the image file `image` (the whole image as the crop).
    pub fn retrieve(
        &self,
        text: &str,
        image: Option<&Path>,
        opts: &RetrieveOptions,
    ) -> Result<(Retrieval, Vec<PromptReference>), PersonalizeError> {
        let img = image.map(open_rgb).transpose()?;
        self.with(|r| {
            let found = r.rap(img.as_ref(), text, &CropSource::Whole, opts)?;
            let refs = r.prompt_references(&found.results);
            Ok((found, refs))
        })
    }
}

/// The last user message's text and its last image (relative to the job's image folder), if any.
pub fn query_of(messages: &[Message]) -> Option<(usize, String, Option<String>)> {
    let (i, m) = messages.iter().enumerate().rev().find(|(_, m)| m.role == Role::User)?;
    let text = m
        .content
        .iter()
        .filter_map(|p| if let Part::Text(t) = p { Some(t.as_str()) } else { None })
        .collect::<Vec<_>>()
        .join(" ");
    let image = m.content.iter().rev().find_map(|p| if let Part::Image(f) = p { Some(f.clone()) } else { None });
    Some((i, text, image))
}

/// Put `refs` in front of message `at` as RePIC's prompt does: each reference's image and `k. Name: <key>,
/// Info: ...`, then the user's own content, whose first text after an image is introduced as the query's.
pub fn personalize(messages: &mut [Message], at: usize, refs: &[PromptReference]) {
    if refs.is_empty() {
        return;
    }
    let m = &mut messages[at];
    let had_image = m.content.iter().any(|p| matches!(p, Part::Image(_)));
    let mut content = reference_parts(refs);
    let mut seen_image = false;
    let mut introduced = false;
    for p in m.content.drain(..) {
        match p {
            Part::Image(f) => {
                seen_image = true;
                content.push(Part::Image(f));
            }
            Part::Text(t) if had_image && seen_image && !introduced => {
                introduced = true;
                content.push(Part::Text(format!("This is the query image. {t}")));
            }
            other => content.push(other),
        }
    }
    m.content = content;
}

/// The references as the response's `repic` extension.
pub fn extension(found: &[Reference]) -> serde_json::Value {
    serde_json::json!({"references": found})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_go_before_the_query_and_the_question_is_introduced() {
        let mut m = vec![Message::system("s"), Message::user_with_images(["q.png"], "Who is this?")];
        let (at, text, image) = query_of(&m).unwrap();
        assert_eq!((at, text.as_str(), image.as_deref()), (1, "Who is this?", Some("q.png")));
        let refs =
            [PromptReference { key: "<bo>".into(), image: Some("/s/images/a.png".into()), info: "A dog.".into() }];
        personalize(&mut m, at, &refs);
        assert_eq!(
            m[1].content,
            [
                Part::Image("/s/images/a.png".into()),
                Part::Text("1. Name: <bo>, Info: A dog.\n".into()),
                Part::Image("q.png".into()),
                Part::Text("This is the query image. Who is this?".into()),
            ]
        );
        let mut plain = vec![Message::user_with_images(Vec::<String>::new(), "Hi <bo>")];
        personalize(&mut plain, 0, &refs);
        assert_eq!(plain[0].content.last(), Some(&Part::Text("Hi <bo>".into())));
    }
}
