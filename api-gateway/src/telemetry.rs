//! Prometheus metrics (the `metrics` facade and its Prometheus exporter)
//! and the tracing subscriber.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogSettings;

/// Latency buckets, seconds: 100 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0,
];

/// Installs the process-wide recorder and describes the metrics.
pub fn install_recorder() -> Result<PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)?
        .install_recorder()?;
    metrics::describe_counter!(
        "gateway_requests_total",
        "HTTP requests by route, method and status"
    );
    metrics::describe_histogram!(
        "gateway_request_duration_seconds",
        metrics::Unit::Seconds,
        "HTTP request latency by route and method"
    );
    metrics::describe_counter!(
        "gateway_rate_limited_total",
        "requests refused by a rate limit, by endpoint class"
    );
    metrics::describe_counter!(
        "gateway_quota_denied_total",
        "captures refused: monthly quota and grace used up"
    );
    metrics::describe_histogram!(
        "gateway_embedding_seconds",
        metrics::Unit::Seconds,
        "time to embed one text (cache hits included)"
    );
    metrics::describe_gauge!(
        "gateway_embedding_cache_hit_ratio",
        "embedding cache hits / lookups since start"
    );
    metrics::describe_histogram!(
        "gateway_engine_call_seconds",
        metrics::Unit::Seconds,
        "kyro-server call latency by instance and rpc"
    );
    metrics::describe_counter!("gateway_key_cache_total", "API key cache lookups by result");
    // Denial counters exist from the start (at 0), so that a dashboard's
    // rate() shows 0 rather than no data until the first denial.
    metrics::counter!("gateway_quota_denied_total").absolute(0);
    for endpoint in ["capture", "search", "reflect", "other", "admin", "auth"] {
        metrics::counter!("gateway_rate_limited_total", "endpoint" => endpoint).absolute(0);
    }
    Ok(handle)
}

/// Logs to stderr as text or JSON; `RUST_LOG` wins over `log.level`.
pub fn init_tracing(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only on a terminal: a log file or collector gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if settings.format == "json" {
        let _ = builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init();
    } else {
        let _ = builder.try_init();
    }
}
