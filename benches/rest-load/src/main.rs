//! `kyro-rest-load`: the REST load generator of issue 17. N keep-alive
//! HTTP/1.1 connections drive a running `kyro-gateway` with a mix of
//! search / reflect / capture (closed loop: each connection sends its next
//! request when the previous answer is in; or, with `--rate`, open loop:
//! requests start on a fixed schedule and each one's latency counts from
//! its scheduled start, so waiting for a free connection is counted), and
//! report per-route
//! throughput and latency (HdrHistogram), errors by status, this process's
//! own CPU, the gateway's and kyro-server's CPU (`--gateway-pid`,
//! `--server-pid`) and, from the gateway's `/metrics` before and after, where
//! a request's time goes (embedding, engine calls, the rest).

mod client;
mod cpu;
mod prom;
mod texts;
mod workload;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use hdrhistogram::Histogram;
use hyper::Method;
use rand::SeedableRng;
use serde_json::json;

use client::Connection;
use cpu::ProcessCpu;
use workload::{Bodies, Mix, Route, TextMode};

#[derive(Parser, Clone)]
#[command(
    name = "kyro-rest-load",
    about = "REST load generator for kyro-gateway (issue 17)"
)]
struct Cli {
    /// The gateway, `http://host:port`.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Concurrent keep-alive connections (one request in flight each).
    #[arg(long, default_value_t = 200)]
    connections: usize,
    /// Open loop: requests per second offered across all connections, on
    /// a fixed schedule (one every 1/RATE s); latency counts from each
    /// request's scheduled start. 0: closed loop.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Measured seconds.
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    /// Seconds of load before the measured window (not counted).
    #[arg(long, default_value_t = 5.0)]
    warmup: f64,
    /// Where the texts come from.
    #[arg(long, value_enum, default_value_t = TextMode::Zipf)]
    texts: TextMode,
    /// Route weights.
    #[arg(long, default_value = "search=50,reflect=30,capture=20")]
    mix: String,
    /// Distinct episodes of `--texts zipf`.
    #[arg(long, default_value_t = 10_000)]
    universe: usize,
    /// The first serial of `--texts distinct` (and of `--dump-texts`):
    /// runs against one gateway with different values send texts new to
    /// its embedding cache.
    #[arg(long, default_value_t = 0)]
    distinct_from: u64,
    /// Zipf exponent of `--texts zipf`.
    #[arg(long, default_value_t = 1.0)]
    zipf_s: f64,
    /// Seed of the route and rank draws.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The gateway's admin key: create an ENTERPRISE customer and a
    /// read+write key for the run, and seed episodes.
    #[arg(long, env = "KYRO_ADMIN_KEY")]
    admin_key: Option<String>,
    /// A read+write key to use instead of creating one.
    #[arg(long, env = "KYRO_API_KEY")]
    api_key: Option<String>,
    /// Episodes captured before the run (the universe's top ranks), with
    /// `--admin-key`.
    #[arg(long, default_value_t = 500)]
    seed_episodes: usize,
    /// The gateway's pid: report its CPU (and per thread group).
    #[arg(long)]
    gateway_pid: Option<u32>,
    /// kyro-server's pid: report its CPU.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Threads of this generator's runtime (1: a current-thread runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// A name for this run in the report.
    #[arg(long)]
    label: Option<String>,
    /// Write the report as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Instead of a run: write the texts the gateway would embed for the
    /// first N requests of `--texts distinct` (one per line, the mix's
    /// proportions) to FILE, for the embedder's own benchmark, and exit.
    #[arg(long, value_name = "FILE")]
    dump_texts: Option<PathBuf>,
    /// How many texts `--dump-texts` writes.
    #[arg(long, default_value_t = 2_000)]
    dump_count: usize,
}

/// Phases of a run, shared with the connections.
const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

/// What one connection saw in the measured window.
struct ConnectionStats {
    latency: [Histogram<u64>; 3],
    /// (route, status) → count; status 0 is a transport error.
    errors: BTreeMap<(Route, u16), u64>,
    /// A few error bodies, for the report.
    error_samples: Vec<String>,
    /// Capture answers: 201 created, 200 folded into an existing episode.
    captures_created: u64,
    captures_linked: u64,
}

impl ConnectionStats {
    fn new() -> ConnectionStats {
        let h = || Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds");
        ConnectionStats {
            latency: [h(), h(), h()],
            errors: BTreeMap::new(),
            error_samples: Vec::new(),
            captures_created: 0,
            captures_linked: 0,
        }
    }

    fn merge(&mut self, other: ConnectionStats) {
        for (a, b) in self.latency.iter_mut().zip(other.latency.iter()) {
            a.add(b).expect("same bounds");
        }
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for s in other.error_samples {
            if self.error_samples.len() < 5 {
                self.error_samples.push(s);
            }
        }
        self.captures_created += other.captures_created;
        self.captures_linked += other.captures_linked;
    }
}

struct Shared {
    host: String,
    key: String,
    mix: Mix,
    bodies: Bodies,
    phase: AtomicU8,
    /// Requests completed (any status), all phases: the progress line.
    completed: AtomicU64,
    /// The open loop's schedule (`--rate`).
    schedule: Option<Schedule>,
}

/// When each request of the open loop is due: the n-th at `start + n ×
/// interval`, whichever connection is free first takes it.
struct Schedule {
    start: Instant,
    interval: Duration,
    next: AtomicU64,
}

impl Schedule {
    /// The next request's due time.
    fn take(&self) -> Instant {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.start + self.interval.mul_f64(n as f64)
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Some(path) = &cli.dump_texts {
        return dump_texts(&cli, path);
    }
    let runtime = if cli.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cli.threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(run(cli))
}

fn dump_texts(cli: &Cli, path: &PathBuf) -> Result<()> {
    let mix = Mix::parse(&cli.mix).map_err(anyhow::Error::msg)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cli.seed);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for serial in cli.distinct_from..cli.distinct_from + cli.dump_count as u64 {
        let route = mix.pick(&mut rng);
        let text = workload::embedded_text(route, &workload::distinct_episode(serial));
        // One text per line: the embedder's benchmark reads lines, so the
        // layout's newlines become spaces (same word pieces).
        writeln!(out, "{}", text.replace('\n', " "))?;
    }
    Ok(())
}

fn host_of(url: &str) -> Result<String> {
    let rest = url
        .strip_prefix("http://")
        .context("--url must start with http://")?;
    Ok(rest.trim_end_matches('/').to_owned())
}

async fn run(cli: Cli) -> Result<()> {
    let host = host_of(&cli.url)?;
    let mix = Mix::parse(&cli.mix).map_err(anyhow::Error::msg)?;
    let key = setup(&cli, &host).await?;

    let bodies = match cli.texts {
        TextMode::Zipf => Bodies::zipf(cli.universe, cli.zipf_s),
        TextMode::Distinct => Bodies::distinct(cli.distinct_from),
    };
    if !(cli.rate >= 0.0 && cli.rate.is_finite()) {
        bail!("--rate must be a number >= 0");
    }
    let shared = Arc::new(Shared {
        host: host.clone(),
        key,
        mix,
        bodies,
        phase: AtomicU8::new(WARMUP),
        completed: AtomicU64::new(0),
        schedule: (cli.rate > 0.0).then(|| Schedule {
            start: Instant::now(),
            interval: Duration::from_secs_f64(1.0 / cli.rate),
            next: AtomicU64::new(0),
        }),
    });

    let mut workers = Vec::with_capacity(cli.connections);
    for i in 0..cli.connections {
        let shared = shared.clone();
        let seed = cli.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        workers.push(tokio::spawn(connection_loop(shared, seed)));
    }
    eprintln!(
        "kyro-rest-load: {} connections, {}, texts {:?}, warm-up {} s, measuring {} s",
        cli.connections,
        loop_name(cli.rate),
        cli.texts,
        cli.warmup,
        cli.duration
    );
    tokio::time::sleep(Duration::from_secs_f64(cli.warmup)).await;

    // The measured window starts: scrape, read CPU counters.
    let mut scraper = Connection::open(&host).await?;
    let metrics_before = scrape(&mut scraper).await?;
    let gateway_before = cli.gateway_pid.and_then(ProcessCpu::read);
    let server_before = cli.server_pid.and_then(cpu::process_cpu_seconds);
    let own_before = cpu::own_cpu_seconds();
    let started = Instant::now();
    shared.phase.store(MEASURE, Ordering::SeqCst);

    let deadline = started + Duration::from_secs_f64(cli.duration);
    let mut last = (Instant::now(), shared.completed.load(Ordering::Relaxed));
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(left.min(Duration::from_secs(5))).await;
        let now = (Instant::now(), shared.completed.load(Ordering::Relaxed));
        eprintln!(
            "  {:5.1} s  {:7.1} req/s",
            now.0.duration_since(started).as_secs_f64(),
            (now.1 - last.1) as f64 / now.0.duration_since(last.0).as_secs_f64()
        );
        last = now;
    }
    shared.phase.store(STOP, Ordering::SeqCst);
    let seconds = started.elapsed().as_secs_f64();
    let own_after = cpu::own_cpu_seconds();
    let gateway_after = cli.gateway_pid.and_then(ProcessCpu::read);
    let server_after = cli.server_pid.and_then(cpu::process_cpu_seconds);
    let metrics_after = scrape(&mut scraper).await?;

    // Connections finish their request in flight; a stuck one is dropped.
    let mut stats = ConnectionStats::new();
    let grace = Instant::now() + Duration::from_secs(30);
    for worker in workers {
        let left = grace.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, worker).await {
            Ok(Ok(s)) => stats.merge(s),
            Ok(Err(e)) => bail!("a connection task failed: {e}"),
            Err(_) => {
                eprintln!("kyro-rest-load: a connection did not finish within the grace time")
            }
        }
    }

    let report = Report {
        cli: &cli,
        seconds,
        stats: &stats,
        own_cpu: own_after - own_before,
        gateway_cpu: match (&gateway_before, &gateway_after) {
            (Some(a), Some(b)) => Some(b.since(a)),
            _ => None,
        },
        server_cpu: match (server_before, server_after) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        },
        before: prom::parse(&metrics_before),
        after: prom::parse(&metrics_after),
        distinct_texts: shared.bodies.distinct_count(),
    };
    report.print();
    if let Some(path) = &cli.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report.json())?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Creates the customer and key (with `--admin-key`) and seeds episodes;
/// the key of the run.
async fn setup(cli: &Cli, host: &str) -> Result<String> {
    let key = match (&cli.admin_key, &cli.api_key) {
        (_, Some(key)) => key.clone(),
        (Some(admin), None) => {
            let mut c = Connection::open(host).await?;
            let customer = c
                .post_json(
                    "/api/v1/customers",
                    admin,
                    &json!({"name": "rest-load", "tier": "ENTERPRISE"}),
                    201,
                )
                .await?;
            let id = customer["customer_id"]
                .as_str()
                .context("no customer_id in the answer")?;
            let key = c
                .post_json(
                    &format!("/api/v1/customers/{id}/keys"),
                    admin,
                    &json!({"scopes": ["read", "write"]}),
                    201,
                )
                .await?;
            eprintln!("kyro-rest-load: customer {id} (ENTERPRISE)");
            key["api_key"]
                .as_str()
                .context("no api_key in the answer")?
                .to_owned()
        }
        (None, None) => bail!("give --admin-key (to create a customer) or --api-key"),
    };
    if cli.admin_key.is_some() && cli.seed_episodes > 0 {
        let started = Instant::now();
        let next = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (next, key, host) = (next.clone(), key.clone(), host.to_owned());
            let count = cli.seed_episodes as u64;
            tasks.push(tokio::spawn(async move {
                let mut c = Connection::open(&host).await?;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        return anyhow::Ok(());
                    }
                    let e = texts::Episode::nth(workload::UNIVERSE_START + i);
                    let body = workload::body(Route::Capture, &e);
                    let reply = c
                        .call(Method::POST, Route::Capture.path(), Some(&key), Some(body))
                        .await?;
                    if reply.status != 201 && reply.status != 200 {
                        bail!(
                            "seeding: capture answered {}: {}",
                            reply.status,
                            String::from_utf8_lossy(&reply.body)
                        );
                    }
                }
            }));
        }
        for task in tasks {
            task.await??;
        }
        eprintln!(
            "kyro-rest-load: seeded {} episodes in {:.1} s",
            cli.seed_episodes,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(key)
}

/// How the load is offered, for the report.
fn loop_name(rate: f64) -> String {
    if rate > 0.0 {
        format!("open loop at {rate} req/s")
    } else {
        "closed loop".to_owned()
    }
}

async fn scrape(c: &mut Connection) -> Result<String> {
    let reply = c.call(Method::GET, "/metrics", None, None).await?;
    if reply.status != 200 {
        bail!("GET /metrics: status {}", reply.status);
    }
    Ok(String::from_utf8_lossy(&reply.body).into_owned())
}

/// One connection: requests back to back until the run stops; what it saw
/// in the measured window.
async fn connection_loop(shared: Arc<Shared>, seed: u64) -> ConnectionStats {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut stats = ConnectionStats::new();
    let mut connection: Option<Connection> = None;
    while shared.phase.load(Ordering::Relaxed) != STOP {
        let c = match connection.as_mut() {
            Some(c) => c,
            None => match Connection::open(&shared.host).await {
                Ok(c) => connection.insert(c),
                Err(e) => {
                    if shared.phase.load(Ordering::Relaxed) == MEASURE {
                        *stats.errors.entry((Route::Search, 0)).or_default() += 1;
                        if stats.error_samples.len() < 2 {
                            stats.error_samples.push(format!("connect: {e:#}"));
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let route = shared.mix.pick(&mut rng);
        let body = shared.bodies.next(route, &mut rng);
        // Open loop: the request is due at its scheduled time, and its
        // latency counts from then even when this connection comes late.
        let sent = match &shared.schedule {
            Some(schedule) => {
                let due = schedule.take();
                tokio::time::sleep_until(due.into()).await;
                due
            }
            None => Instant::now(),
        };
        let result = c
            .call(Method::POST, route.path(), Some(&shared.key), Some(body))
            .await;
        let micros = sent.elapsed().as_micros() as u64;
        shared.completed.fetch_add(1, Ordering::Relaxed);
        let measuring = shared.phase.load(Ordering::Relaxed) == MEASURE;
        match result {
            Ok(reply) => {
                if !measuring {
                    continue;
                }
                let ok = match route {
                    Route::Capture => {
                        if reply.status == 201 {
                            stats.captures_created += 1;
                        } else if reply.status == 200 {
                            stats.captures_linked += 1;
                        }
                        reply.status == 201 || reply.status == 200
                    }
                    _ => reply.status == 200,
                };
                if ok {
                    let _ = stats.latency[route.index()].record(micros.max(1));
                } else {
                    *stats.errors.entry((route, reply.status)).or_default() += 1;
                    if stats.error_samples.len() < 2 {
                        stats.error_samples.push(format!(
                            "{} {}: {}",
                            route.name(),
                            reply.status,
                            String::from_utf8_lossy(&reply.body)
                                .chars()
                                .take(300)
                                .collect::<String>()
                        ));
                    }
                }
            }
            Err(e) => {
                connection = None;
                if measuring {
                    *stats.errors.entry((route, 0)).or_default() += 1;
                    if stats.error_samples.len() < 2 {
                        stats
                            .error_samples
                            .push(format!("{} transport: {e:#}", route.name()));
                    }
                }
            }
        }
    }
    stats
}

/// The figures of a run.
struct Report<'a> {
    cli: &'a Cli,
    seconds: f64,
    stats: &'a ConnectionStats,
    own_cpu: f64,
    gateway_cpu: Option<(f64, BTreeMap<String, f64>)>,
    server_cpu: Option<f64>,
    before: Vec<prom::Sample>,
    after: Vec<prom::Sample>,
    distinct_texts: u64,
}

/// Per-request means from the gateway's metrics over the window.
struct Breakdown {
    requests: f64,
    total_ms: f64,
    embedding_ms: f64,
    embeddings_per_request: f64,
    engine_ms: f64,
    engine_calls_per_request: f64,
    rest_ms: f64,
    per_route_ms: Vec<(Route, f64, f64)>,
    cache_hit_ratio_window: Option<f64>,
    cache_hit_ratio_since_start: Option<f64>,
    batches: Option<f64>,
}

impl Report<'_> {
    fn delta(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        prom::sum(&self.after, name, filter) - prom::sum(&self.before, name, filter)
    }

    fn breakdown(&self) -> Breakdown {
        const DURATION: &str = "gateway_request_duration_seconds";
        let mut requests = 0.0;
        let mut total = 0.0;
        let mut per_route_ms = Vec::new();
        for route in Route::ALL {
            let filter = [("route", route.path())];
            let count = self.delta(&format!("{DURATION}_count"), &filter);
            let sum = self.delta(&format!("{DURATION}_sum"), &filter);
            requests += count;
            total += sum;
            per_route_ms.push((
                route,
                count,
                if count > 0.0 { sum / count * 1e3 } else { 0.0 },
            ));
        }
        let per = |x: f64| if requests > 0.0 { x / requests } else { 0.0 };
        let embed_sum = self.delta("gateway_embedding_seconds_sum", &[]);
        let embed_count = self.delta("gateway_embedding_seconds_count", &[]);
        let engine_sum = self.delta("gateway_engine_call_seconds_sum", &[]);
        let engine_count = self.delta("gateway_engine_call_seconds_count", &[]);
        let ratio_before = prom::gauge(&self.before, "gateway_embedding_cache_hit_ratio");
        let ratio_after = prom::gauge(&self.after, "gateway_embedding_cache_hit_ratio");
        // The gauge is hits / lookups since start, and every lookup of a
        // search, reflect or capture is one `gateway_embedding_seconds`
        // observation: hits in the window follow from both scrapes.
        let lookups_before = prom::sum(&self.before, "gateway_embedding_seconds_count", &[]);
        let lookups_after = prom::sum(&self.after, "gateway_embedding_seconds_count", &[]);
        let cache_hit_ratio_window = match ratio_after {
            Some(r1) if lookups_after > lookups_before => {
                let hits = r1 * lookups_after - ratio_before.unwrap_or(0.0) * lookups_before;
                Some(hits / (lookups_after - lookups_before))
            }
            _ => None,
        };
        let batches = prom::gauge(&self.after, "gateway_embedding_batches")
            .map(|b| b - prom::gauge(&self.before, "gateway_embedding_batches").unwrap_or(0.0));
        let total_ms = per(total) * 1e3;
        let embedding_ms = per(embed_sum) * 1e3;
        let engine_ms = per(engine_sum) * 1e3;
        Breakdown {
            requests,
            total_ms,
            embedding_ms,
            embeddings_per_request: per(embed_count),
            engine_ms,
            engine_calls_per_request: per(engine_count),
            rest_ms: total_ms - embedding_ms - engine_ms,
            per_route_ms,
            cache_hit_ratio_window,
            cache_hit_ratio_since_start: ratio_after,
            batches,
        }
    }

    fn errors_total(&self) -> u64 {
        self.stats.errors.values().sum()
    }

    fn print(&self) {
        let s = self.stats;
        let label = self
            .cli
            .label
            .clone()
            .unwrap_or_else(|| format!("{:?}", self.cli.texts).to_lowercase());
        println!(
            "\n== {label}: {} connections, {}, {:.1} s measured, texts {:?} (universe {}, s = {}), mix {}",
            self.cli.connections, loop_name(self.cli.rate), self.seconds, self.cli.texts, self.cli.universe, self.cli.zipf_s, self.cli.mix
        );
        println!(
            "{:<8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
            "route", "ok", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors"
        );
        let mut all = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("bounds");
        for route in Route::ALL {
            let h = &s.latency[route.index()];
            all.add(h).expect("same bounds");
            let errors: u64 = s
                .errors
                .iter()
                .filter(|((r, _), _)| *r == route)
                .map(|(_, n)| n)
                .sum();
            print_row(route.name(), h, self.seconds, errors);
        }
        print_row("all", &all, self.seconds, self.errors_total());
        if s.errors.is_empty() {
            println!("errors: none");
        } else {
            for ((route, status), n) in &s.errors {
                let status = if *status == 0 {
                    "transport".to_owned()
                } else {
                    status.to_string()
                };
                println!("errors: {} {status}: {n}", route.name());
            }
            for sample in &s.error_samples {
                println!("  e.g. {sample}");
            }
        }
        println!(
            "captures: {} created (201), {} folded into an existing episode (200){}",
            s.captures_created,
            s.captures_linked,
            if self.distinct_texts > 0 {
                format!("; {} distinct episodes sent", self.distinct_texts)
            } else {
                String::new()
            }
        );
        println!(
            "generator CPU: {:.1} % of one core ({:.2} s over {:.1} s, {} runtime thread(s))",
            self.own_cpu / self.seconds * 100.0,
            self.own_cpu,
            self.seconds,
            self.cli.threads.max(1)
        );
        let ok = all.len() as f64;
        if let Some((total, groups)) = &self.gateway_cpu {
            let parts: Vec<String> = groups
                .iter()
                .map(|(name, sec)| format!("{name} {:.1} %", sec / self.seconds * 100.0))
                .collect();
            println!(
                "gateway CPU: {:.1} % of one core ({}); {:.0} µs per request",
                total / self.seconds * 100.0,
                parts.join(", "),
                total / ok * 1e6
            );
        }
        if let Some(server) = self.server_cpu {
            println!(
                "kyro-server CPU: {:.1} % of one core; {:.0} µs per request",
                server / self.seconds * 100.0,
                server / ok * 1e6
            );
        }
        let b = self.breakdown();
        println!(
            "gateway time per request (its /metrics, {:.0} requests): total {:.2} ms = embedding {:.2} ms ({:.2} calls) + engine {:.2} ms ({:.2} calls) + rest {:.2} ms",
            b.requests, b.total_ms, b.embedding_ms, b.embeddings_per_request, b.engine_ms, b.engine_calls_per_request, b.rest_ms
        );
        let routes: Vec<String> = b
            .per_route_ms
            .iter()
            .map(|(r, n, ms)| format!("{} {:.2} ms ({n:.0})", r.name(), ms))
            .collect();
        println!("  mean per route: {}", routes.join(", "));
        if let Some(ratio) = b.cache_hit_ratio_window {
            println!(
                "  embedding cache hit ratio: {:.3} in the window ({:.3} since start){}",
                ratio,
                b.cache_hit_ratio_since_start.unwrap_or(f64::NAN),
                b.batches
                    .map_or(String::new(), |n| format!("; {n:.0} batches"))
            );
        }
    }

    fn json(&self) -> serde_json::Value {
        let s = self.stats;
        let route_json = |h: &Histogram<u64>, errors: u64| {
            json!({
                "ok": h.len(),
                "requests_per_second": h.len() as f64 / self.seconds,
                "p50_ms": h.value_at_quantile(0.50) as f64 / 1e3,
                "p90_ms": h.value_at_quantile(0.90) as f64 / 1e3,
                "p99_ms": h.value_at_quantile(0.99) as f64 / 1e3,
                "max_ms": h.max() as f64 / 1e3,
                "mean_ms": h.mean() / 1e3,
                "errors": errors,
            })
        };
        let mut routes = serde_json::Map::new();
        let mut all = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("bounds");
        for route in Route::ALL {
            let h = &s.latency[route.index()];
            all.add(h).expect("same bounds");
            let errors: u64 = s
                .errors
                .iter()
                .filter(|((r, _), _)| *r == route)
                .map(|(_, n)| n)
                .sum();
            routes.insert(route.name().to_owned(), route_json(h, errors));
        }
        routes.insert("all".to_owned(), route_json(&all, self.errors_total()));
        let errors: Vec<_> = s
            .errors
            .iter()
            .map(|((r, st), n)| json!({"route": r.name(), "status": st, "count": n}))
            .collect();
        let b = self.breakdown();
        let ok = all.len() as f64;
        json!({
            "label": self.cli.label,
            "texts": format!("{:?}", self.cli.texts).to_lowercase(),
            "universe": self.cli.universe,
            "zipf_s": self.cli.zipf_s,
            "mix": self.cli.mix,
            "connections": self.cli.connections,
            "offered_requests_per_second": (self.cli.rate > 0.0).then_some(self.cli.rate),
            "seconds": self.seconds,
            "warmup_seconds": self.cli.warmup,
            "routes": routes,
            "errors": errors,
            "error_samples": s.error_samples,
            "captures_created": s.captures_created,
            "captures_linked": s.captures_linked,
            "distinct_episodes_sent": self.distinct_texts,
            "generator_threads": self.cli.threads.max(1),
            "generator_cpu_seconds": self.own_cpu,
            "generator_cores": self.own_cpu / self.seconds,
            "gateway_cpu_seconds": self.gateway_cpu.as_ref().map(|(t, _)| t),
            "gateway_cores": self.gateway_cpu.as_ref().map(|(t, _)| t / self.seconds),
            "gateway_cpu_us_per_request": self.gateway_cpu.as_ref().map(|(t, _)| t / ok * 1e6),
            "gateway_cpu_by_thread": self.gateway_cpu.as_ref().map(|(_, g)| g),
            "server_cpu_seconds": self.server_cpu,
            "server_cores": self.server_cpu.map(|t| t / self.seconds),
            "server_cpu_us_per_request": self.server_cpu.map(|t| t / ok * 1e6),
            "gateway_metrics": {
                "requests": b.requests,
                "total_ms": b.total_ms,
                "embedding_ms": b.embedding_ms,
                "embeddings_per_request": b.embeddings_per_request,
                "engine_ms": b.engine_ms,
                "engine_calls_per_request": b.engine_calls_per_request,
                "rest_ms": b.rest_ms,
                "per_route_ms": b.per_route_ms.iter().map(|(r, n, ms)| json!({"route": r.name(), "requests": n, "mean_ms": ms})).collect::<Vec<_>>(),
                "embedding_cache_hit_ratio_window": b.cache_hit_ratio_window,
                "embedding_cache_hit_ratio_since_start": b.cache_hit_ratio_since_start,
                "embedding_batches": b.batches,
            },
        })
    }
}

fn print_row(name: &str, h: &Histogram<u64>, seconds: f64, errors: u64) {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1e3;
    println!(
        "{:<8} {:>9} {:>9.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>8}",
        name,
        h.len(),
        h.len() as f64 / seconds,
        ms(0.5),
        ms(0.9),
        ms(0.99),
        h.max() as f64 / 1e3,
        errors
    );
}
