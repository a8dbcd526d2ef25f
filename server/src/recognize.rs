//! `POST /v1/recognize`: R2P on the server's model and concept store — which concept is in the image
//! (`{"image": data URL, "shortlist": K, "max_new_tokens": N}`), answered with R2P's whole trace. R2P runs on a
//! blocking thread: its reasoning is a greedy job in the continuous batch (decoded alongside the chats), its
//! option probabilities (one forward pass each) are tasks between two decode steps.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use repic_data::Message;
use repic_models::{Checkpoint, DefaultBackend as Backend, SamplingOptions, default_device};
use repic_personalize::r2p::{R2pOptions, recognize as r2p_recognize};
use repic_personalize::{LocalVlm, PersonalizeError, Vlm};

use crate::AppState;
use crate::chat::error_response;
use crate::openai::{ApiError, decode_data_url};
use crate::scheduler::{Event, Job, Scheduler};

/// The served model as R2P calls it from a blocking thread: greedy answers are jobs of the continuous batch,
/// option probabilities tasks on the model thread.
pub struct BatchedVlm {
    /// The model thread's queue.
    pub scheduler: Scheduler,
    /// Set when the queue was full (the handler then answers 429).
    pub busy: std::sync::atomic::AtomicBool,
}

impl BatchedVlm {
    fn refused(&self) -> PersonalizeError {
        self.busy.store(true, std::sync::atomic::Ordering::Relaxed);
        busy()
    }
}

fn busy() -> PersonalizeError {
    PersonalizeError::invalid("server", "the queue is full; retry shortly")
}

fn stopped() -> PersonalizeError {
    PersonalizeError::invalid("server", "the model thread stopped")
}

impl Vlm for BatchedVlm {
    fn greedy(
        &self,
        messages: &[Message],
        max_new_tokens: usize,
        repetition_penalty: f64,
    ) -> Result<String, PersonalizeError> {
        let (events, mut rx) = tokio::sync::mpsc::channel(self.scheduler.stream_buffer);
        let job = Job {
            messages: messages.to_vec(),
            images: None,
            sampling: SamplingOptions { temperature: 0.0, repetition_penalty, ..Default::default() },
            max_new_tokens,
            stop: Vec::new(),
            seed: 0,
            ignore_eos: false,
            n: 1,
            events,
        };
        self.scheduler.submit(job).map_err(|_| self.refused())?;
        let mut text = String::new();
        while let Some(event) = rx.blocking_recv() {
            match event {
                Event::Started { .. } => {}
                Event::Delta { text: t, .. } => text.push_str(&t),
                Event::Done { .. } => return Ok(text),
                Event::Failed { message, .. } => return Err(PersonalizeError::invalid("generation", message)),
            }
        }
        Err(stopped())
    }

    fn option_probs(&self, messages: &[Message], prefix: &str, options: &[&str]) -> Result<Vec<f32>, PersonalizeError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let (messages, prefix) = (messages.to_vec(), prefix.to_string());
        let options: Vec<String> = options.iter().map(|o| o.to_string()).collect();
        let task = Box::new(move |ckpt: &dyn std::any::Any| {
            let result = match ckpt.downcast_ref::<Checkpoint<Backend>>() {
                Some(ckpt) => {
                    let options: Vec<&str> = options.iter().map(String::as_str).collect();
                    LocalVlm { ckpt, device: &default_device() }.option_probs(&messages, &prefix, &options)
                }
                None => Err(PersonalizeError::invalid("server", "the model thread runs another backend")),
            };
            let _ = tx.send(result);
        });
        self.scheduler.run_task(task).map_err(|_| self.refused())?;
        rx.recv().map_err(|_| stopped())?
    }
}

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
    let vlm = Arc::new(BatchedVlm { scheduler: state.scheduler.clone(), busy: Default::default() });
    let v = vlm.clone();
    let result = tokio::task::spawn_blocking(move || {
        let _keep = dir;
        let retriever = personal.current()?;
        r2p_recognize(v.as_ref(), &retriever, &path, &opts)
    })
    .await
    .map_err(|e| ApiError { status: 500, message: format!("recognition: {e}"), param: None })?;
    if vlm.busy.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(ApiError::busy());
    }
    let r = result.map_err(|e| ApiError { status: 500, message: format!("recognition: {e}"), param: None })?;
    Ok(axum::Json(r).into_response())
}
