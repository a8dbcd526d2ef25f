//! `repic serve`: the model behind an OpenAI-compatible HTTP API (axum + tokio). One scheduler thread owns the
//! model and batches every running request continuously (`scheduler`); the HTTP side checks requests field by
//! field and answers as OpenAI's API does (`openai`, `chat`).

pub mod chat;
pub mod concepts;
pub mod metrics;
pub mod openai;
pub mod personal;
pub mod recognize;
pub mod scheduler;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::openai::ApiError;
use crate::scheduler::Scheduler;

/// Request limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Images per request at most.
    pub max_images: usize,
    /// Bytes per decoded image at most.
    pub max_image_bytes: usize,
    /// Choices per request at most.
    pub max_n: usize,
    /// New tokens when a request names none.
    pub default_max_tokens: usize,
    /// The model's context (prompt + new tokens).
    pub max_context: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 20 << 20,
            max_images: 8,
            max_image_bytes: 10 << 20,
            max_n: 8,
            default_max_tokens: 512,
            max_context: 32768,
        }
    }
}

/// What every handler shares.
pub struct AppState {
    /// The queue to the model.
    pub scheduler: Scheduler,
    /// The served model's name (`/v1/models`).
    pub model_name: String,
    /// Request limits.
    pub limits: Limits,
    /// Bearer token every route requires, when set.
    pub api_key: Option<String>,
    /// Start time (seconds since the epoch).
    pub created: u64,
    /// The concept store, when the server personalizes.
    pub personal: Option<Arc<personal::Personal>>,
    /// Request counters for `/metrics`.
    pub http: metrics::HttpStats,
}

impl AppState {
    /// State for `scheduler` serving `model_name`.
    pub fn new(scheduler: Scheduler, model_name: String, limits: Limits, api_key: Option<String>) -> Self {
        let created = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        AppState { scheduler, model_name, limits, api_key, created, personal: None, http: Default::default() }
    }

    /// The same state personalizing with `personal`'s store.
    pub fn with_personal(mut self, personal: personal::Personal) -> Self {
        self.personal = Some(Arc::new(personal));
        self
    }
}

async fn auth(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    // The page itself holds no data (it asks for the key and sends it with every API call).
    if let (Some(key), false) = (&state.api_key, req.uri().path() == "/") {
        let given =
            req.headers().get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(key.as_str()) {
            let e = ApiError {
                status: 401,
                message: "a valid `Authorization: Bearer` key is required".into(),
                param: None,
            };
            return chat::error_response(&e);
        }
    }
    next.run(req).await
}

async fn health() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

async fn models(State(state): State<Arc<AppState>>) -> Response {
    axum::Json(json!({"object": "list", "data": [{"id": state.model_name, "object": "model",
        "created": state.created, "owned_by": "repic"}]}))
    .into_response()
}

/// The web page (`/`): concepts and questions in the browser, on the API below.
async fn page() -> Response {
    axum::response::Html(include_str!("page.html")).into_response()
}

async fn not_found() -> Response {
    chat::error_response(&ApiError { status: 404, message: "no such route".into(), param: None })
}

/// The routes: `/` (the web page), `/health`, `/metrics`, `/v1/models`, `/v1/chat/completions`, `/v1/concepts[/{key}]`, `/v1/retrieve`,
/// `/v1/recognize`, behind
/// the key check and the body limit.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.limits.max_body_bytes;
    Router::new()
        .route("/", get(page))
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .route("/metrics", get(metrics::metrics))
        .route("/v1/chat/completions", post(chat::completions))
        .route("/v1/concepts", get(concepts::list).post(concepts::create))
        .route("/v1/concepts/{key}", get(concepts::one).patch(concepts::edit).delete(concepts::remove))
        .route("/v1/retrieve", post(concepts::retrieve))
        .route("/v1/recognize", post(recognize::recognize))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}
