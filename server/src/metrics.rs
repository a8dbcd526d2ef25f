//! `GET /metrics` in Prometheus' text format: requests by status class, a latency histogram, and the
//! scheduler's queue depth, running sequences, tokens, decode steps, batch occupancy and abandoned choices.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Request counters of the HTTP side.
#[derive(Debug, Default)]
pub struct HttpStats {
    by_class: [AtomicU64; 5],
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    micros: AtomicU64,
}

impl HttpStats {
    fn record(&self, status: u16, seconds: f64) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        for (b, le) in self.buckets.iter().zip(BUCKETS) {
            if seconds <= le {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.micros.fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }
}

/// Middleware: time every request (streamed answers until their headers) and log it.
pub async fn track(State(state): State<std::sync::Arc<AppState>>, req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let start = Instant::now();
    let res = next.run(req).await;
    let secs = start.elapsed().as_secs_f64();
    state.http.record(res.status().as_u16(), secs);
    tracing::info!(%method, path, status = res.status().as_u16(), ms = (secs * 1e3) as u64, "request");
    res
}

/// The handler.
pub async fn metrics(State(state): State<std::sync::Arc<AppState>>) -> Response {
    let h = &state.http;
    let s = &state.scheduler.stats;
    let mut out = String::new();
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let _ = writeln!(out, "# HELP repic_requests_total HTTP requests answered, by status class.");
    let _ = writeln!(out, "# TYPE repic_requests_total counter");
    for (i, c) in h.by_class.iter().enumerate() {
        let _ = writeln!(out, "repic_requests_total{{code=\"{}xx\"}} {}", i + 1, load(c));
    }
    let _ = writeln!(out, "# HELP repic_request_duration_seconds Time to the response's headers.");
    let _ = writeln!(out, "# TYPE repic_request_duration_seconds histogram");
    for (b, le) in h.buckets.iter().zip(BUCKETS) {
        let _ = writeln!(out, "repic_request_duration_seconds_bucket{{le=\"{le}\"}} {}", load(b));
    }
    let _ = writeln!(out, "repic_request_duration_seconds_bucket{{le=\"+Inf\"}} {}", load(&h.count));
    let _ = writeln!(out, "repic_request_duration_seconds_sum {}", load(&h.micros) as f64 / 1e6);
    let _ = writeln!(out, "repic_request_duration_seconds_count {}", load(&h.count));
    let steps = load(&s.steps);
    let occupancy = if steps == 0 { 0.0 } else { load(&s.step_rows) as f64 / steps as f64 };
    for (name, kind, help, value) in [
        ("repic_queue_depth", "gauge", "Requests waiting for the batch.", s.queued.load(Ordering::Relaxed) as f64),
        (
            "repic_running_sequences",
            "gauge",
            "Sequences in the running batch.",
            s.running.load(Ordering::Relaxed) as f64,
        ),
        ("repic_generated_tokens_total", "counter", "Tokens generated.", load(&s.generated) as f64),
        ("repic_prompt_tokens_total", "counter", "Prompt tokens prefilled.", load(&s.prefilled) as f64),
        ("repic_decode_steps_total", "counter", "Decode steps run.", steps as f64),
        ("repic_batch_occupancy", "gauge", "Mean sequences per decode step since start.", occupancy),
        (
            "repic_cancelled_total",
            "counter",
            "Choices dropped because their client went away.",
            load(&s.cancelled) as f64,
        ),
        (
            "repic_overrun_total",
            "counter",
            "Requests stopped because their client read its stream too slowly.",
            load(&s.overrun) as f64,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    }
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
