//! `POST /v1/chat/completions`: the request checked field by field, turned into a scheduler job (images decoded
//! into the job's own temporary folder), and answered as one JSON response or as server-sent events.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use repic_data::{Message, Part, Role};
use repic_models::{Finish, SamplingOptions};
use serde_json::{Value, json};
use tokio::sync::mpsc::Receiver;

use crate::AppState;
use crate::openai::{ApiError, ChatRequest, Content, ContentPart, Stop, Usage, decode_data_url};
use crate::scheduler::{Event, Job};

/// Most stop strings (OpenAI's limit).
const MAX_STOP: usize = 4;

fn finish_reason(f: Finish) -> &'static str {
    match f {
        Finish::Length => "length",
        _ => "stop",
    }
}

/// A checked request: the job's pieces and how to answer.
struct Checked {
    messages: Vec<Message>,
    images: Option<tempfile::TempDir>,
    sampling: SamplingOptions,
    max_new_tokens: usize,
    stop: Vec<String>,
    seed: u64,
    ignore_eos: bool,
    n: usize,
    stream: bool,
    include_usage: bool,
    personalize: bool,
    top_k: usize,
    logprobs: bool,
}

fn check(req: ChatRequest, state: &AppState) -> Result<Checked, ApiError> {
    let lim = &state.limits;
    if req.messages.is_empty() {
        return Err(ApiError::invalid("messages", "at least one message is needed"));
    }
    for (field, v, neutral) in
        [("frequency_penalty", req.frequency_penalty, 0.0), ("presence_penalty", req.presence_penalty, 0.0)]
    {
        if v.is_some_and(|v| v != neutral) {
            return Err(ApiError::invalid(field, "is not supported (only 0)"));
        }
    }
    let logprobs = req.logprobs.unwrap_or(false);
    if logprobs && req.stream == Some(true) {
        return Err(ApiError::invalid("logprobs", "is returned in non-streamed answers only"));
    }
    let n = req.n.unwrap_or(1);
    if n == 0 || n > lim.max_n as u64 {
        return Err(ApiError::invalid("n", format!("must be 1 to {}", lim.max_n)));
    }
    let max_new = match (req.max_completion_tokens, req.max_tokens) {
        (Some(m), _) => ("max_completion_tokens", m),
        (None, Some(m)) => ("max_tokens", m),
        (None, None) => ("max_tokens", lim.default_max_tokens as u64),
    };
    if max_new.1 == 0 || max_new.1 > lim.max_context as u64 {
        return Err(ApiError::invalid(max_new.0, format!("must be 1 to {}", lim.max_context)));
    }
    let top_k = match req.top_k {
        None | Some(0) | Some(-1) => None,
        Some(k) if k > 0 => Some(k as usize),
        Some(k) => return Err(ApiError::invalid("top_k", format!("{k}: use a positive k, or 0 / -1 for off"))),
    };
    let sampling = SamplingOptions {
        temperature: req.temperature.unwrap_or(1.0),
        top_k,
        top_p: req.top_p.unwrap_or(1.0),
        repetition_penalty: req.repetition_penalty.unwrap_or(1.0),
    };
    if let Err(e) = sampling.validate() {
        let field = ["temperature", "top_p", "top_k", "repetition_penalty"].into_iter().find(|f| e.contains(f));
        return Err(ApiError::invalid(field.unwrap_or("sampling"), e));
    }
    let stop = match req.stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(v)) => v,
    };
    if stop.len() > MAX_STOP || stop.iter().any(String::is_empty) {
        return Err(ApiError::invalid("stop", format!("at most {MAX_STOP} non-empty strings")));
    }
    let mut images: Option<tempfile::TempDir> = None;
    let mut count = 0;
    let mut messages = Vec::with_capacity(req.messages.len());
    for (i, m) in req.messages.into_iter().enumerate() {
        let role = match m.role.as_str() {
            "system" | "developer" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => return Err(ApiError::invalid(format!("messages[{i}].role"), format!("unknown role {other:?}"))),
        };
        let mut content = Vec::new();
        match m.content {
            Content::Text(t) => content.push(Part::Text(t)),
            Content::Parts(parts) => {
                for (j, p) in parts.into_iter().enumerate() {
                    match p {
                        ContentPart::Text { text } => content.push(Part::Text(text)),
                        ContentPart::ImageUrl { image_url } => {
                            let param = format!("messages[{i}].content[{j}].image_url");
                            count += 1;
                            if count > lim.max_images {
                                return Err(ApiError::invalid(param, format!("at most {} images", lim.max_images)));
                            }
                            let (bytes, ext) = decode_data_url(&image_url.url, lim.max_image_bytes, &param)?;
                            let dir = match &images {
                                Some(d) => d,
                                None => images.insert(tempfile::tempdir().map_err(|e| ApiError {
                                    status: 500,
                                    message: format!("temporary folder: {e}"),
                                    param: None,
                                })?),
                            };
                            let name = format!("image{count}.{ext}");
                            std::fs::write(dir.path().join(&name), bytes).map_err(|e| ApiError {
                                status: 500,
                                message: format!("writing an image: {e}"),
                                param: None,
                            })?;
                            content.push(Part::Image(name));
                        }
                    }
                }
            }
        }
        messages.push(Message { role, content });
    }
    Ok(Checked {
        messages,
        images,
        sampling,
        max_new_tokens: max_new.1 as usize,
        stop,
        seed: req.seed.unwrap_or(0),
        ignore_eos: req.ignore_eos.unwrap_or(false),
        n: n as usize,
        stream: req.stream.unwrap_or(false),
        include_usage: req.stream_options.and_then(|o| o.include_usage).unwrap_or(false),
        personalize: req.repic.as_ref().and_then(|r| r.personalize).unwrap_or(true),
        top_k: req.repic.as_ref().and_then(|r| r.top_k).unwrap_or(1),
        logprobs,
    })
}

/// The error as an HTTP response.
pub fn error_response(e: &ApiError) -> Response {
    let status = axum::http::StatusCode::from_u16(e.status).unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = (status, axum::Json(e.body())).into_response();
    if e.status == 429 || e.status == 503 {
        r.headers_mut().insert("retry-after", axum::http::HeaderValue::from_static("1"));
    }
    r
}

/// The handler.
pub async fn completions(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    match run(state, body).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

async fn run(state: Arc<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(&body);
    let req: ChatRequest = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        ApiError::invalid(if path == "." || path == "?" { "body".to_string() } else { path }, e.inner().to_string())
    })?;
    let mut c = check(req, &state)?;
    let mut references = None;
    let query = crate::personal::query_of(&c.messages);
    if let (Some(personal), true, Some((at, text, image))) = (state.personal.clone(), c.personalize, query) {
        let image = image.zip(c.images.as_ref()).map(|(f, d)| d.path().join(f));
        let opts = repic_personalize::RetrieveOptions { top_k: c.top_k, ..Default::default() };
        let err = |e: String| ApiError { status: 500, message: format!("retrieval: {e}"), param: None };
        let (found, refs) = tokio::task::spawn_blocking(move || personal.retrieve(&text, image.as_deref(), &opts))
            .await
            .map_err(|e| err(e.to_string()))?
            .map_err(|e| err(e.to_string()))?;
        crate::personal::personalize(&mut c.messages, at, &refs);
        references = Some(crate::personal::extension(&found.results));
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel(state.scheduler.stream_buffer);
    let job = Job {
        messages: c.messages,
        images: c.images,
        sampling: c.sampling,
        max_new_tokens: c.max_new_tokens,
        stop: c.stop,
        seed: c.seed,
        ignore_eos: c.ignore_eos,
        n: c.n,
        events: tx,
    };
    if state.scheduler.submit(job).is_err() {
        return Err(ApiError::busy());
    }
    // The first event says whether the request runs at all, before any streaming starts.
    let prompt_tokens = match rx.recv().await {
        Some(Event::Started { prompt_tokens }) => prompt_tokens,
        Some(Event::Failed { status, message }) => return Err(ApiError { status, message, param: None }),
        _ => return Err(ApiError { status: 500, message: "the scheduler stopped".into(), param: None }),
    };
    let id = format!("chatcmpl-{:016x}", rand::random::<u64>());
    let created = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let head = Head { id, created, model: state.model_name.clone(), n: c.n, prompt_tokens, references };
    if c.stream {
        Ok(stream(head, rx, c.include_usage).into_response())
    } else {
        collect(head, rx, c.logprobs).await.map(|v| axum::Json(v).into_response())
    }
}

/// What every chunk or response carries.
struct Head {
    id: String,
    created: u64,
    model: String,
    n: usize,
    prompt_tokens: usize,
    references: Option<Value>,
}

impl Head {
    fn usage(&self, completion: usize) -> Usage {
        Usage {
            prompt_tokens: self.prompt_tokens,
            completion_tokens: completion,
            total_tokens: self.prompt_tokens + completion,
        }
    }

    fn chunk(&self, choices: Value) -> Value {
        json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
               "choices": choices})
    }
}

async fn collect(head: Head, mut rx: Receiver<Event>, logprobs: bool) -> Result<Value, ApiError> {
    let mut texts = vec![String::new(); head.n];
    let mut finish: Vec<Option<Finish>> = vec![None; head.n];
    let mut lps: Vec<Value> = vec![Value::Null; head.n];
    let mut completion = 0;
    while finish.iter().any(Option::is_none) {
        match rx.recv().await {
            Some(Event::Delta { index, text }) => texts[index].push_str(&text),
            Some(Event::Done { index, finish: f, tokens, logprobs: lp }) => {
                finish[index] = Some(f);
                completion += tokens;
                if logprobs {
                    let content: Vec<Value> = lp
                        .iter()
                        .map(|(id, t, l)| json!({"token": t, "id": id, "logprob": l, "top_logprobs": []}))
                        .collect();
                    lps[index] = json!({"content": content});
                }
            }
            Some(Event::Failed { status, message }) => return Err(ApiError { status, message, param: None }),
            Some(Event::Started { .. }) => {}
            None => return Err(ApiError { status: 500, message: "the scheduler stopped".into(), param: None }),
        }
    }
    let choices: Vec<Value> = texts
        .into_iter()
        .zip(finish)
        .zip(lps)
        .enumerate()
        .map(|(i, ((t, f), lp))| {
            json!({"index": i, "message": {"role": "assistant", "content": t},
                   "finish_reason": finish_reason(f.unwrap_or(Finish::Stop)), "logprobs": lp})
        })
        .collect();
    let mut v = json!({"id": head.id, "object": "chat.completion", "created": head.created, "model": head.model,
              "choices": choices, "usage": head.usage(completion)});
    if let Some(r) = head.references {
        v["repic"] = r;
    }
    Ok(v)
}

fn stream(
    head: Head,
    rx: Receiver<Event>,
    include_usage: bool,
) -> Sse<impl futures_core::Stream<Item = Result<SseEvent, Infallible>>> {
    let s = async_stream::stream! {
        let mut rx = rx;
        let data = |v: Value| Ok::<_, Infallible>(SseEvent::default().data(v.to_string()));
        for i in 0..head.n {
            let mut first = head.chunk(json!([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]));
            if let Some(r) = &head.references {
                first["repic"] = r.clone();
            }
            yield data(first);
        }
        let mut left = head.n;
        let mut completion = 0;
        while left > 0 {
            match rx.recv().await {
                Some(Event::Delta { index, text }) => {
                    yield data(head.chunk(json!([{"index": index, "delta": {"content": text}, "finish_reason": null}])));
                }
                Some(Event::Done { index, finish, tokens, .. }) => {
                    left -= 1;
                    completion += tokens;
                    yield data(head.chunk(json!([{"index": index, "delta": {}, "finish_reason": finish_reason(finish)}])));
                }
                Some(Event::Failed { status, message }) => {
                    yield data(ApiError { status, message, param: None }.body());
                    break;
                }
                Some(Event::Started { .. }) => {}
                None => {
                    yield data(ApiError { status: 500, message: "the scheduler stopped".into(), param: None }.body());
                    break;
                }
            }
        }
        if include_usage && left == 0 {
            let mut last = head.chunk(json!([]));
            last["usage"] = serde_json::to_value(head.usage(completion)).unwrap_or(Value::Null);
            yield data(last);
        }
        yield Ok(SseEvent::default().data("[DONE]"));
    };
    Sse::new(s).keep_alive(KeepAlive::default())
}
