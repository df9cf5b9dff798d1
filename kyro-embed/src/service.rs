//! [`EmbedService`]: the embedder served to many concurrent async callers.
//!
//! Callers put single texts on a queue and await a one-shot reply. One
//! batcher thread takes the first waiting text, gathers more until the batch
//! is full ([`BatcherConfig::max_batch`]) or [`BatcherConfig::max_wait`] has
//! passed since that first text, and hands the batch to the embedder's own
//! thread pool, which splits it into length-sorted forward passes across the
//! cores (see `Embedder::embed_batch`). Up to [`BATCHES_IN_FLIGHT`] batches
//! run at once: a thread that has finished its passes of one batch starts on
//! the next instead of waiting for the batch's slowest pass, which on a busy
//! machine (the gateway's own threads, the engine, a load generator share the
//! cores) is often one whose thread was preempted. While batches run, the
//! next one queues up, so under load batches fill without waiting. Forward
//! passes are ragged (no padding at all, see `encoder.rs`), so grouping by
//! length costs no padding; it only keeps the passes even.
//!
//! The cache is `moka`'s bounded concurrent cache keyed by the exact text.
//! kyro-engine's learned-frequency cache would fit, but it is reachable only
//! through the `kyro-engine` crate, which links RocksDB (a 20-minute C++
//! build) and which the embedder must not depend on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use tokio::sync::oneshot;

use crate::{EmbedError, Embedder};

/// Batches computed at once at most (see the module doc). Two: one finishing
/// while the next starts; more would only lengthen every batch's latency.
const BATCHES_IN_FLIGHT: usize = 2;

/// Settings of the [`EmbedService`]; [`Default`] gives the served values.
#[derive(Clone, Debug)]
pub struct BatcherConfig {
    /// Texts per batch at most (default 64).
    pub max_batch: usize,
    /// How long the batcher waits for more texts after the first of a batch
    /// (default 2 ms). A full batch starts at once.
    pub max_wait: Duration,
    /// Embeddings kept in the cache of recent texts, keyed by the exact text
    /// (default 10,000, ≈ 1.6 KiB each plus the text); 0 turns it off.
    pub cache_capacity: u64,
    /// Threads that compute batches (default 0: the embedder's pool, sized
    /// by `Embedder::load`). Any other value replaces that pool's size for
    /// this service's batches.
    pub threads: usize,
}

impl Default for BatcherConfig {
    fn default() -> Self {
        BatcherConfig {
            max_batch: 64,
            max_wait: Duration::from_millis(2),
            cache_capacity: 10_000,
            threads: 0,
        }
    }
}

/// Counters of an [`EmbedService`] since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EmbedStats {
    /// Texts answered from the cache.
    pub cache_hits: u64,
    /// Texts not in the cache (each is embedded).
    pub cache_misses: u64,
    /// Batches run by the batcher.
    pub batches: u64,
    /// Texts embedded by those batches.
    pub texts_embedded: u64,
}

/// Where a caller's vector (or its error) is sent.
type Reply = oneshot::Sender<Result<Arc<[f32]>, EmbedError>>;
/// What a caller awaits.
type Pending = oneshot::Receiver<Result<Arc<[f32]>, EmbedError>>;

/// One caller's text and where its vector goes.
struct Job {
    text: String,
    reply: Reply,
}

#[derive(Default)]
struct Counters {
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    batches: AtomicU64,
    texts_embedded: AtomicU64,
}

struct Shared {
    queue: Sender<Job>,
    cache: Option<moka::sync::Cache<String, Arc<[f32]>>>,
    counters: Arc<Counters>,
}

/// The embedder behind a micro-batching queue and a cache; cheap to clone
/// (clones share the queue, the cache and the batcher). Its async methods
/// never block the runtime: the work runs on the embedder's threads and the
/// caller awaits a reply. The batcher stops when the last clone is dropped.
#[derive(Clone)]
pub struct EmbedService {
    shared: Arc<Shared>,
    dim: usize,
}

impl EmbedService {
    /// Starts the batcher thread around `embedder`.
    pub fn start(embedder: Embedder, config: BatcherConfig) -> EmbedService {
        let embedder = if config.threads > 0 && config.threads != embedder.threads() {
            embedder.with_threads(config.threads)
        } else {
            embedder
        };
        let dim = embedder.dim();
        let (queue, jobs) = crossbeam_channel::unbounded();
        let cache =
            (config.cache_capacity > 0).then(|| moka::sync::Cache::new(config.cache_capacity));
        let counters = Arc::new(Counters::default());
        let batcher = Batcher {
            runner: BatchRunner {
                embedder: Arc::new(embedder),
                cache: cache.clone(),
                counters: counters.clone(),
            },
            jobs,
            max_batch: config.max_batch.max(1),
            max_wait: config.max_wait,
        };
        // If the thread cannot be spawned, the queue's receiver is dropped
        // with it and every call reports `ServiceStopped`.
        let _ = std::thread::Builder::new()
            .name("kyro-embed-batcher".into())
            .spawn(move || batcher.run());
        EmbedService {
            shared: Arc::new(Shared {
                queue,
                cache,
                counters,
            }),
            dim,
        }
    }

    /// The embedding width: 384.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The embedding of `text` (see [`Embedder::embed_batch`]), from the
    /// cache when the same text was embedded recently.
    pub async fn embed(&self, text: &str) -> Result<Arc<[f32]>, EmbedError> {
        match self.lookup(text) {
            Some(v) => Ok(v),
            None => self
                .submit(text.to_owned())?
                .await
                .map_err(|_| EmbedError::ServiceStopped)?,
        }
    }

    /// The embeddings of `texts`, in order. The texts join the same queue as
    /// single calls, so they are batched with whatever else is waiting.
    pub async fn embed_many(&self, texts: &[String]) -> Result<Vec<Arc<[f32]>>, EmbedError> {
        enum Slot {
            Ready(Arc<[f32]>),
            Waiting(Pending),
        }
        let mut pending = Vec::with_capacity(texts.len());
        for text in texts {
            pending.push(match self.lookup(text) {
                Some(v) => Slot::Ready(v),
                None => Slot::Waiting(self.submit(text.clone())?),
            });
        }
        let mut out = Vec::with_capacity(texts.len());
        for p in pending {
            out.push(match p {
                Slot::Ready(v) => v,
                Slot::Waiting(rx) => rx.await.map_err(|_| EmbedError::ServiceStopped)??,
            });
        }
        Ok(out)
    }

    /// The service's counters.
    pub fn stats(&self) -> EmbedStats {
        let c = &self.shared.counters;
        EmbedStats {
            cache_hits: c.cache_hits.load(Ordering::Relaxed),
            cache_misses: c.cache_misses.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            texts_embedded: c.texts_embedded.load(Ordering::Relaxed),
        }
    }

    fn lookup(&self, text: &str) -> Option<Arc<[f32]>> {
        let counters = &self.shared.counters;
        match self.shared.cache.as_ref().and_then(|c| c.get(text)) {
            Some(v) => {
                counters.cache_hits.fetch_add(1, Ordering::Relaxed);
                Some(v)
            }
            None => {
                counters.cache_misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    fn submit(&self, text: String) -> Result<Pending, EmbedError> {
        let (reply, rx) = oneshot::channel();
        self.shared
            .queue
            .send(Job { text, reply })
            .map_err(|_| EmbedError::ServiceStopped)?;
        Ok(rx)
    }
}

/// The batcher thread's state.
struct Batcher {
    runner: BatchRunner,
    jobs: Receiver<Job>,
    max_batch: usize,
    max_wait: Duration,
}

impl Batcher {
    fn run(self) {
        // A bounded channel as a counting semaphore: a batch puts a token in
        // before it starts and takes one out when it ends.
        let (take_permit, return_permit) = crossbeam_channel::bounded::<()>(BATCHES_IN_FLIGHT);
        // Waits for a free slot first, then gathers: texts that arrive while
        // both slots are busy join the next batch rather than waiting behind
        // a small one gathered early. `recv` fails once every sender (every
        // service clone) is gone; the send cannot fail (`return_permit` lives).
        while take_permit.send(()).is_ok() {
            let Ok(first) = self.jobs.recv() else { break };
            let deadline = Instant::now() + self.max_wait;
            let mut batch = vec![first];
            while batch.len() < self.max_batch {
                match self.jobs.recv_deadline(deadline) {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let runner = self.runner.clone();
            let permit = Permit(return_permit.clone());
            self.runner.embedder.spawn(move || {
                // A panic drops the batch's reply senders (its callers get
                // `ServiceStopped`); the pool and the service live on.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    runner.process(batch)
                }));
                drop(permit);
            });
        }
    }
}

/// A batch's slot; returned when dropped (also when the batch panicked).
struct Permit(Receiver<()>);

impl Drop for Permit {
    fn drop(&mut self) {
        let _ = self.0.try_recv();
    }
}

/// What a batch needs on the pool: the embedder, the cache its vectors go
/// into and the counters.
#[derive(Clone)]
struct BatchRunner {
    embedder: Arc<Embedder>,
    cache: Option<moka::sync::Cache<String, Arc<[f32]>>>,
    counters: Arc<Counters>,
}

impl BatchRunner {
    fn process(&self, batch: Vec<Job>) {
        let texts: Vec<&str> = batch.iter().map(|j| j.text.as_str()).collect();
        let results = self.embedder.embed_each(&texts);
        self.counters.batches.fetch_add(1, Ordering::Relaxed);
        for (job, result) in batch.into_iter().zip(results) {
            let result = result.map(|v| {
                self.counters.texts_embedded.fetch_add(1, Ordering::Relaxed);
                let v: Arc<[f32]> = v.into();
                if let Some(cache) = &self.cache {
                    cache.insert(job.text, v.clone());
                }
                v
            });
            // A caller that stopped waiting (its future was dropped) is fine.
            let _ = job.reply.send(result);
        }
    }
}
