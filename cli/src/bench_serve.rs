//! `repic bench serve`: the server's throughput and latency over loopback for several numbers of concurrent
//! clients (1 = the same requests one at a time). The server runs in this process on a free port; every request
//! is the same chat with a fixed number of new tokens (`ignore_eos`). Nothing here is a test.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use repic_models::default_device;
use repic_server::scheduler::{Scheduler, SchedulerOptions};
use repic_server::{AppState, Limits, router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Arguments of `repic bench serve`.
#[derive(clap::Args)]
pub struct Args {
    /// The model.
    #[arg(long)]
    model: PathBuf,
    /// An image for every request (default: text only).
    #[arg(long)]
    image: Option<PathBuf>,
    /// Concurrent clients to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,100")]
    clients: Vec<usize>,
    /// Requests per measurement (spread over the clients).
    #[arg(long, default_value_t = 100)]
    requests: usize,
    /// New tokens per request.
    #[arg(long, default_value_t = 32)]
    max_tokens: usize,
    /// The scheduler's batch.
    #[arg(long, default_value_t = 32)]
    max_batch: usize,
    /// Print one JSON line per measurement.
    #[arg(long)]
    json: bool,
}

async fn post(addr: &str, body: &str) -> anyhow::Result<u16> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    let text = String::from_utf8_lossy(&out);
    Ok(text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Run the benchmark.
pub fn run(a: Args) -> anyhow::Result<()> {
    anyhow::ensure!(a.clients.iter().all(|&c| c > 0) && a.requests > 0, "--clients and --requests must be positive");
    let ckpt = crate::prompt::load_model(&a.model, None)?;
    let opts = SchedulerOptions {
        max_batch: a.max_batch,
        queue: 4096,
        max_context: 1 << 20,
        prefill_chunk: 512,
        stream_buffer: 1 << 16,
    };
    let scheduler = Scheduler::start(ckpt, default_device(), opts);
    let limits = Limits { max_n: 1, max_context: 1 << 20, ..Limits::default() };
    let state = Arc::new(AppState::new(scheduler, "bench".into(), limits, None));
    let mut content = Vec::new();
    if let Some(img) = &a.image {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(std::fs::read(img)?);
        content.push(
            serde_json::json!({"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{b64}")}}),
        );
    }
    content.push(serde_json::json!({"type": "text", "text": "Give a personalized caption of this image."}));
    let body = serde_json::json!({"messages": [{"role": "user", "content": content}], "max_tokens": a.max_tokens,
        "temperature": 0, "ignore_eos": true})
    .to_string();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?.to_string();
        tokio::spawn(async move { axum::serve(listener, router(state)).await });
        post(&addr, &body).await?;
        let mut base = None;
        for &clients in &a.clients {
            let start = Instant::now();
            let per = a.requests.div_ceil(clients);
            let mut tasks = Vec::new();
            for c in 0..clients {
                let (addr, body) = (addr.clone(), body.clone());
                let n = per.min(a.requests.saturating_sub(c * per));
                tasks.push(tokio::spawn(async move {
                    let mut lat = Vec::new();
                    for _ in 0..n {
                        let t = Instant::now();
                        let status = post(&addr, &body).await?;
                        anyhow::ensure!(status == 200, "a request failed with HTTP {status}");
                        lat.push(t.elapsed().as_secs_f64());
                    }
                    anyhow::Ok(lat)
                }));
            }
            let mut lat = Vec::new();
            for t in tasks {
                lat.extend(t.await??);
            }
            let secs = start.elapsed().as_secs_f64();
            lat.sort_by(f64::total_cmp);
            let tps = (lat.len() * a.max_tokens) as f64 / secs;
            let speedup = tps / *base.get_or_insert(tps);
            let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
            if a.json {
                println!("{}", serde_json::json!({"clients": clients, "requests": lat.len(), "tokens_per_second": tps,
                    "p50_s": p50, "p99_s": p99, "vs_first": speedup}));
            } else {
                println!(
                    "{clients:>4} clients: {} requests x {} tokens in {secs:.2} s = {tps:.0} tokens/s ({speedup:.1}x), latency p50 {p50:.3} s, p99 {p99:.3} s",
                    lat.len(),
                    a.max_tokens
                );
            }
        }
        anyhow::Ok(())
    })
}
