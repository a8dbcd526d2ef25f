//! Continuous batching: one thread owns the model and decodes every running request in one batch. A request
//! is prefilled on its own (its chat prepared, its images processed, its prompt run once and forked for `n`
//! choices, in chunks between decode steps so that a long prompt does not stall the others) and joins the
//! running batch; a finished choice, or one whose client went
//! away, leaves the batch at once (the cache's `join` and `release`). Requests wait in a bounded queue; a full
//! queue is refused at once, so the HTTP layer can answer 429. Each request's events go through a bounded
//! channel: a client that stops reading its stream is stopped with an error once it is that many events behind,
//! so a slow reader never makes the server hold an unbounded amount of its text.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

use burn::tensor::backend::Backend;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use repic_data::Message;
use repic_models::engine::sampler::choose;
use repic_models::{Checkpoint, Finish, KvCache, SamplingOptions, SeqId, Step};
use tokio::sync::mpsc::Sender;

/// One chat completion request as the scheduler runs it.
pub struct Job {
    /// The chat (image parts are paths under `images`).
    pub messages: Vec<Message>,
    /// The folder holding the request's decoded images (removed when the job ends).
    pub images: Option<tempfile::TempDir>,
    /// How tokens are chosen.
    pub sampling: SamplingOptions,
    /// Most new tokens per choice.
    pub max_new_tokens: usize,
    /// Strings that end a choice (not included in its text).
    pub stop: Vec<String>,
    /// Seed of choice 0 (choice i uses seed + i).
    pub seed: u64,
    /// Keep going after an end-of-sequence token.
    pub ignore_eos: bool,
    /// Choices.
    pub n: usize,
    /// Where the choices' text goes: a bounded channel (see [`SchedulerOptions::stream_buffer`]).
    pub events: Sender<Event>,
}

/// Other work for the model thread, run between two decode steps with the checkpoint (`&Checkpoint<B>` of the
/// backend the scheduler was started with, as `Any`): R2P's recognition, for example.
pub type Task = Box<dyn FnOnce(&dyn std::any::Any) + Send>;

/// What the model thread receives.
enum Work {
    Chat(Job),
    Task(Task),
}

/// What a job reports, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The prompt was prefilled: its length in tokens.
    Started {
        /// Prompt tokens.
        prompt_tokens: usize,
    },
    /// New text of choice `index`.
    Delta {
        /// The choice.
        index: usize,
        /// Text since the last delta.
        text: String,
    },
    /// Choice `index` finished.
    Done {
        /// The choice.
        index: usize,
        /// `stop` (end of sequence or a stop string) or `length`.
        finish: Finish,
        /// Tokens it generated.
        tokens: usize,
        /// Each generated token (id, text) and its log-probability (under the penalised, temperature-scaled
        /// distribution).
        logprobs: Vec<(u32, String, f32)>,
    },
    /// The request cannot be run (the message names the field), or the model failed.
    Failed {
        /// An HTTP status: 400 for the request's fault, 500 for the server's.
        status: u16,
        /// What went wrong.
        message: String,
    },
}

/// Limits of the scheduler.
#[derive(Clone, Copy, Debug)]
pub struct SchedulerOptions {
    /// Sequences decoded together at most (a request with `n` choices takes `n`).
    pub max_batch: usize,
    /// Requests waiting for a place at most.
    pub queue: usize,
    /// The model's context: prompt plus new tokens at most.
    pub max_context: usize,
    /// Prompt positions prefilled between two decode steps (0: a whole prompt at once), so that a long prompt
    /// does not stall the running sequences.
    pub prefill_chunk: usize,
    /// Events a request's client may fall behind (its stream unread) before the request is stopped with an
    /// error (503); what one slow reader can make the server hold. At least 4.
    pub stream_buffer: usize,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests waiting.
    pub queued: AtomicUsize,
    /// Sequences in the running batch.
    pub running: AtomicUsize,
    /// Tokens generated since start.
    pub generated: AtomicU64,
    /// Prompt tokens prefilled since start.
    pub prefilled: AtomicU64,
    /// Decode steps run since start.
    pub steps: AtomicU64,
    /// Sum over decode steps of the batch size (occupancy = this / steps).
    pub step_rows: AtomicU64,
    /// Choices dropped because their client went away.
    pub cancelled: AtomicU64,
    /// Requests stopped because their client read its stream too slowly.
    pub overrun: AtomicU64,
}

/// The queue to the model thread.
#[derive(Clone)]
pub struct Scheduler {
    tx: SyncSender<Work>,
    /// Live counters.
    pub stats: Arc<Stats>,
    /// Capacity of each request's event channel ([`SchedulerOptions::stream_buffer`]).
    pub stream_buffer: usize,
}

/// The queue is full.
#[derive(Debug)]
pub struct Busy;

impl Scheduler {
    /// Start the model thread with `ckpt` on `device`.
    pub fn start<B: Backend>(ckpt: Checkpoint<B>, device: B::Device, opts: SchedulerOptions) -> Self
    where
        Checkpoint<B>: Send + 'static,
        B::Device: Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(opts.queue.max(1));
        let stats = Arc::new(Stats::default());
        let stream_buffer = opts.stream_buffer.max(4);
        let s = stats.clone();
        std::thread::Builder::new()
            .name("repic-scheduler".into())
            .spawn(move || {
                let l = Loop {
                    ckpt,
                    device,
                    opts,
                    stats: s,
                    cache: None,
                    running: Vec::new(),
                    pending: None,
                    prefill: None,
                };
                l.run(rx)
            })
            .expect("spawning the scheduler thread");
        Scheduler { tx, stats, stream_buffer }
    }

    /// Queue a job; `Busy` when the queue is full.
    pub fn submit(&self, job: Job) -> Result<(), Busy> {
        self.send(Work::Chat(job))
    }

    /// Queue a task for the model thread; `Busy` when the queue is full.
    pub fn run_task(&self, task: Task) -> Result<(), Busy> {
        self.send(Work::Task(task))
    }

    fn send(&self, work: Work) -> Result<(), Busy> {
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(work) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                Err(Busy)
            }
        }
    }
}

/// One running choice; `running[i]` is row `i` of the cache.
struct Seq {
    id: SeqId,
    job: Arc<JobState>,
    index: usize,
    history: Vec<u32>,
    tokens: Vec<u32>,
    next_position: i64,
    rng: ChaCha8Rng,
    sent: usize,
    generated: usize,
    logprobs: Vec<(u32, f32)>,
    done: Option<Finish>,
}

/// What the choices of one job share.
struct JobState {
    sampling: SamplingOptions,
    max_new_tokens: usize,
    stop: Vec<String>,
    ignore_eos: bool,
    events: Sender<Event>,
    /// The client fell too far behind; every choice stops.
    overrun: AtomicBool,
    _images: Option<tempfile::TempDir>,
}

impl JobState {
    /// Send an event of one choice. When only one slot of the channel is left, it carries an error instead and
    /// the job stops: its client is a whole buffer behind.
    fn emit(&self, event: Event, stats: &Stats) {
        if self.overrun.load(Ordering::Relaxed) {
            return;
        }
        if self.events.capacity() <= 1 && !self.events.is_closed() {
            self.overrun.store(true, Ordering::Relaxed);
            stats.overrun.fetch_add(1, Ordering::Relaxed);
            let msg = format!(
                "the client read its stream too slowly ({} events behind); the request was stopped",
                self.events.max_capacity()
            );
            let _ = self.events.try_send(failed(503, msg));
            return;
        }
        let _ = self.events.try_send(event);
    }
}

struct Loop<B: Backend> {
    ckpt: Checkpoint<B>,
    device: B::Device,
    opts: SchedulerOptions,
    stats: Arc<Stats>,
    cache: Option<KvCache<B>>,
    running: Vec<Seq>,
    /// A job taken from the queue that waits for room in the batch.
    pending: Option<Job>,
    /// The prompt being prefilled, chunk by chunk.
    prefill: Option<Prefill<B>>,
}

/// A prompt being prefilled into its own cache.
struct Prefill<B: Backend> {
    job: Arc<JobState>,
    n: usize,
    seed: u64,
    ids: Vec<u32>,
    cache: KvCache<B>,
    embeds: burn::tensor::Tensor<B, 3>,
    positions: repic_models::qwen2_vl::rope::Positions,
    done: usize,
    next_position: i64,
}

fn failed(status: u16, message: impl Into<String>) -> Event {
    Event::Failed { status, message: message.into() }
}

impl<B: Backend> Loop<B> {
    fn run(mut self, rx: Receiver<Work>) {
        loop {
            // Take the next job when no prompt is being prefilled; wait for one only when there is nothing else.
            if self.prefill.is_none() && self.pending.is_none() {
                let idle = self.running.is_empty();
                let next = if idle { rx.recv().ok() } else { rx.try_recv().ok() };
                match next {
                    Some(Work::Chat(job)) => {
                        self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                        self.pending = Some(job);
                    }
                    Some(Work::Task(task)) => {
                        self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                        task(&self.ckpt);
                    }
                    None if idle => return,
                    None => {}
                }
            }
            if self.prefill.is_none()
                && let Some(job) = self.pending.take()
            {
                if self.running.len() + job.n <= self.opts.max_batch || self.running.is_empty() {
                    self.start(job);
                } else {
                    self.pending = Some(job);
                }
            }
            if self.prefill.is_some()
                && let Err(e) = self.prefill_chunk()
            {
                tracing::error!("prefill failed: {e}");
                if let Some(p) = self.prefill.take() {
                    let _ = p.job.events.try_send(failed(500, format!("the model failed: {e}")));
                }
            }
            if self.running.is_empty() {
                continue;
            }
            if let Err(e) = self.step() {
                tracing::error!("decode step failed: {e}");
                for s in self.running.drain(..) {
                    let _ = s.job.events.try_send(failed(500, format!("the model failed: {e}")));
                }
                self.cache = None;
                self.stats.running.store(0, Ordering::Relaxed);
            }
        }
    }

    /// Check and prepare a job and set up its prefill. Errors of the request go to its client.
    fn start(&mut self, job: Job) {
        if job.n > self.opts.max_batch {
            let msg = format!("n: {} choices exceed the batch of {}", job.n, self.opts.max_batch);
            let _ = job.events.try_send(failed(400, msg));
            return;
        }
        if job.events.is_closed() {
            return;
        }
        let root = job.images.as_ref().map_or_else(PathBuf::new, |d| d.path().to_path_buf());
        let prepared = match self.ckpt.prepare(&job.messages, &root) {
            Ok(p) => p,
            Err(e) => {
                let _ = job.events.try_send(failed(400, format!("messages: {e}")));
                return;
            }
        };
        let input = prepared.input;
        if input.ids.len() + job.max_new_tokens > self.opts.max_context {
            let msg = format!(
                "max_tokens: the prompt has {} tokens; with {} new ones it exceeds the model's context of {}",
                input.ids.len(),
                job.max_new_tokens,
                self.opts.max_context
            );
            let _ = job.events.try_send(failed(400, msg));
            return;
        }
        let model = &self.ckpt.model;
        let step = match model.prompt_step(&input, &self.device) {
            Ok((step, delta)) => (step, delta),
            Err(e) => {
                let _ = job.events.try_send(failed(400, format!("messages: {e}")));
                return;
            }
        };
        let ((step, delta), ids) = (step, input.ids);
        let _ = job.events.try_send(Event::Started { prompt_tokens: ids.len() });
        let positions = step.positions.into_iter().next().expect("one row");
        self.prefill = Some(Prefill {
            // The first generated token sits at text position prompt length + the images' rope delta.
            next_position: ids.len() as i64 + delta,
            job: Arc::new(JobState {
                sampling: job.sampling,
                max_new_tokens: job.max_new_tokens,
                stop: job.stop,
                ignore_eos: job.ignore_eos,
                events: job.events,
                overrun: AtomicBool::new(false),
                _images: job.images,
            }),
            n: job.n,
            seed: job.seed,
            cache: model.new_cache(),
            embeds: step.embeds,
            positions,
            done: 0,
            ids,
        });
    }

    /// Run the next chunk of the prefill; after the last one, choose the first tokens, fork for the choices and
    /// join the running batch. The returned error is the model's.
    fn prefill_chunk(&mut self) -> Result<(), String> {
        let p = self.prefill.as_mut().expect("called with a prefill");
        if p.job.events.is_closed() {
            self.prefill = None;
            self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let total = p.ids.len();
        let chunk = if self.opts.prefill_chunk == 0 { total } else { self.opts.prefill_chunk };
        let (start, end) = (p.done, (p.done + chunk).min(total));
        let model = &self.ckpt.model;
        let positions = p.positions.clone().map(|axis| axis[start..end].to_vec());
        let step = Step { embeds: p.embeds.clone().narrow(1, start, end - start), positions: vec![positions] };
        let h = model.forward(step, &mut p.cache).map_err(|e| e.to_string())?;
        p.done = end;
        self.stats.prefilled.fetch_add((end - start) as u64, Ordering::Relaxed);
        if end < total {
            return Ok(());
        }
        let mut p = self.prefill.take().expect("checked above");
        let [_, t, d] = h.dims();
        let logits: Vec<f32> =
            model.project(h.narrow(1, t - 1, 1).reshape([1, d])).into_data().to_vec().map_err(|e| format!("{e:?}"))?;
        let first = p.cache.ids()[0];
        let ids = p.cache.fork(first, p.n).map_err(|e| e.to_string())?;
        let mut new = Vec::with_capacity(p.n);
        for (index, id) in ids.into_iter().enumerate() {
            let mut s = Seq {
                id,
                job: p.job.clone(),
                index,
                history: p.ids.clone(),
                tokens: Vec::new(),
                next_position: p.next_position,
                rng: ChaCha8Rng::seed_from_u64(p.seed.wrapping_add(index as u64)),
                sent: 0,
                generated: 0,
                logprobs: Vec::new(),
                done: None,
            };
            self.advance(&mut s, &logits);
            new.push(s);
        }
        match &mut self.cache {
            Some(c) => c.join(p.cache).map_err(|e| e.to_string())?,
            None => self.cache = Some(p.cache),
        }
        self.running.extend(new);
        self.retire();
        Ok(())
    }

    /// One decode step for every running choice.
    fn step(&mut self) -> Result<(), String> {
        let cache = self.cache.as_mut().ok_or("no cache for running sequences")?;
        let model = &self.ckpt.model;
        let next: Vec<u32> = self.running.iter().map(|s| *s.history.last().unwrap_or(&0)).collect();
        let positions: Vec<i64> = self.running.iter().map(|s| s.next_position).collect();
        let step = model.token_step(&next, &positions, &self.device);
        let h = model.forward(step, cache).map_err(|e| e.to_string())?;
        let [b, _, d] = h.dims();
        let flat: Vec<f32> = model.project(h.reshape([b, d])).into_data().to_vec().map_err(|e| format!("{e:?}"))?;
        let vocab = flat.len() / b.max(1);
        self.stats.steps.fetch_add(1, Ordering::Relaxed);
        self.stats.step_rows.fetch_add(b as u64, Ordering::Relaxed);
        let mut running = std::mem::take(&mut self.running);
        for (i, s) in running.iter_mut().enumerate() {
            s.next_position += 1;
            self.advance(s, &flat[i * vocab..(i + 1) * vocab]);
        }
        self.running = running;
        self.retire();
        Ok(())
    }

    /// Choose the next token of `s` from `logits`, send its new text, and mark it done when it ends (or when
    /// its client has gone).
    fn advance(&self, s: &mut Seq, logits: &[f32]) {
        let job = &s.job;
        if job.events.is_closed() {
            s.done = Some(Finish::Length);
            self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if job.overrun.load(Ordering::Relaxed) {
            s.done = Some(Finish::Length);
            return;
        }
        let (tok, lp) = choose(logits, &s.history, &job.sampling, &mut s.rng);
        s.history.push(tok);
        s.logprobs.push((tok, lp));
        s.generated += 1;
        self.stats.generated.fetch_add(1, Ordering::Relaxed);
        let eos = !job.ignore_eos && self.ckpt.stop_tokens.contains(&tok);
        if !eos {
            s.tokens.push(tok);
        }
        let text = self.ckpt.tokenizer.decode(&s.tokens).unwrap_or_default();
        let cut = job.stop.iter().filter_map(|st| text.find(st.as_str())).min();
        let finish = if eos || cut.is_some() {
            Some(Finish::Stop)
        } else {
            (s.generated >= job.max_new_tokens).then_some(Finish::Length)
        };
        // Text that may still become a stop string, or half a character, is held back until it cannot.
        let end = match (cut, finish) {
            (Some(c), _) => c,
            (None, Some(_)) => text.len(),
            (None, None) => {
                let hold = job.stop.iter().map(|st| st.len().saturating_sub(1)).max().unwrap_or(0);
                let mut e = text.len().saturating_sub(hold);
                while !text.is_char_boundary(e) {
                    e -= 1;
                }
                if text[..e].ends_with('\u{FFFD}') { e - '\u{FFFD}'.len_utf8() } else { e }
            }
        };
        if end > s.sent {
            job.emit(Event::Delta { index: s.index, text: text[s.sent..end].to_string() }, &self.stats);
            s.sent = end;
        }
        if let Some(f) = finish {
            let logprobs = std::mem::take(&mut s.logprobs)
                .into_iter()
                .map(|(t, l)| (t, self.ckpt.tokenizer.decode(&[t]).unwrap_or_default(), l))
                .collect();
            job.emit(Event::Done { index: s.index, finish: f, tokens: s.generated, logprobs }, &self.stats);
            s.done = Some(f);
        }
    }

    /// Release every finished choice from the batch.
    fn retire(&mut self) {
        let Some(cache) = self.cache.as_mut() else { return };
        let mut i = 0;
        while i < self.running.len() {
            if self.running[i].done.is_some() {
                let s = self.running.remove(i);
                if let Err(e) = cache.release(s.id) {
                    tracing::error!("releasing a finished sequence: {e}");
                }
            } else {
                i += 1;
            }
        }
        if self.running.is_empty() {
            self.cache = None;
        }
        self.stats.running.store(self.running.len(), Ordering::Relaxed);
    }
}
