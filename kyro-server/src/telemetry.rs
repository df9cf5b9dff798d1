//! Prometheus metrics (through the `metrics` facade and
//! `metrics-exporter-prometheus`) and the tracing subscriber.
//!
//! Request counters and latency histograms are recorded as requests finish;
//! engine figures (segments, hot tier, caches, fsyncs, RSS) are sampled when
//! `/metrics` is scraped, so they cost nothing between scrapes.

use std::time::Duration;

use kyro_engine::storage::Instance;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use tracing::Span;

use crate::auth::Caller;
use crate::config::{LogFormat, LogSettings};

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

/// The RPCs of `kyro.v1.Kyro`, as they are named in metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rpc {
    Insert,
    BulkInsert,
    Get,
    BulkGet,
    UpdatePayload,
    Delete,
    DeleteByFilter,
    Search,
    BatchSearch,
    Count,
    Scroll,
    ListNamespaces,
    DropNamespace,
    Flush,
    CreateSnapshot,
    Stats,
    GetConfig,
}

impl Rpc {
    /// Every RPC, in the order of the enum (`ALL[rpc as usize] == rpc`).
    pub const ALL: [Rpc; 17] = [
        Rpc::Insert,
        Rpc::BulkInsert,
        Rpc::Get,
        Rpc::BulkGet,
        Rpc::UpdatePayload,
        Rpc::Delete,
        Rpc::DeleteByFilter,
        Rpc::Search,
        Rpc::BatchSearch,
        Rpc::Count,
        Rpc::Scroll,
        Rpc::ListNamespaces,
        Rpc::DropNamespace,
        Rpc::Flush,
        Rpc::CreateSnapshot,
        Rpc::Stats,
        Rpc::GetConfig,
    ];

    /// The method's name in the proto.
    pub fn name(self) -> &'static str {
        match self {
            Rpc::Insert => "Insert",
            Rpc::BulkInsert => "BulkInsert",
            Rpc::Get => "Get",
            Rpc::BulkGet => "BulkGet",
            Rpc::UpdatePayload => "UpdatePayload",
            Rpc::Delete => "Delete",
            Rpc::DeleteByFilter => "DeleteByFilter",
            Rpc::Search => "Search",
            Rpc::BatchSearch => "BatchSearch",
            Rpc::Count => "Count",
            Rpc::Scroll => "Scroll",
            Rpc::ListNamespaces => "ListNamespaces",
            Rpc::DropNamespace => "DropNamespace",
            Rpc::Flush => "Flush",
            Rpc::CreateSnapshot => "CreateSnapshot",
            Rpc::Stats => "Stats",
            Rpc::GetConfig => "GetConfig",
        }
    }
}

/// One instance's request metrics. The handles are registered once, when
/// the instance starts serving, so recording a request is two atomic
/// updates instead of building labelled keys and looking them up (every
/// series then also shows in `/metrics` from the start, at zero).
pub struct RequestMetrics {
    instance: String,
    per_rpc: Vec<RpcMetrics>,
    shed: Counter,
}

struct RpcMetrics {
    ok: Counter,
    duration: Histogram,
}

impl RequestMetrics {
    /// Registers the metrics of instance `instance` with the installed
    /// recorder (see [`install_recorder`]).
    pub fn new(instance: &str) -> RequestMetrics {
        let per_rpc = Rpc::ALL
            .iter()
            .map(|rpc| RpcMetrics {
                ok: metrics::counter!(
                    "kyro_requests_total",
                    "instance" => instance.to_owned(),
                    "rpc" => rpc.name(),
                    "code" => code_name(tonic::Code::Ok),
                ),
                duration: metrics::histogram!(
                    "kyro_request_duration_seconds",
                    "instance" => instance.to_owned(),
                    "rpc" => rpc.name(),
                ),
            })
            .collect();
        RequestMetrics {
            instance: instance.to_owned(),
            per_rpc,
            shed: metrics::counter!("kyro_requests_shed_total", "instance" => instance.to_owned()),
        }
    }

    /// Records one finished request.
    pub fn record(&self, rpc: Rpc, code: tonic::Code, elapsed: Duration) {
        let handles = &self.per_rpc[rpc as usize];
        if code == tonic::Code::Ok {
            handles.ok.increment(1);
        } else {
            // Failures are the rare case: their series are made on demand.
            metrics::counter!(
                "kyro_requests_total",
                "instance" => self.instance.clone(),
                "rpc" => rpc.name(),
                "code" => code_name(code),
            )
            .increment(1);
        }
        handles.duration.record(elapsed.as_secs_f64());
    }

    /// Records a request refused by the concurrency limit.
    pub fn record_shed(&self) {
        self.shed.increment(1);
    }
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
    gauge("kyro_unreachable_points", stats.unreachable_points as f64);
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

/// The span of one RPC; `tenant` and `key` (the key's name, never the key)
/// are left empty when the caller did not authenticate.
pub(crate) fn rpc_span(instance: &str, rpc: Rpc, namespace: &str, caller: Option<&Caller>) -> Span {
    let rpc = rpc.name();
    match caller {
        Some(caller) => tracing::info_span!(
            "rpc",
            instance,
            rpc,
            namespace,
            tenant = caller.tenant.as_str(),
            key = caller.key_name.as_str(),
        ),
        None => tracing::info_span!(
            "rpc",
            instance,
            rpc,
            namespace,
            tenant = tracing::field::Empty,
            key = tracing::field::Empty,
        ),
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
    let result = if settings.format == LogFormat::Json {
        builder.json().with_current_span(true).try_init()
    } else {
        builder.try_init()
    };
    if let Err(e) = result {
        eprintln!("kyro-server: logging was already set up: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rpc_sits_at_its_own_index_with_a_distinct_name() {
        let mut names = std::collections::HashSet::new();
        for (i, rpc) in Rpc::ALL.iter().enumerate() {
            assert_eq!(*rpc as usize, i, "{rpc:?} is out of place in Rpc::ALL");
            assert!(names.insert(rpc.name()), "{} named twice", rpc.name());
        }
    }
}
