//! The benchmarks that go through the storage engine instead of the bare
//! index: `ann --storage DIR` (insert through the engine API, seal to the
//! cold tier, close, reopen, search; plus a reopen after a SIGKILLed writer)
//! and `filter` (recall and QPS of filtered search per selectivity, with the
//! planner's choice).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use indicatif::ProgressBar;
use kyro_engine::payload::{Filter, Payload, PayloadValue, Range};
use kyro_engine::storage::{
    FsyncPolicy, Instance, InstanceConfig, NamespaceRef, PlannerConfig, PointWrite, QueryPlan,
    SearchRequest,
};
use kyro_engine::{HnswParams, Metric, Quantization};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use kyro_bench::dataset::Matrix;
use kyro_bench::groundtruth::exact_knn;
use kyro_bench::report::{FilterReport, FilterRun, RunReport};
use kyro_bench::stats::{current_rss_bytes, mean_recall, percentile};

use crate::progress_bar;

/// The namespace every storage benchmark writes to.
const TARGET: NamespaceRef<'static> = NamespaceRef {
    tenant: "bench",
    namespace: "ann",
};
/// Points per engine write call.
const BATCH: usize = 1_000;
/// Points the SIGKILLed writer acknowledges before it is killed.
const CRASH_WRITES: usize = 2_000;

/// Engine settings of a storage run.
pub(crate) struct StorageSettings {
    pub(crate) dir: PathBuf,
    pub(crate) metric: Metric,
    pub(crate) hnsw: HnswParams,
    pub(crate) quantization: Quantization,
    pub(crate) fsync: FsyncPolicy,
    pub(crate) threads: usize,
    /// Serve an instance a previous run left in `dir` instead of building one.
    pub(crate) reuse: bool,
    /// When searches scan exactly instead of walking the graph.
    pub(crate) planner: PlannerConfig,
}

impl StorageSettings {
    fn config(&self, dim: usize, hot_max_points: usize) -> InstanceConfig {
        let mut config = InstanceConfig::new(dim, self.metric);
        config.hnsw = self.hnsw;
        config.cold_quantization = self.quantization;
        config.fsync = self.fsync;
        config.hot_max_points = hot_max_points.max(1);
        // Searches repeat the same queries at every ef: a result cache would
        // answer them without searching.
        config.cache.query_cache_bytes = 0;
        config.optimizer.background = false;
        config.optimizer.build_threads = self.threads;
        config.planner = self.planner;
        config
    }
}

/// What `ann --storage` measured beyond the sweep.
pub(crate) struct StorageFacts {
    pub(crate) build_seconds: f64,
    pub(crate) flush_seconds: f64,
    pub(crate) open_seconds: f64,
    pub(crate) open_after_kill_seconds: Option<f64>,
    pub(crate) serving_rss_bytes: Option<u64>,
    pub(crate) cold_bytes: u64,
    pub(crate) runs: Vec<RunReport>,
}

/// Inserts `base` through the engine from `threads` writers, returning seconds.
fn insert_all(
    instance: &Instance,
    base: &Matrix<f32>,
    threads: usize,
    payload_of: &(dyn Fn(usize) -> Payload + Sync),
) -> Result<f64> {
    let n = base.rows();
    let bar = progress_bar(n as u64, "insert");
    let next = std::sync::atomic::AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    loop {
                        let first = next.fetch_add(BATCH, std::sync::atomic::Ordering::Relaxed);
                        if first >= n {
                            return Ok(());
                        }
                        let rows: Vec<PointWrite> = (first..(first + BATCH).min(n))
                            .map(|i| PointWrite {
                                doc_id: i as u64,
                                vector: base.row(i).to_vec(),
                                payload: payload_of(i),
                            })
                            .collect();
                        let count = rows.len();
                        let answers = instance.upsert(TARGET, rows).context("engine insert")?;
                        if let Some(Err(e)) = answers.into_iter().find(Result::is_err) {
                            bail!("a point was refused: {e}");
                        }
                        bar.inc(count as u64);
                    }
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("insert thread panicked"))??;
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    Ok(started.elapsed().as_secs_f64())
}

/// `ann --storage`: see the module documentation. Consumes `base` so that
/// it is freed before the serving phase is measured.
pub(crate) fn run_ann_storage(
    settings: &StorageSettings,
    base: Matrix<f32>,
    queries: &Matrix<f32>,
    gt: &Matrix<i32>,
    k: usize,
    efs: &[usize],
) -> Result<StorageFacts> {
    let empty = !settings.dir.exists() || std::fs::read_dir(&settings.dir)?.next().is_none();
    ensure!(
        empty || settings.reuse,
        "--storage {} must be absent or empty (or pass --reuse-storage)",
        settings.dir.display()
    );
    let (n, dim) = (base.rows(), base.dim());
    // One hot segment for the whole set, sealed by the flush below (not
    // inline by the last insert), so the flush time is the seal's.
    let config = settings.config(dim, n + 1);
    let (mut insert_seconds, mut flush_seconds, mut cold_bytes) = (0.0, 0.0, 0);
    if empty {
        let instance =
            Instance::open(&settings.dir, config.clone()).context("opening the instance")?;
        insert_seconds = insert_all(&instance, &base, settings.threads, &|_| Payload::default())?;
        eprintln!(
            "insert: {n} points in {insert_seconds:.2} s ({:.0}/s) through the engine",
            n as f64 / insert_seconds
        );
        drop(base);
        let started = Instant::now();
        instance.flush(None).context("sealing to the cold tier")?;
        flush_seconds = started.elapsed().as_secs_f64();
        cold_bytes = instance.stats().cold_bytes;
        eprintln!("flush: sealed in {flush_seconds:.2} s, cold files {cold_bytes} bytes");
        instance.close().context("closing")?;
    } else {
        drop(base);
        eprintln!("reusing the instance in {}", settings.dir.display());
    }
    eprintln!("rss before reopen: {}", rss_text());

    let started = Instant::now();
    let instance = Instance::open(&settings.dir, config.clone()).context("reopening")?;
    let open_seconds = started.elapsed().as_secs_f64();
    let count = instance.count(TARGET, None)?;
    ensure!(
        count >= n as u64,
        "{count} points after reopen, {n} inserted"
    );
    eprintln!("reopen: {open_seconds:.3} s, rss {}", rss_text());
    if cold_bytes == 0 {
        cold_bytes = instance.stats().cold_bytes;
    }
    // Resident set while serving: sampled after the warm-up and after each
    // pass (the data set was freed before the reopen). VmRSS counts the
    // mapped segment pages the searches touched.
    let mut serving_rss = current_rss_bytes();

    let search = |ef: usize, bar: &ProgressBar| -> Result<(Vec<Vec<u64>>, Vec<f64>, f64)> {
        let mut ids = Vec::with_capacity(queries.rows());
        let mut latencies = Vec::with_capacity(queries.rows());
        let started = Instant::now();
        for query in queries.iter_rows() {
            let t = Instant::now();
            let request = SearchRequest {
                ef: Some(ef),
                ..SearchRequest::new(query, k)
            };
            let response = instance.search(TARGET, &request)?;
            latencies.push(t.elapsed().as_secs_f64() * 1e6);
            ids.push(response.hits.iter().map(|h| h.doc_id).collect());
            bar.inc(1);
        }
        Ok((ids, latencies, started.elapsed().as_secs_f64()))
    };
    let warm = progress_bar(queries.rows() as u64, "warm-up");
    search(efs[0], &warm)?;
    warm.finish_and_clear();
    serving_rss = serving_rss.max(current_rss_bytes());
    let mut runs = Vec::new();
    for &ef in efs {
        let bar = progress_bar(queries.rows() as u64, format!("ef={ef}"));
        let (ids, latencies, wall) = search(ef, &bar)?;
        bar.finish_and_clear();
        let run = RunReport::from_pass(ef, &ids, gt, k, latencies, wall);
        eprintln!(
            "ef {:>5}: recall@{k} {:.4}, {:.0} QPS",
            run.ef, run.recall, run.qps
        );
        runs.push(run);
        serving_rss = serving_rss.max(current_rss_bytes());
    }
    let serving_rss_bytes = serving_rss;
    instance.close()?;

    let open_after_kill_seconds = match std::env::current_exe() {
        Ok(exe) => Some(reopen_after_kill(&exe, settings, &config, dim)?),
        Err(_) => None,
    };
    Ok(StorageFacts {
        build_seconds: insert_seconds + flush_seconds,
        flush_seconds,
        open_seconds,
        open_after_kill_seconds,
        serving_rss_bytes,
        cold_bytes,
        runs,
    })
}

/// The current resident set, for progress lines.
fn rss_text() -> String {
    current_rss_bytes().map_or_else(|| "n/a".to_string(), kyro_bench::stats::human_bytes)
}

/// Starts `kyro-bench crash-writer` on the instance, SIGKILLs it after it
/// acknowledged [`CRASH_WRITES`] writes, and times the reopen.
fn reopen_after_kill(
    exe: &Path,
    settings: &StorageSettings,
    config: &InstanceConfig,
    dim: usize,
) -> Result<f64> {
    let mut child = Command::new(exe)
        .args(["crash-writer", "--storage"])
        .arg(&settings.dir)
        .args(["--dim", &dim.to_string(), "--metric", config.metric.name()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the crash writer")?;
    let stdout = child.stdout.take().context("crash writer stdout")?;
    let mut acknowledged = 0;
    for line in BufReader::new(stdout).lines() {
        if line?.starts_with("ack") {
            acknowledged += 1;
            if acknowledged >= CRASH_WRITES {
                break;
            }
        }
    }
    child.kill().context("killing the crash writer")?;
    child.wait()?;
    ensure!(
        acknowledged >= CRASH_WRITES,
        "the crash writer stopped after {acknowledged} writes"
    );
    let started = Instant::now();
    let instance =
        Instance::open(&settings.dir, config.clone()).context("reopening after SIGKILL")?;
    let seconds = started.elapsed().as_secs_f64();
    let count = instance.count(TARGET, None)?;
    eprintln!("reopen after SIGKILL of a writer: {seconds:.3} s ({count} points)");
    instance.close()?;
    Ok(seconds)
}

/// `crash-writer`: writes random points with `fsync = always` until killed,
/// printing `ack N` per acknowledged write. Started by `ann --storage`.
pub(crate) fn run_crash_writer(dir: &Path, dim: usize, metric: Metric) -> Result<()> {
    let mut config = InstanceConfig::new(dim, metric);
    config.fsync = FsyncPolicy::Always;
    config.optimizer.background = false;
    config.hot_max_points = usize::MAX;
    let instance = Instance::open(dir, config)?;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut out = std::io::stdout().lock();
    for i in 0u64.. {
        let vector: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let doc_id = u64::MAX - i;
        instance.insert(
            TARGET,
            PointWrite {
                doc_id,
                vector,
                payload: Payload::default(),
            },
        )?;
        writeln!(out, "ack {doc_id}")?;
        out.flush()?;
    }
    Ok(())
}

/// Labels of the filter benchmark: each base point gets a seeded uniform
/// integer in `0..LABEL_RANGE`; selectivity `s` keeps labels `< s·LABEL_RANGE`.
const LABEL_RANGE: i64 = 1_000_000;

/// `filter`: recall and QPS of filtered search per selectivity.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_filter(
    settings: &StorageSettings,
    dataset: String,
    base: Matrix<f32>,
    queries: &Matrix<f32>,
    selectivities: &[f64],
    k: usize,
    ef: usize,
    seed: u64,
) -> Result<FilterReport> {
    for &s in selectivities {
        ensure!(
            s > 0.0 && s <= 1.0,
            "--selectivity values must be in (0, 1], got {s}"
        );
    }
    let (n, dim) = (base.rows(), base.dim());
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_f11e);
    let labels: Vec<i64> = (0..n).map(|_| rng.random_range(0..LABEL_RANGE)).collect();
    let instance =
        Instance::open(&settings.dir, settings.config(dim, n)).context("opening the instance")?;
    let payload_of = |i: usize| {
        let mut payload = Payload::default();
        payload.insert("label".to_string(), PayloadValue::Integer(labels[i]));
        payload
    };
    let seconds = insert_all(&instance, &base, settings.threads, &payload_of)?;
    eprintln!("insert: {n} labelled points in {seconds:.2} s");
    instance.flush(None)?;

    let mut runs = Vec::new();
    for &selectivity in selectivities {
        let limit = (selectivity * LABEL_RANGE as f64).round() as i64;
        let keep: Vec<usize> = (0..n).filter(|&i| labels[i] < limit).collect();
        let subset = Matrix::new(
            dim,
            keep.par_iter()
                .flat_map_iter(|&i| base.row(i).iter().copied())
                .collect(),
        );
        let truth = if keep.len() >= k {
            let local = exact_knn(settings.metric, &subset, queries, k, &|| {})
                .context("filtered ground truth")?;
            let mapped: Vec<i32> = local
                .as_slice()
                .iter()
                .map(|&row| keep[row as usize] as i32)
                .collect();
            Matrix::new(k, mapped)
        } else {
            bail!(
                "selectivity {selectivity} leaves {} points, fewer than k={k}",
                keep.len()
            );
        };
        let filter = Filter::range("label", Range::new().lt(limit));
        let bar = progress_bar(queries.rows() as u64, format!("s={selectivity}"));
        let mut ids = Vec::with_capacity(queries.rows());
        let (mut exact, mut graph) = (0usize, 0usize);
        let mut matching = 0;
        let started = Instant::now();
        for query in queries.iter_rows() {
            let request = SearchRequest {
                ef: Some(ef),
                filter: Some(&filter),
                ..SearchRequest::new(query, k)
            };
            let response = instance.search(TARGET, &request)?;
            match response.plan {
                QueryPlan::Exact => exact += 1,
                QueryPlan::Graph => graph += 1,
            }
            matching = response.candidates;
            ids.push(response.hits.iter().map(|h| h.doc_id).collect::<Vec<u64>>());
            bar.inc(1);
        }
        let wall = started.elapsed().as_secs_f64();
        bar.finish_and_clear();
        let run = FilterRun {
            selectivity,
            recall: mean_recall(&ids, &truth, k),
            qps: queries.rows() as f64 / wall,
            plan: if exact >= graph {
                QueryPlan::Exact
            } else {
                QueryPlan::Graph
            }
            .name()
            .to_string(),
            matching,
        };
        eprintln!(
            "selectivity {:>6}: {} matching, recall@{k} {:.4}, {:.0} QPS, plan {}",
            run.selectivity, run.matching, run.recall, run.qps, run.plan
        );
        runs.push(run);
    }
    instance.close()?;
    Ok(FilterReport {
        dataset,
        n,
        dim,
        k,
        ef,
        runs,
    })
}

/// What `kyro-bench write` measured.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub(crate) struct WriteReport {
    pub(crate) fsync: String,
    pub(crate) writers: usize,
    pub(crate) batch: usize,
    pub(crate) dim: usize,
    pub(crate) points: usize,
    pub(crate) seconds: f64,
    pub(crate) points_per_second: f64,
    pub(crate) calls_per_second: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) fsyncs: u64,
}

/// `write`: `writers` threads each upserting `batch` random points per call
/// into one namespace until `points` are written; reports throughput, call
/// latency and how many fsyncs the group commit needed.
pub(crate) fn run_write(
    dir: &Path,
    dim: usize,
    fsync: FsyncPolicy,
    writers: usize,
    points: usize,
    batch: usize,
) -> Result<WriteReport> {
    ensure!(
        writers > 0 && batch > 0 && points > 0,
        "--writers, --batch and --points must be positive"
    );
    let mut config = InstanceConfig::new(dim, Metric::Cosine);
    config.fsync = fsync;
    config.optimizer.background = true;
    let instance = Instance::open(dir, config)?;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let bar = progress_bar(points as u64, "write");
    let started = Instant::now();
    let latencies: Vec<Vec<f64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let (instance, next, bar) = (&instance, &next, &bar);
                scope.spawn(move || -> Result<Vec<f64>> {
                    let mut rng = ChaCha8Rng::seed_from_u64(w as u64);
                    let mut latencies = Vec::new();
                    loop {
                        let first = next.fetch_add(batch, std::sync::atomic::Ordering::Relaxed);
                        if first >= points {
                            return Ok(latencies);
                        }
                        let rows: Vec<PointWrite> = (first..(first + batch).min(points))
                            .map(|i| PointWrite {
                                doc_id: i as u64,
                                vector: (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect(),
                                payload: Payload::default(),
                            })
                            .collect();
                        let count = rows.len();
                        let t = Instant::now();
                        instance.upsert(TARGET, rows)?;
                        latencies.push(t.elapsed().as_secs_f64() * 1e6);
                        bar.inc(count as u64);
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow::anyhow!("writer panicked"))?)
            .collect::<Result<Vec<_>>>()
    })?;
    let seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let mut all: Vec<f64> = latencies.into_iter().flatten().collect();
    all.sort_by(f64::total_cmp);
    let stats = instance.stats();
    instance.close()?;
    Ok(WriteReport {
        fsync: fsync.to_string(),
        writers,
        batch,
        dim,
        points,
        seconds,
        points_per_second: points as f64 / seconds,
        calls_per_second: all.len() as f64 / seconds,
        p50_us: percentile(&all, 50.0),
        p99_us: percentile(&all, 99.0),
        fsyncs: stats.sync.fsyncs,
    })
}
