//! The HTTP API end to end on the tiny random Qwen2-VL: answers equal the engine's own greedy generation (the
//! continuous batch changes nothing), streaming gives the same text, every bad input is a 4xx naming its field,
//! a full queue answers 429, a client that goes away frees its place, and 100 concurrent requests over loopback
//! all complete.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine as _;
use repic_data::Message;
use repic_models::{Checkpoint, GenerateOptions};
use repic_server::scheduler::{Scheduler, SchedulerOptions};
use repic_server::{AppState, Limits, router};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type B = repic_models::DefaultBackend;

fn model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/tests/fixtures/qwen2_vl")
}

fn image_url(name: &str) -> String {
    let bytes = std::fs::read(model_dir().join(name)).unwrap();
    format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// A server on a free loopback port; returns its address.
async fn start(max_batch: usize, queue: usize, api_key: Option<&str>) -> (String, Arc<AppState>) {
    start_with(max_batch, queue, api_key, 4096).await
}

async fn start_with(max_batch: usize, queue: usize, api_key: Option<&str>, context: usize) -> (String, Arc<AppState>) {
    let dev = Default::default();
    let ckpt = Checkpoint::<B>::load(&model_dir(), &dev).unwrap();
    // Small prefill chunks: every prompt here is prefilled in several pieces between decode steps.
    let opts = SchedulerOptions { max_batch, queue, max_context: context, prefill_chunk: 16, stream_buffer: 1024 };
    let scheduler = Scheduler::start(ckpt, dev, opts);
    let limits = Limits { max_body_bytes: 1 << 20, max_context: context, ..Limits::default() };
    let state = Arc::new(AppState::new(scheduler, "tiny".into(), limits, api_key.map(str::to_string)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let app = router(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, state)
}

/// One HTTP/1.1 request (`Connection: close`); returns status, headers and body.
async fn http(addr: &str, method: &str, path: &str, body: &str, key: Option<&str>) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = key.map_or(String::new(), |k| format!("Authorization: Bearer {k}\r\n"));
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).unwrap_or("0").parse().unwrap();
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { unchunk(rest) } else { rest.to_string() };
    (status, head.to_string(), body)
}

fn unchunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

fn chat(prompt: &str, max_tokens: u64, extra: Value) -> String {
    let mut v = json!({"model": "tiny", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": image_url("image0.png")}},
        {"type": "text", "text": prompt}]}], "max_tokens": max_tokens, "temperature": 0});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v.to_string()
}

/// The engine's own greedy answer to the same chat (image from the fixture folder): text and log-probabilities.
fn solo_lp(prompt: &str, max_tokens: usize) -> (String, Vec<f32>) {
    let dev = Default::default();
    let ckpt = Checkpoint::<B>::load(&model_dir(), &dev).unwrap();
    let m = Message::user_with_images(["image0.png"], prompt);
    let p = ckpt.prepare(&[m], &model_dir()).unwrap();
    let opts =
        GenerateOptions { max_new_tokens: max_tokens, stop_tokens: ckpt.stop_tokens.clone(), ..Default::default() };
    let g = ckpt.engine(&dev).generate(&p.input, &opts).unwrap();
    (g.text, g.logprobs)
}

fn solo(prompt: &str, max_tokens: usize) -> String {
    solo_lp(prompt, max_tokens).0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_answers_equal_the_engines_and_streaming_agrees() {
    let (addr, _) = start(8, 64, None).await;
    let prompts: Vec<String> = (0..6).map(|i| format!("Describe the image in detail {i}.")).collect();
    let mut tasks = Vec::new();
    for (i, p) in prompts.iter().enumerate() {
        let (addr, body) = (addr.clone(), chat(p, 40 + i as u64, json!({"logprobs": true})));
        tasks.push(tokio::spawn(async move { http(&addr, "POST", "/v1/chat/completions", &body, None).await }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let (status, _, body) = t.await.unwrap();
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let (want, want_lp) = tokio::task::spawn_blocking({
            let p = prompts[i].clone();
            move || solo_lp(&p, 40 + i)
        })
        .await
        .unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], want, "prompt {i}");
        // Token by token, the batch's log-probabilities are the engine's alone (positions, cache, padding).
        let got: Vec<f64> = v["choices"][0]["logprobs"]["content"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["logprob"].as_f64().unwrap())
            .collect();
        assert_eq!(got.len(), want_lp.len().min(40 + i), "prompt {i}");
        for (k, (g, w)) in got.iter().zip(&want_lp).enumerate() {
            assert!((g - f64::from(*w)).abs() < 1e-3, "prompt {i} token {k}: {g} vs {w}");
        }
        assert_eq!(v["object"], "chat.completion");
        let u = &v["usage"];
        assert_eq!(u["total_tokens"], u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap());
    }
    // Streaming: the deltas add up to the same text; a usage chunk; then [DONE].
    let body = chat(&prompts[0], 6, json!({"stream": true, "stream_options": {"include_usage": true}}));
    let (status, head, sse) = http(&addr, "POST", "/v1/chat/completions", &body, None).await;
    assert_eq!(status, 200);
    assert!(head.to_ascii_lowercase().contains("text/event-stream"), "{head}");
    let events: Vec<&str> = sse.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    assert_eq!(events.last(), Some(&"[DONE]"));
    let mut text = String::new();
    let mut finish = None;
    for e in &events[..events.len() - 1] {
        let v: Value = serde_json::from_str(e).unwrap();
        if let Some(c) = v["choices"][0]["delta"]["content"].as_str() {
            text.push_str(c);
        }
        if let Some(f) = v["choices"][0]["finish_reason"].as_str() {
            finish = Some(f.to_string());
        }
    }
    assert_eq!(text, solo(&prompts[0], 6));
    assert!(finish.is_some());
    let usage: Value = serde_json::from_str(events[events.len() - 2]).unwrap();
    assert!(usage["usage"]["completion_tokens"].as_u64().unwrap() >= 1, "{usage}");
    // n choices, seeded: the same seed gives the same choices.
    let body = chat(&prompts[1], 5, json!({"n": 3, "temperature": 1.0, "seed": 7}));
    let a: Value = serde_json::from_str(&http(&addr, "POST", "/v1/chat/completions", &body, None).await.2).unwrap();
    let b: Value = serde_json::from_str(&http(&addr, "POST", "/v1/chat/completions", &body, None).await.2).unwrap();
    assert_eq!(a["choices"].as_array().unwrap().len(), 3);
    assert_eq!(a["choices"], b["choices"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_requests_are_4xx_naming_the_field() {
    let (addr, _) = start(4, 16, Some("sekret")).await;
    let post = |body: String, key: Option<&'static str>| {
        let addr = addr.clone();
        async move { http(&addr, "POST", "/v1/chat/completions", &body, key).await }
    };
    let (s, _, b) = post(chat("hi", 2, json!({})), None).await;
    assert_eq!(s, 401, "{b}");
    let key = Some("sekret");
    let (s, _, b) = http(&addr, "GET", "/v1/models", "", key).await;
    assert_eq!(s, 200);
    assert_eq!(serde_json::from_str::<Value>(&b).unwrap()["data"][0]["id"], "tiny");
    assert_eq!(http(&addr, "GET", "/nowhere", "", key).await.0, 404);
    let truncated = {
        let bytes = std::fs::read(model_dir().join("image0.png")).unwrap();
        format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(&bytes[..bytes.len() / 2]))
    };
    let text_url = format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode("hello"));
    let with_url = |url: &str| {
        json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
            {"type": "text", "text": "hi"}]}]})
        .to_string()
    };
    let cases = [
        ("{not json".to_string(), "body"),
        (json!({"messages": []}).to_string(), "messages"),
        (json!({"messages": [{"role": "user", "content": "hi"}], "colour": 1}).to_string(), "colour"),
        (json!({"messages": [{"role": "robot", "content": "hi"}]}).to_string(), "messages[0].role"),
        (json!({"messages": [{"role": "user", "content": "hi"}], "n": 99}).to_string(), "n"),
        (json!({"messages": [{"role": "user", "content": "hi"}], "temperature": -1}).to_string(), "temperature"),
        (json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 100000}).to_string(), "max_tokens"),
        (
            json!({"messages": [{"role": "user", "content": "hi"}], "stop": ["a", "b", "c", "d", "e"]}).to_string(),
            "stop",
        ),
        (
            json!({"messages": [{"role": "user", "content": "hi"}], "frequency_penalty": 0.5}).to_string(),
            "frequency_penalty",
        ),
        (with_url("https://example.com/cat.png"), "messages[0].content[0].image_url"),
        (with_url("/etc/passwd"), "messages[0].content[0].image_url"),
        (with_url(&text_url), "messages[0].content[0].image_url"),
        (with_url(&truncated), "messages[0].content[0].image_url"),
    ];
    for (body, field) in cases {
        let (s, _, b) = post(body.clone(), key).await;
        assert_eq!(s, 400, "{body}: {b}");
        let v: Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        let named = v["error"]["param"].as_str().unwrap_or("").contains(field)
            || v["error"]["message"].as_str().unwrap().contains(field);
        assert!(named, "{body}: {b}");
    }
    // Over the body limit: 413.
    let big = chat(&"x".repeat(2 << 20), 2, json!({}));
    assert_eq!(post(big, key).await.0, 413);
    // More tokens than the context (4096) once the prompt is counted: refused by the scheduler, still a 400.
    let (s, _, b) = post(chat("hi", 4096, json!({})), key).await;
    assert_eq!(s, 400, "{b}");
    assert!(b.contains("context"), "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_queue_answers_429_and_a_gone_client_frees_its_place() {
    // A long context, so that the long request below is still decoding when its client leaves.
    let (addr, state) = start_with(1, 1, None, 1 << 20).await;
    // One long request runs, one waits; the rest are refused with Retry-After.
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (addr, body) = (addr.clone(), chat("Describe the image in detail.", 400, json!({"ignore_eos": true})));
        tasks.push(tokio::spawn(async move { http(&addr, "POST", "/v1/chat/completions", &body, None).await }));
    }
    let mut busy = 0;
    for t in tasks {
        let (s, head, _) = t.await.unwrap();
        if s == 429 {
            busy += 1;
            assert!(head.to_ascii_lowercase().contains("retry-after: 1"), "{head}");
        } else {
            assert_eq!(s, 200);
        }
    }
    assert!(busy >= 1, "no request was refused");
    // A streaming client that disconnects after its first chunk: its sequence leaves the batch.
    let body = chat("Describe the image in detail.", 100_000, json!({"stream": true, "ignore_eos": true}));
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
    let stats = &state.scheduler.stats;
    for _ in 0..100 {
        if stats.running.load(Ordering::Relaxed) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stats.running.load(Ordering::Relaxed), 1, "the streaming request is not decoding");
    drop(s);
    let mut freed = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if stats.running.load(Ordering::Relaxed) == 0 {
            freed = true;
            break;
        }
    }
    assert!(freed, "the disconnected client's sequence is still running");
    assert_eq!(stats.cancelled.load(Ordering::Relaxed), 1);
    assert!(stats.generated.load(Ordering::Relaxed) < 100_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn a_hundred_concurrent_requests_all_complete() {
    let (addr, _) = start(32, 256, None).await;
    let mut tasks = Vec::new();
    for i in 0..100 {
        let addr = addr.clone();
        let body = json!({"messages": [{"role": "user", "content": format!("Say something {i}.")}],
            "max_tokens": 4 + i % 5, "temperature": 0.7, "seed": i})
        .to_string();
        tasks.push(tokio::spawn(async move { http(&addr, "POST", "/v1/chat/completions", &body, None).await }));
    }
    for t in tasks {
        let (s, _, b) = t.await.unwrap();
        assert_eq!(s, 200, "{b}");
        assert!(serde_json::from_str::<Value>(&b).unwrap()["choices"][0]["message"]["content"].is_string());
    }
    // The Prometheus page counts them.
    let (s, head, m) = http(&addr, "GET", "/metrics", "", None).await;
    assert_eq!(s, 200);
    assert!(head.contains("text/plain"), "{head}");
    let value = |name: &str| -> f64 {
        m.lines().find(|l| l.starts_with(name)).and_then(|l| l.rsplit(' ').next()).unwrap().parse().unwrap()
    };
    assert_eq!(value("repic_requests_total{code=\"2xx\"}"), 100.0);
    assert_eq!(value("repic_request_duration_seconds_count"), 100.0);
    let tokens: f64 = (0..100).map(|i| (4 + i % 5) as f64).sum();
    assert!(value("repic_generated_tokens_total") <= tokens + 100.0);
    assert!(value("repic_batch_occupancy") > 1.0, "{m}");
    // A client has its answer once its last token is sent; the scheduler releases the sequence right after, in
    // the same step: wait for that step to end before reading the gauge.
    let mut running = value("repic_running_sequences");
    for _ in 0..100 {
        if running == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let m = http(&addr, "GET", "/metrics", "", None).await.2;
        running = m
            .lines()
            .find(|l| l.starts_with("repic_running_sequences"))
            .and_then(|l| l.rsplit(' ').next())
            .unwrap()
            .parse()
            .unwrap();
    }
    assert_eq!(running, 0.0);
}

/// A client that stops reading its stream: after `stream_buffer` events the request is stopped, the last event
/// it can read is an error saying so, and the batch goes on without it (the server holds at most that many
/// events for it).
#[test]
fn a_client_that_stops_reading_is_stopped_after_a_bounded_number_of_events() {
    let dev = Default::default();
    let ckpt = Checkpoint::<B>::load(&model_dir(), &dev).unwrap();
    let opts = SchedulerOptions { max_batch: 4, queue: 4, max_context: 4096, prefill_chunk: 0, stream_buffer: 8 };
    let scheduler = Scheduler::start(ckpt, dev, opts);
    let (tx, mut rx) = tokio::sync::mpsc::channel(scheduler.stream_buffer);
    let job = repic_server::scheduler::Job {
        messages: vec![Message::user_with_images(Vec::<String>::new(), "Describe <bo> in detail.")],
        images: None,
        sampling: Default::default(),
        max_new_tokens: 200,
        stop: Vec::new(),
        seed: 0,
        ignore_eos: true,
        n: 2,
        events: tx,
    };
    assert!(scheduler.submit(job).is_ok());
    let start = std::time::Instant::now();
    while scheduler.stats.overrun.load(Ordering::Relaxed) == 0 {
        assert!(start.elapsed() < Duration::from_secs(60), "the unread request was never stopped");
        std::thread::sleep(Duration::from_millis(10));
    }
    while scheduler.stats.running.load(Ordering::Relaxed) != 0 {
        assert!(start.elapsed() < Duration::from_secs(60), "the stopped request stayed in the batch");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    assert_eq!(events.len(), 8, "{events:?}");
    assert!(matches!(events[0], repic_server::scheduler::Event::Started { .. }));
    match events.last() {
        Some(repic_server::scheduler::Event::Failed { status: 503, message }) => {
            assert!(message.contains("too slowly"), "{message}")
        }
        other => panic!("the last event is {other:?}"),
    }
    assert!(scheduler.stats.generated.load(Ordering::Relaxed) < 2 * 200, "both choices stopped early");
}
