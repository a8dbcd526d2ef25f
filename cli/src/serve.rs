//! `repic serve`: the model behind an OpenAI-compatible HTTP API (`/v1/chat/completions`, `/v1/models`,
//! `/health`), continuous batching in one scheduler thread, graceful shutdown on Ctrl-C / SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use repic_models::default_device;
use repic_server::scheduler::{Scheduler, SchedulerOptions};
use repic_server::{AppState, Limits, router};

/// `repic serve`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: crate::prompt::ModelArgs,
    /// A concept store (`repic db init`): chats are personalized with it, and `/v1/concepts` edits it.
    #[arg(long)]
    db: Option<PathBuf>,
    /// Address to bind (loopback unless told otherwise).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port.
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Require `Authorization: Bearer KEY` on every route (also read from REPIC_API_KEY).
    #[arg(long, env = "REPIC_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Name under which the model is served (default: the model folder's name).
    #[arg(long)]
    served_model_name: Option<String>,
    /// Sequences decoded together at most.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    max_batch: u32,
    /// Requests waiting at most; beyond, 429 with Retry-After.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    queue: u32,
    /// Largest request body in MiB.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1024))]
    max_body_mib: u32,
    /// Images per request at most.
    #[arg(long, default_value_t = 8)]
    max_images: usize,
    /// Prompt positions prefilled between two decode steps (0: whole prompts), so that a long prompt does not
    /// stall running requests.
    #[arg(long, default_value_t = 512)]
    prefill_chunk: usize,
    /// Events (stream chunks) a client may fall behind before its request is stopped with an error: what one
    /// slow reader can make the server hold.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(4..))]
    stream_buffer: u32,
    /// New tokens when a request names none.
    #[arg(long, default_value_t = 512)]
    default_max_tokens: usize,
}

/// The model's context from its config.json (`max_position_embeddings`, top level or `text_config`).
fn max_context(dir: &std::path::Path) -> usize {
    let read = || -> Option<usize> {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).ok()?).ok()?;
        let n = v.get("max_position_embeddings").or_else(|| v.get("text_config")?.get("max_position_embeddings"))?;
        n.as_u64().map(|n| n as usize)
    };
    read().unwrap_or(32768)
}

/// Run `repic serve` until interrupted.
pub fn run(a: Args) -> anyhow::Result<()> {
    let ckpt = a.model.load()?;
    let source = repic_trainer::ModelSource::resolve(&a.model.model, a.model.adapter.as_deref())?;
    let context = max_context(&source.base);
    let name = a.served_model_name.clone().unwrap_or_else(|| {
        a.model.model.file_name().map_or_else(|| "repic".into(), |n| n.to_string_lossy().into_owned())
    });
    let limits = Limits {
        max_body_bytes: a.max_body_mib as usize * (1 << 20),
        max_images: a.max_images,
        max_image_bytes: (a.max_body_mib as usize * (1 << 20)) * 3 / 4,
        max_n: (a.max_batch as usize).min(16),
        default_max_tokens: a.default_max_tokens,
        max_context: context,
    };
    let opts = SchedulerOptions {
        max_batch: a.max_batch as usize,
        queue: a.queue as usize,
        max_context: context,
        prefill_chunk: a.prefill_chunk,
        stream_buffer: a.stream_buffer as usize,
    };
    let scheduler = Scheduler::start(ckpt, default_device(), opts);
    let mut state = AppState::new(scheduler, name.clone(), limits, a.api_key.clone());
    if let Some(db) = &a.db {
        let p = repic_server::personal::Personal::open(db).with_context(|| format!("opening {}", db.display()))?;
        state = state.with_personal(p);
    }
    let state = Arc::new(state);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let addr = format!("{}:{}", a.host, a.port);
        let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("binding {addr}"))?;
        let local = listener.local_addr()?;
        // The bound address on stdout (with --port 0 the system picks one): tests and scripts read it here.
        println!("serving {name} on http://{local}/v1");
        tracing::info!("serving {name} on http://{local} (context {context} tokens)");
        axum::serve(listener, router(state)).with_graceful_shutdown(shutdown()).await?;
        anyhow::Ok(())
    })
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
    tracing::info!("shutting down: finishing the requests in flight");
}
