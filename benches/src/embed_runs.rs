//! `kyro-bench embed`: throughput and exactness of the text embedder
//! (`kyro-embed`), in batches or through its micro-batching service.
//!
//! Self-contained on purpose (its own `.fvecs` reader and percentile): the
//! same file is also built as `kyro-embed`'s `embed_bench` example, which
//! measures the embedder without compiling RocksDB.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use clap::Args;
use kyro_embed::{BatcherConfig, EmbedService, Embedder, Precision};
use serde::Serialize;

/// Arguments of `kyro-bench embed`.
#[derive(Args)]
pub struct EmbedArgs {
    /// Texts to embed, one per line.
    #[arg(long, value_name = "FILE")]
    texts: PathBuf,
    /// Reference vectors (.fvecs), row i for line i: report cosine mean/min.
    #[arg(long, value_name = "FILE.fvecs")]
    reference: Option<PathBuf>,
    /// Texts per `embed_batch` call (in file order).
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Threads of the embedder's pool.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Precision of the encoder's matrix products: f32, int8 (AVX-512 VNNI)
    /// or auto (int8 where the CPU has VNNI).
    #[arg(long, default_value = "f32")]
    precision: Precision,
    /// Embed only the first N texts.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Instead of batches: N concurrent single-text callers through
    /// `EmbedService` (micro-batching, cache off); percentiles are per call.
    #[arg(long, value_name = "N")]
    callers: Option<usize>,
    /// The service's largest batch (with --callers).
    #[arg(long, default_value_t = 64)]
    max_batch: usize,
    /// Model folder (default: $KYRO_MODEL_DIR or ~/.cache/kyrodb/models/all-MiniLM-L6-v2).
    #[arg(long, value_name = "DIR")]
    model_dir: Option<PathBuf>,
    /// Write the results as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

#[derive(Serialize)]
struct EmbedReport {
    texts: usize,
    tokens: usize,
    seconds: f64,
    texts_per_second: f64,
    tokens_per_second: f64,
    threads: usize,
    /// The precision the encoder ran at (`auto` resolved).
    precision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cosine_mean: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cosine_min: Option<f64>,
    engine: &'static str,
    mode: String,
    /// Per batch, or per call with --callers.
    p50_ms: f64,
    p99_ms: f64,
    cores_used: f64,
}

/// Process CPU time (user + system) from `/proc/self/stat`, whose clock
/// ticks are 1/100 s on Linux; `None` elsewhere.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start at 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Runs `kyro-bench embed`.
pub fn run_embed(args: EmbedArgs) -> Result<()> {
    let content = std::fs::read_to_string(&args.texts)
        .with_context(|| format!("reading {}", args.texts.display()))?;
    let texts: Vec<&str> = content
        .lines()
        .take(args.limit.unwrap_or(usize::MAX))
        .collect();
    ensure!(!texts.is_empty(), "no texts in {}", args.texts.display());
    ensure!(args.batch > 0, "--batch must be positive");
    let model_dir = args
        .model_dir
        .clone()
        .unwrap_or_else(kyro_embed::default_model_dir);
    let embedder = Embedder::load_with_precision(&model_dir, args.threads, args.precision)
        .with_context(|| {
            format!(
                "loading the model from {} (scripts/fetch-model.sh)",
                model_dir.display()
            )
        })?;
    let precision = embedder.precision();
    let tokens: usize = texts
        .iter()
        .map(|t| embedder.count_tokens(t))
        .sum::<Result<usize, _>>()?;
    // Warm-up: first-touch of the weights and scratch, not timed.
    embedder.embed_batch(&texts[..texts.len().min(8)])?;

    let progress = Progress::new(texts.len());
    let cpu0 = process_cpu_seconds();
    let start = Instant::now();
    let (vectors, mut latencies, mode) = match args.callers {
        None => {
            let mut vectors = Vec::with_capacity(texts.len());
            let mut latencies = Vec::new();
            for chunk in texts.chunks(args.batch) {
                let t = Instant::now();
                vectors.extend(embedder.embed_batch(chunk)?);
                latencies.push(t.elapsed().as_secs_f64() * 1e3);
                progress.tick(vectors.len());
            }
            (vectors, latencies, format!("batch {}", args.batch))
        }
        Some(callers) => {
            let (vectors, latencies) =
                run_callers(embedder, &texts, callers, args.max_batch, &progress)?;
            (
                vectors,
                latencies,
                format!("{callers} callers, max batch {}", args.max_batch),
            )
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    let cores_used = match (cpu0, process_cpu_seconds()) {
        (Some(a), Some(b)) => (b - a) / seconds,
        _ => f64::NAN,
    };
    progress.finish();
    latencies.sort_by(f64::total_cmp);

    let (mut cosine_mean, mut cosine_min) = (None, None);
    if let Some(path) = &args.reference {
        let reference = read_fvecs(path, texts.len())?;
        ensure!(
            reference.len() == texts.len(),
            "{} has fewer rows than texts",
            path.display()
        );
        let cosines: Vec<f64> = vectors
            .iter()
            .zip(&reference)
            .map(|(v, r)| cosine(v, r))
            .collect();
        cosine_mean = Some(cosines.iter().sum::<f64>() / cosines.len() as f64);
        cosine_min = Some(cosines.iter().copied().fold(f64::INFINITY, f64::min));
    }
    let report = EmbedReport {
        texts: texts.len(),
        tokens,
        seconds,
        texts_per_second: texts.len() as f64 / seconds,
        tokens_per_second: tokens as f64 / seconds,
        threads: args.threads,
        precision: precision.as_str(),
        cosine_mean,
        cosine_min,
        engine: "kyro-embed",
        mode,
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        cores_used,
    };
    let mut line = format!(
        "kyro-embed ({}, {}): {} texts, {} word pieces in {:.2} s: {:.1} texts/s, {:.0} tokens/s, p50 {:.1} ms, p99 {:.1} ms, cores used {:.2}",
        report.mode,
        report.precision,
        report.texts,
        report.tokens,
        report.seconds,
        report.texts_per_second,
        report.tokens_per_second,
        report.p50_ms,
        report.p99_ms,
        report.cores_used
    );
    if let (Some(mean), Some(min)) = (cosine_mean, cosine_min) {
        line += &format!(", cosine mean {mean:.6} min {min:.6}");
    }
    println!("{line}");
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// `callers` async tasks, each embedding the next unclaimed text through
/// one `EmbedService`, until all are done. Returns the vectors in text order
/// and each call's latency in ms.
fn run_callers(
    embedder: Embedder,
    texts: &[&str],
    callers: usize,
    max_batch: usize,
    progress: &Progress,
) -> Result<(Vec<Vec<f32>>, Vec<f64>)> {
    let service = EmbedService::start(
        embedder,
        BatcherConfig {
            max_batch,
            // Every text is distinct; the cache would only cost.
            cache_capacity: 0,
            ..BatcherConfig::default()
        },
    );
    // The callers only await: one runtime thread is plenty and leaves the
    // cores to the embedder.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let texts: Arc<Vec<String>> = Arc::new(texts.iter().map(|t| t.to_string()).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let results = runtime.block_on(async {
        let tasks: Vec<_> = (0..callers.max(1))
            .map(|_| {
                let (service, texts, next) = (service.clone(), texts.clone(), next.clone());
                tokio::spawn(async move {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(text) = texts.get(i) else { break };
                        let t = Instant::now();
                        let v = service.embed(text).await?;
                        done.push((i, v, t.elapsed().as_secs_f64() * 1e3));
                    }
                    Ok::<_, kyro_embed::EmbedError>(done)
                })
            })
            .collect();
        let mut all = Vec::new();
        let mut ticker = tokio::time::interval(Duration::from_millis(500));
        // Progress while the callers run; each caller is joined as soon as
        // it finishes (polling for "all finished" on the ticker would add up
        // to a tick to the measured time).
        for mut task in tasks {
            loop {
                tokio::select! {
                    done = &mut task => {
                        all.extend(done??);
                        break;
                    }
                    _ = ticker.tick() => {
                        progress.tick(next.load(Ordering::Relaxed).min(texts.len()));
                    }
                }
            }
        }
        anyhow::Ok(all)
    })?;
    let mut vectors = vec![Vec::new(); texts.len()];
    let mut latencies = Vec::with_capacity(texts.len());
    for (i, v, ms) in results {
        vectors[i] = v.to_vec();
        latencies.push(ms);
    }
    Ok((vectors, latencies))
}

/// The first `limit` rows of an `.fvecs` file (per row: `i32` dimension,
/// then that many `f32`, little-endian).
fn read_fvecs(path: &std::path::Path, limit: usize) -> Result<Vec<Vec<f32>>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut rows = Vec::new();
    let mut rest = bytes.as_slice();
    while rows.len() < limit && rest.len() >= 4 {
        let dim = i32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let dim = usize::try_from(dim).context("negative dimension")?;
        let row = rest.get(4..4 + dim * 4).context("truncated .fvecs row")?;
        rows.push(
            row.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        );
        rest = &rest[4 + dim * 4..];
    }
    Ok(rows)
}

/// Nearest-rank percentile of an ascending-sorted slice; `p` in `[0, 100]`.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// A progress line on stderr every two seconds, only on long runs.
struct Progress {
    total: usize,
    start: Instant,
    last: std::cell::Cell<Instant>,
}

impl Progress {
    fn new(total: usize) -> Progress {
        let now = Instant::now();
        Progress {
            total,
            start: now,
            last: std::cell::Cell::new(now),
        }
    }

    fn tick(&self, done: usize) {
        if self.last.get().elapsed() >= Duration::from_secs(2) {
            self.last.set(Instant::now());
            let rate = done as f64 / self.start.elapsed().as_secs_f64();
            eprint!(
                "\rembedded {done}/{} texts, {rate:.1} texts/s   ",
                self.total
            );
        }
    }

    fn finish(&self) {
        if self.start.elapsed() >= Duration::from_secs(2) {
            eprintln!();
        }
    }
}
