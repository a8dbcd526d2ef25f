//! `POST /v1/recognize`: R2P on the server's model and concept store — which concept is in the image
//! (`{"image": data URL, "shortlist": K, "max_new_tokens": N}`), answered with R2P's whole trace. It runs on the
//! model thread between two decode steps (its reasoning pauses the running batch while it generates).

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use repic_models::{Checkpoint, DefaultBackend as Backend, default_device};
use repic_personalize::r2p::{R2pOptions, recognize as r2p_recognize};

use crate::AppState;
use crate::chat::error_response;
use crate::openai::{ApiError, decode_data_url};

/// The handler.
pub async fn recognize(State(state): State<Arc<AppState>>, body: axum::body::Bytes) -> Response {
    match run(state, body).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

async fn run(state: Arc<AppState>, body: axum::body::Bytes) -> Result<Response, ApiError> {
    let personal = state.personal.clone().ok_or_else(|| ApiError {
        status: 404,
        message: "this server has no concept store (start it with --db STORE)".into(),
        param: None,
    })?;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Query {
        image: String,
        shortlist: Option<usize>,
        max_new_tokens: Option<usize>,
    }
    let q: Query = serde_json::from_slice(&body).map_err(|e| ApiError::invalid("body", e.to_string()))?;
    let opts = R2pOptions {
        shortlist: q.shortlist.unwrap_or(3),
        max_new_tokens: q.max_new_tokens.unwrap_or(256),
        ..Default::default()
    };
    if !(1..=5).contains(&opts.shortlist) {
        return Err(ApiError::invalid("shortlist", "must be 1 to 5"));
    }
    if opts.max_new_tokens == 0 || opts.max_new_tokens > state.limits.max_context {
        return Err(ApiError::invalid("max_new_tokens", format!("must be 1 to {}", state.limits.max_context)));
    }
    let (bytes, ext) = decode_data_url(&q.image, state.limits.max_image_bytes, "image")?;
    let dir = tempfile::tempdir().map_err(|e| ApiError { status: 500, message: e.to_string(), param: None })?;
    let path = dir.path().join(format!("query.{ext}"));
    std::fs::write(&path, bytes).map_err(|e| ApiError { status: 500, message: e.to_string(), param: None })?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = Box::new(move |ckpt: &dyn std::any::Any| {
        let _keep = dir;
        let result = match ckpt.downcast_ref::<Checkpoint<Backend>>() {
            Some(ckpt) => {
                personal.with(|r| r2p_recognize(ckpt, r, &path, &opts, &default_device())).map_err(|e| e.to_string())
            }
            None => Err("the model thread runs another backend".to_string()),
        };
        let _ = tx.send(result);
    });
    if state.scheduler.run_task(task).is_err() {
        return Err(ApiError { status: 429, message: "the server is busy; retry shortly".into(), param: None });
    }
    let result =
        rx.await.map_err(|_| ApiError { status: 500, message: "the model thread stopped".into(), param: None })?;
    let r = result.map_err(|e| ApiError { status: 500, message: format!("recognition: {e}"), param: None })?;
    Ok(axum::Json(r).into_response())
}
