//! `kyro-bench load`: a load generator for `kyro-server` over gRPC, and the
//! same workload against the engine in-process, so the two can be compared
//! at equal concurrency.
//!
//! Workers issue a mix of searches, inserts and gets, flat out (closed loop)
//! or at a target total rate (open loop: each operation has an intended
//! start time). A worker that is behind schedule — its previous operation
//! ended after this one should have started — measures from the intended
//! start, so a stalled server is not hidden by the generator waiting (no
//! coordinated omission); a worker that is ahead sleeps and measures from
//! when it sends, so the timer's own lateness (about 1 ms in tokio) is not
//! charged to the server.
//! Latencies go into HdrHistograms (µs, 3 significant digits).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::dataset::Matrix;

/// Operations the generator issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Search,
    Insert,
    Get,
}

impl Op {
    pub const ALL: [Op; 3] = [Op::Search, Op::Insert, Op::Get];

    pub fn name(self) -> &'static str {
        match self {
            Op::Search => "search",
            Op::Insert => "insert",
            Op::Get => "get",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Relative weights of the operations (`search=90,insert=5,get=5`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Mix {
    pub weights: [u32; 3],
}

impl Mix {
    /// Parses `name=weight` pairs; unnamed operations weigh 0.
    pub fn parse(text: &str) -> Result<Mix, String> {
        let mut weights = [0u32; 3];
        for part in text.split(',').filter(|p| !p.trim().is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("mix: {part:?} is not name=weight"))?;
            let op = Op::ALL
                .into_iter()
                .find(|op| op.name() == name.trim())
                .ok_or_else(|| format!("mix: unknown operation {name:?} (search, insert, get)"))?;
            weights[op.index()] = weight
                .trim()
                .parse()
                .map_err(|_| format!("mix: weight {weight:?} is not a whole number"))?;
        }
        if weights.iter().all(|&w| w == 0) {
            return Err("mix: at least one operation needs a weight above 0".to_owned());
        }
        Ok(Mix { weights })
    }

    /// The operation for draw `x` (uniform over the total weight).
    pub fn pick(&self, mut x: u32) -> Op {
        for op in Op::ALL {
            let w = self.weights[op.index()];
            if x < w {
                return op;
            }
            x -= w;
        }
        Op::Search
    }

    pub fn total(&self) -> u32 {
        self.weights.iter().sum()
    }
}

/// What one worker records.
pub struct WorkerStats {
    pub latency: [Histogram<u64>; 3],
    pub errors: [u64; 3],
    pub first_error: Option<String>,
}

impl WorkerStats {
    pub fn new() -> WorkerStats {
        let histogram = || {
            Histogram::new_with_bounds(1, 600_000_000, 3)
                .expect("static histogram bounds are valid")
        };
        WorkerStats {
            latency: [histogram(), histogram(), histogram()],
            errors: [0; 3],
            first_error: None,
        }
    }

    pub fn record(&mut self, op: Op, elapsed: Duration) {
        let micros = (elapsed.as_micros() as u64).clamp(1, 600_000_000);
        // Within bounds by the clamp above.
        let _ = self.latency[op.index()].record(micros);
    }

    pub fn error(&mut self, op: Op, message: String) {
        self.errors[op.index()] += 1;
        if self.first_error.is_none() {
            self.first_error = Some(format!("{}: {message}", op.name()));
        }
    }

    /// Records one finished call of `op` that began at `begun` and carried
    /// `ops` operations (a batch: each gets the call's latency), and counts it
    /// in `progress`.
    pub fn record_call(
        &mut self,
        progress: &Progress,
        op: Op,
        ops: usize,
        begun: Instant,
        outcome: Result<(), String>,
    ) {
        match outcome {
            Ok(()) => {
                let elapsed = begun.elapsed();
                for _ in 0..ops {
                    self.record(op, elapsed);
                }
            }
            Err(message) => {
                self.error(op, message);
                progress.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        progress.done.fetch_add(1, Ordering::Relaxed);
    }

    pub fn merge(&mut self, other: &WorkerStats) {
        for op in Op::ALL {
            let _ = self.latency[op.index()].add(&other.latency[op.index()]);
            self.errors[op.index()] += other.errors[op.index()];
        }
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
    }
}

impl Default for WorkerStats {
    fn default() -> Self {
        Self::new()
    }
}

/// When worker `worker` of `workers` should start its `n`-th operation at a
/// total `rate` (ops/s), or `None` flat out.
pub fn intended_start(
    start: Instant,
    rate: Option<f64>,
    workers: usize,
    worker: usize,
    n: u64,
) -> Option<Instant> {
    let rate = rate?;
    let interval = workers as f64 / rate;
    let offset = interval * (n as f64 + worker as f64 / workers as f64);
    Some(start + Duration::from_secs_f64(offset))
}

/// Counters the progress line reads while workers run.
#[derive(Default)]
pub struct Progress {
    pub done: AtomicU64,
    pub errors: AtomicU64,
    pub stop: AtomicBool,
}

/// The clock and progress line of one timed run.
pub struct TimedRun {
    pub progress: Arc<Progress>,
    pub started: Instant,
    pub duration: Duration,
    line: std::thread::JoinHandle<()>,
}

impl TimedRun {
    /// Starts the clock and the progress line for a run of `seconds`.
    pub fn start(seconds: f64) -> TimedRun {
        let progress = Arc::new(Progress::default());
        let started = Instant::now();
        let duration = Duration::from_secs_f64(seconds);
        let line = spawn_progress_line(progress.clone(), started, duration);
        TimedRun {
            progress,
            started,
            duration,
            line,
        }
    }

    /// Stops the progress line; returns how long the run took.
    pub fn finish(self) -> Duration {
        let elapsed = self.started.elapsed();
        self.progress.stop.store(true, Ordering::Relaxed);
        let _ = self.line.join();
        elapsed
    }
}

/// Prints a progress line every second until `progress.stop` is set.
pub fn spawn_progress_line(
    progress: Arc<Progress>,
    started: Instant,
    duration: Duration,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut last = 0;
        let mut last_at = Instant::now();
        while !progress.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
            if last_at.elapsed() < Duration::from_secs(1) {
                continue;
            }
            let done = progress.done.load(Ordering::Relaxed);
            let rate = (done - last) as f64 / last_at.elapsed().as_secs_f64();
            eprint!(
                "\r  {:>5.1}/{:.0} s  {:>9.0} ops/s  {} ops  {} errors   ",
                started.elapsed().as_secs_f64(),
                duration.as_secs_f64(),
                rate,
                done,
                progress.errors.load(Ordering::Relaxed)
            );
            last = done;
            last_at = Instant::now();
        }
        eprintln!();
    })
}

/// Latency summary of one operation, in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct OpSummary {
    pub op: Op,
    pub count: u64,
    pub errors: u64,
    pub ops_per_sec: f64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

/// The result of one load run.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// `grpc` or `in-process`.
    pub mode: String,
    pub target: String,
    pub dataset: String,
    pub points: usize,
    pub dim: usize,
    pub concurrency: usize,
    /// Target total rate (ops/s); `None` ran flat out.
    pub target_rate: Option<f64>,
    pub duration_secs: f64,
    pub k: usize,
    pub ef: Option<usize>,
    pub mix: Mix,
    /// Recall@k of a pass over every query before the timed run.
    pub recall: Option<f64>,
    pub total_ops_per_sec: f64,
    pub ops: Vec<OpSummary>,
    pub first_error: Option<String>,
    pub date: String,
}

/// Today's date (UTC) as YYYY-MM-DD, for reports.
pub fn today() -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0) as i64;
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Summaries per operation from merged worker stats over `elapsed`.
pub fn summarize(stats: &WorkerStats, elapsed: Duration) -> Vec<OpSummary> {
    Op::ALL
        .into_iter()
        .filter_map(|op| {
            let h = &stats.latency[op.index()];
            let errors = stats.errors[op.index()];
            if h.is_empty() && errors == 0 {
                return None;
            }
            Some(OpSummary {
                op,
                count: h.len(),
                errors,
                ops_per_sec: h.len() as f64 / elapsed.as_secs_f64(),
                mean_us: h.mean(),
                p50_us: h.value_at_quantile(0.50),
                p90_us: h.value_at_quantile(0.90),
                p99_us: h.value_at_quantile(0.99),
                p999_us: h.value_at_quantile(0.999),
                max_us: h.max(),
            })
        })
        .collect()
}

/// Prints the final table.
pub fn print_report(report: &LoadReport) {
    println!(
        "{} load on {} ({} points × {}), concurrency {}, {}, {:.1} s",
        report.mode,
        report.target,
        report.points,
        report.dim,
        report.concurrency,
        report
            .target_rate
            .map_or("flat out".to_owned(), |r| format!("target {r:.0} ops/s")),
        report.duration_secs
    );
    if let Some(recall) = report.recall {
        println!("recall@{} = {recall:.4} (ef {:?})", report.k, report.ef);
    }
    println!(
        "{:<8} {:>10} {:>7} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "op", "count", "errors", "ops/s", "mean µs", "p50 µs", "p90 µs", "p99 µs", "max µs"
    );
    for s in &report.ops {
        println!(
            "{:<8} {:>10} {:>7} {:>11.0} {:>9.0} {:>9} {:>9} {:>9} {:>9}",
            s.op.name(),
            s.count,
            s.errors,
            s.ops_per_sec,
            s.mean_us,
            s.p50_us,
            s.p90_us,
            s.p99_us,
            s.max_us
        );
    }
    println!("total {:.0} ops/s", report.total_ops_per_sec);
    if let Some(error) = &report.first_error {
        println!("first error: {error}");
    }
}

/// `copies` of each base row, each after the first jittered by Gaussian-ish
/// noise of scale `jitter` (deterministic in `seed`): grows a real embedding
/// set to a target size while keeping its neighbourhood structure.
pub fn expand_with_jitter(base: &Matrix<f32>, rows: usize, jitter: f32, seed: u64) -> Matrix<f32> {
    let dim = base.dim();
    let mut data = Vec::with_capacity(rows * dim);
    let mut state = seed | 1;
    let mut next = || {
        // xorshift64*: uniform in [-1, 1); the sum of three approximates a
        // Gaussian closely enough for jitter.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let bits = state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
        bits as f32 / (1u64 << 23) as f32 - 1.0
    };
    for row in 0..rows {
        let source = base.row(row % base.rows());
        if row < base.rows() {
            data.extend_from_slice(source);
        } else {
            data.extend(
                source
                    .iter()
                    .map(|&x| x + jitter * (next() + next() + next()) / 3.0),
            );
        }
    }
    Matrix::new(dim, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_parses_and_picks_in_proportion() {
        let mix = Mix::parse("search=8, insert=1,get=1").unwrap();
        assert_eq!(mix.total(), 10);
        let picks: Vec<Op> = (0..10).map(|x| mix.pick(x)).collect();
        assert_eq!(picks.iter().filter(|&&o| o == Op::Search).count(), 8);
        assert_eq!(picks[8], Op::Insert);
        assert_eq!(picks[9], Op::Get);
        assert!(Mix::parse("search=0").is_err());
        assert!(Mix::parse("scan=1").is_err());
        assert!(Mix::parse("search").is_err());
    }

    #[test]
    fn open_loop_schedule_spreads_workers_evenly() {
        let start = Instant::now();
        // 4 workers at 1000 ops/s: each worker every 4 ms, offset by 1 ms.
        let t = |w, n| intended_start(start, Some(1000.0), 4, w, n).unwrap() - start;
        assert_eq!(t(0, 0), Duration::ZERO);
        assert_eq!(t(1, 0), Duration::from_millis(1));
        assert_eq!(t(0, 1), Duration::from_millis(4));
        assert!(intended_start(start, None, 4, 0, 5).is_none());
    }

    #[test]
    fn stats_merge_and_summarize() {
        let mut a = WorkerStats::new();
        let mut b = WorkerStats::new();
        for i in 1..=100 {
            a.record(Op::Search, Duration::from_micros(i));
        }
        b.record(Op::Search, Duration::from_micros(1000));
        b.error(Op::Get, "boom".into());
        a.merge(&b);
        let summary = summarize(&a, Duration::from_secs(1));
        let search = summary.iter().find(|s| s.op == Op::Search).unwrap();
        assert_eq!(search.count, 101);
        assert!((search.p50_us as i64 - 51).abs() <= 1, "{}", search.p50_us);
        assert_eq!(search.max_us, 1000);
        let get = summary.iter().find(|s| s.op == Op::Get).unwrap();
        assert_eq!((get.count, get.errors), (0, 1));
        assert_eq!(a.first_error.as_deref(), Some("get: boom"));
    }

    #[test]
    fn calls_count_their_operations_and_progress() {
        let progress = Progress::default();
        let mut stats = WorkerStats::new();
        stats.record_call(&progress, Op::Search, 8, Instant::now(), Ok(()));
        stats.record_call(
            &progress,
            Op::Get,
            1,
            Instant::now(),
            Err("NotFound".into()),
        );
        assert_eq!(
            stats.latency[Op::Search.index()].len(),
            8,
            "a batch of 8 is 8 searches"
        );
        assert_eq!(stats.errors[Op::Get.index()], 1);
        assert_eq!(
            progress.done.load(Ordering::Relaxed),
            2,
            "progress counts calls"
        );
        assert_eq!(progress.errors.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn dates_are_civil() {
        let today = today();
        assert_eq!(today.len(), 10);
        assert!(today.as_str() >= "2025-01-01", "{today}");
    }

    #[test]
    fn expansion_keeps_originals_and_jitters_copies() {
        let base = Matrix::new(2, vec![1.0, 0.0, 0.0, 1.0]);
        let grown = expand_with_jitter(&base, 5, 0.01, 7);
        assert_eq!(grown.rows(), 5);
        assert_eq!(grown.row(0), &[1.0, 0.0]);
        assert_eq!(grown.row(1), &[0.0, 1.0]);
        let copy = grown.row(2);
        assert_ne!(copy, &[1.0, 0.0]);
        assert!((copy[0] - 1.0).abs() < 0.02 && copy[1].abs() < 0.02);
    }
}
