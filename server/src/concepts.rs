//! Concepts over HTTP, on the same store the CLI edits: `GET /v1/concepts`, `GET /v1/concepts/{key}`,
//! `POST /v1/concepts` (multipart: `key`, `name`, `category`, `info`, one or more `image` files),
//! `PATCH /v1/concepts/{key}` (multipart as POST: text fields change, `image` files replace the images and
//! `add_image` files are appended; or a JSON object of `name`, `category`, `info`), `DELETE /v1/concepts/{key}`,
//! and `POST /v1/retrieve` (`{"text", "image": data URL, "top_k"}`: the references RAP would put in a prompt).
//! Every change is one store transaction: a refused request leaves the store as it was.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use repic_personalize::{
    ConceptEdit, ConceptStore, NewConcept, PersonalizeError, RetrieveOptions, SqliteStore, StoredConcept,
};
use serde_json::{Value, json};

use crate::AppState;
use crate::chat::error_response;
use crate::openai::{ApiError, decode_data_url};
use crate::personal::Personal;

fn concept_json(c: &StoredConcept) -> Value {
    json!({"key": c.key, "name": c.name, "category": c.category, "info": c.info_text(),
           "images": c.images.iter().map(|i| &i.path).collect::<Vec<_>>(), "fingerprint": c.fingerprint})
}

fn store_error(e: PersonalizeError) -> ApiError {
    let status = match &e {
        PersonalizeError::Unknown(_) => 404,
        PersonalizeError::Duplicate(_) => 409,
        PersonalizeError::Invalid { .. } | PersonalizeError::Image { .. } => 400,
        _ => 500,
    };
    match e {
        PersonalizeError::Invalid { ref field, .. } => {
            ApiError { status, param: Some(field.clone()), message: e.to_string() }
        }
        // A bad upload: named by its place among the uploads (`image1` = the first file), not by the temporary
        // folder it was written to.
        PersonalizeError::Image { path, msg } => {
            let name = path.file_stem().map_or_else(|| "image".into(), |n| n.to_string_lossy().into_owned());
            ApiError { status, message: format!("upload {name}: {msg}"), param: Some(name) }
        }
        e => ApiError { status, message: e.to_string(), param: None },
    }
}

fn personal(state: &AppState) -> Result<Arc<Personal>, ApiError> {
    state.personal.clone().ok_or_else(|| ApiError {
        status: 404,
        message: "this server has no concept store (start it with --db STORE)".into(),
        param: None,
    })
}

/// Run a store operation off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PersonalizeError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError { status: 500, message: e.to_string(), param: None })?
        .map_err(store_error)
}

fn respond(r: Result<Response, ApiError>) -> Response {
    r.unwrap_or_else(|e| error_response(&e))
}

/// `GET /v1/concepts`.
pub async fn list(State(state): State<Arc<AppState>>) -> Response {
    respond(
        async {
            let dir = personal(&state)?.store().to_path_buf();
            let cs = blocking(move || SqliteStore::open(&dir)?.concepts()).await?;
            Ok(axum::Json(json!({"object": "list", "data": cs.iter().map(concept_json).collect::<Vec<_>>()}))
                .into_response())
        }
        .await,
    )
}

/// `GET /v1/concepts/{key}`.
pub async fn one(State(state): State<Arc<AppState>>, Path(key): Path<String>) -> Response {
    respond(
        async {
            let dir = personal(&state)?.store().to_path_buf();
            let c = blocking(move || SqliteStore::open(&dir)?.concept(&key)).await?;
            Ok(axum::Json(concept_json(&c)).into_response())
        }
        .await,
    )
}

/// `DELETE /v1/concepts/{key}`.
pub async fn remove(State(state): State<Arc<AppState>>, Path(key): Path<String>) -> Response {
    respond(
        async {
            let dir = personal(&state)?.store().to_path_buf();
            let c = blocking(move || SqliteStore::open(&dir)?.remove(&key)).await?;
            Ok(axum::Json(json!({"deleted": c.key})).into_response())
        }
        .await,
    )
}

/// A multipart form: text fields and uploaded files (written into a temporary folder, checked by the store).
struct Form {
    fields: std::collections::HashMap<String, String>,
    images: Vec<PathBuf>,
    add_images: Vec<PathBuf>,
    _dir: tempfile::TempDir,
}

async fn read_form(mut m: Multipart, max_images: usize) -> Result<Form, ApiError> {
    let dir = tempfile::tempdir().map_err(|e| ApiError { status: 500, message: e.to_string(), param: None })?;
    let mut form = Form { fields: Default::default(), images: Vec::new(), add_images: Vec::new(), _dir: dir };
    let mut n = 0;
    while let Some(field) = m.next_field().await.map_err(|e| ApiError::invalid("body", e.to_string()))? {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "key" | "name" | "category" | "info" => {
                let text = field.text().await.map_err(|e| ApiError::invalid(name.clone(), e.to_string()))?;
                // A browser form sends its empty inputs too: an empty field is an absent one.
                if !text.trim().is_empty() {
                    form.fields.insert(name, text);
                }
            }
            "image" | "add_image" => {
                if field.file_name().is_some_and(str::is_empty) {
                    continue;
                }
                n += 1;
                if n > max_images {
                    return Err(ApiError::invalid(name, format!("at most {max_images} images")));
                }
                let bytes = field.bytes().await.map_err(|e| ApiError::invalid(name.clone(), e.to_string()))?;
                // The upload's own file name is never used: the store names copies by content, and the database
                // path becomes `<key>/image{n}.{png|jpg}`.
                let ext = match image::guess_format(&bytes) {
                    Ok(image::ImageFormat::Jpeg) => "jpg",
                    Ok(image::ImageFormat::Png) => "png",
                    _ => "bin",
                };
                let path = form._dir.path().join(format!("image{n}.{ext}"));
                std::fs::write(&path, &bytes).map_err(|e| ApiError {
                    status: 500,
                    message: e.to_string(),
                    param: None,
                })?;
                if name == "image" { form.images.push(path) } else { form.add_images.push(path) }
            }
            other => {
                return Err(ApiError::invalid(
                    other,
                    "unknown form field (key, name, category, info, image, add_image)",
                ));
            }
        }
    }
    Ok(form)
}

/// `POST /v1/concepts`.
pub async fn create(State(state): State<Arc<AppState>>, m: Multipart) -> Response {
    respond(
        async {
            let dir = personal(&state)?.store().to_path_buf();
            let mut form = read_form(m, state.limits.max_images).await?;
            let key = form.fields.remove("key").ok_or_else(|| ApiError::invalid("key", "is required"))?;
            let c = NewConcept {
                key,
                name: form.fields.remove("name").unwrap_or_default(),
                category: form.fields.remove("category"),
                info: form.fields.remove("info").unwrap_or_default(),
                fingerprint: None,
                images: std::mem::take(&mut form.images),
            };
            let added = blocking(move || {
                let _keep = form;
                SqliteStore::open(&dir)?.add(&c)
            })
            .await?;
            Ok((axum::http::StatusCode::CREATED, axum::Json(concept_json(&added))).into_response())
        }
        .await,
    )
}

/// `PATCH /v1/concepts/{key}`: multipart (images) or JSON (text fields).
pub async fn edit(State(state): State<Arc<AppState>>, Path(key): Path<String>, req: Request) -> Response {
    respond(
        async {
            let dir = personal(&state)?.store().to_path_buf();
            let json = req
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/json"));
            let (edit, form) = if json {
                let body = axum::body::to_bytes(req.into_body(), state.limits.max_body_bytes)
                    .await
                    .map_err(|e| ApiError::invalid("body", e.to_string()))?;
                #[derive(serde::Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Patch {
                    name: Option<String>,
                    category: Option<String>,
                    info: Option<String>,
                }
                let p: Patch = serde_json::from_slice(&body).map_err(|e| ApiError::invalid("body", e.to_string()))?;
                (ConceptEdit { name: p.name, category: p.category.map(Some), info: p.info, ..Default::default() }, None)
            } else {
                let m =
                    Multipart::from_request(req, &()).await.map_err(|e| ApiError::invalid("body", e.body_text()))?;
                let mut f = read_form(m, state.limits.max_images).await?;
                let e = ConceptEdit {
                    name: f.fields.remove("name"),
                    category: f.fields.remove("category").map(Some),
                    info: f.fields.remove("info"),
                    fingerprint: None,
                    images: (!f.images.is_empty()).then(|| std::mem::take(&mut f.images)),
                    add_images: std::mem::take(&mut f.add_images),
                };
                (e, Some(f))
            };
            if edit.is_empty() {
                return Err(ApiError::invalid("body", "nothing to change"));
            }
            let c = blocking(move || {
                let _keep = form;
                SqliteStore::open(&dir)?.edit(&key, &edit)
            })
            .await?;
            Ok(axum::Json(concept_json(&c)).into_response())
        }
        .await,
    )
}

/// `POST /v1/retrieve`: `{"text": ..., "image": "data:...", "top_k": K}`.
pub async fn retrieve(State(state): State<Arc<AppState>>, body: axum::body::Bytes) -> Response {
    respond(
        async {
            let p = personal(&state)?;
            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Query {
                #[serde(default)]
                text: String,
                image: Option<String>,
                top_k: Option<usize>,
                threshold: Option<f32>,
            }
            let q: Query = serde_json::from_slice(&body).map_err(|e| ApiError::invalid("body", e.to_string()))?;
            let dir = tempfile::tempdir().map_err(|e| ApiError { status: 500, message: e.to_string(), param: None })?;
            let image = match &q.image {
                Some(url) => {
                    let (bytes, ext) = decode_data_url(url, state.limits.max_image_bytes, "image")?;
                    let path = dir.path().join(format!("query.{ext}"));
                    std::fs::write(&path, bytes).map_err(|e| ApiError {
                        status: 500,
                        message: e.to_string(),
                        param: None,
                    })?;
                    Some(path)
                }
                None => None,
            };
            let opts = RetrieveOptions { top_k: q.top_k.unwrap_or(1), threshold: q.threshold, ..Default::default() };
            let text = q.text.clone();
            let (found, refs) = blocking(move || p.retrieve(&text, image.as_deref(), &opts)).await?;
            let block: Vec<String> = repic_data::reference_parts(&refs)
                .into_iter()
                .map(|part| match part {
                    repic_data::Part::Text(t) => t,
                    repic_data::Part::Image(_) => "<image>".into(),
                })
                .collect();
            Ok(axum::Json(json!({"results": found.results, "crops": found.crops, "prompt_block": block.concat()}))
                .into_response())
        }
        .await,
    )
}
