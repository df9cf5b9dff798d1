//! Prometheus metrics (through the `metrics` facade and
//! `metrics-exporter-prometheus`) and the tracing subscriber.
//!
//! Request counters and latency histograms are recorded as requests finish;
//! engine figures (segments, hot tier, caches, fsyncs, RSS) are sampled when
//! `/metrics` is scraped, so they cost nothing between scrapes.

use std::time::Duration;

use kyro_engine::storage::Instance;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::config::LogSettings;

/// Latency histogram buckets, seconds: 50 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];

/// Installs the process-wide Prometheus recorder.
pub fn install_recorder() -> Result<PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("kyro_request_duration_seconds".to_owned()),
            LATENCY_BUCKETS,
        )?
        .install_recorder()?;
    metrics::describe_counter!(
        "kyro_requests_total",
        "gRPC requests finished, by instance, rpc and status code"
    );
    metrics::describe_histogram!(
        "kyro_request_duration_seconds",
        metrics::Unit::Seconds,
        "gRPC request latency, by instance and rpc"
    );
    metrics::describe_counter!(
        "kyro_requests_shed_total",
        "requests refused with RESOURCE_EXHAUSTED by the concurrency limit"
    );
    Ok(handle)
}

/// Records one finished request.
pub fn record_request(instance: &str, rpc: &'static str, code: tonic::Code, elapsed: Duration) {
    metrics::counter!(
        "kyro_requests_total",
        "instance" => instance.to_owned(),
        "rpc" => rpc,
        "code" => code_name(code),
    )
    .increment(1);
    metrics::histogram!(
        "kyro_request_duration_seconds",
        "instance" => instance.to_owned(),
        "rpc" => rpc,
    )
    .record(elapsed.as_secs_f64());
}

/// Records a request refused by the concurrency limit.
pub fn record_shed(instance: &str) {
    metrics::counter!("kyro_requests_shed_total", "instance" => instance.to_owned()).increment(1);
}

/// Samples the engine figures of `instance` into gauges.
pub fn sample_instance(name: &str, instance: &Instance) {
    let stats = instance.stats();
    let label = name.to_owned();
    let gauge = |metric: &'static str, value: f64| {
        metrics::gauge!(metric, "instance" => label.clone()).set(value);
    };
    gauge("kyro_namespaces", stats.namespaces as f64);
    gauge("kyro_points", stats.points as f64);
    gauge("kyro_hot_points", stats.hot_points as f64);
    gauge("kyro_hot_bytes", stats.hot_bytes as f64);
    gauge("kyro_cold_segments", stats.cold_segments as f64);
    gauge("kyro_cold_bytes", stats.cold_bytes as f64);
    gauge("kyro_wal_fsyncs", stats.sync.fsyncs as f64);
    gauge("kyro_wal_synced_writes", stats.sync.synced_writes as f64);
    gauge("kyro_wal_fsync_seconds", stats.sync.fsync_seconds);
    let mean_fsync = if stats.sync.fsyncs == 0 {
        0.0
    } else {
        stats.sync.fsync_seconds / stats.sync.fsyncs as f64
    };
    gauge("kyro_wal_fsync_mean_seconds", mean_fsync);
    for (cache, counters) in [("query", stats.query_cache), ("point", stats.point_cache)] {
        let lookups = counters.hits + counters.misses;
        let ratio = if lookups == 0 {
            0.0
        } else {
            counters.hits as f64 / lookups as f64
        };
        metrics::gauge!("kyro_cache_hit_ratio", "instance" => label.clone(), "cache" => cache)
            .set(ratio);
        metrics::gauge!("kyro_cache_hits", "instance" => label.clone(), "cache" => cache)
            .set(counters.hits as f64);
        metrics::gauge!("kyro_cache_misses", "instance" => label.clone(), "cache" => cache)
            .set(counters.misses as f64);
    }
}

/// Samples process-wide figures.
pub fn sample_process() {
    if let Some(rss) = resident_set_bytes() {
        metrics::gauge!("kyro_process_resident_bytes").set(rss as f64);
    }
}

/// The process's resident set size, from `/proc/self/statm`.
fn resident_set_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Starts logging to stderr: `RUST_LOG` when set, else `settings.level`;
/// JSON lines when `settings.format` is `json`.
pub fn init_tracing(settings: &LogSettings) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let result = if settings.format == "json" {
        builder.json().with_current_span(true).try_init()
    } else {
        builder.try_init()
    };
    if let Err(e) = result {
        eprintln!("kyro-server: logging was already set up: {e}");
    }
}
