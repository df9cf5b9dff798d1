//! Request counts and latency per route (and per engine RPC), read back from
//! the gateway's own Prometheus metrics, for the admin page's charts.
//!
//! The source is the text `/metrics` serves, so the page and a Prometheus
//! server see the same numbers. Histograms are cumulative since start;
//! quantiles are estimated from the buckets the way Prometheus's
//! `histogram_quantile` does (linear within a bucket), so they are as coarse
//! as the buckets (`telemetry::LATENCY_BUCKETS`).

use std::collections::BTreeMap;

use serde::Serialize;

/// One bucket of a histogram: how many observations were at most `le`
/// seconds (cumulative); `le` is `None` for `+Inf`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Bucket {
    pub le: Option<f64>,
    pub count: u64,
}

/// A latency histogram and what the page shows of it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Latency {
    pub count: u64,
    pub sum_seconds: f64,
    pub mean_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub buckets: Vec<Bucket>,
}

/// Requests of one route and method.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RouteLatency {
    /// The matched route template (`/api/v1/episodes/{id}`), or `unmatched`.
    pub route: String,
    pub method: String,
    pub requests: u64,
    /// Answers by status class: `2xx`, `3xx`, `4xx`, `5xx`.
    pub statuses: BTreeMap<String, u64>,
    pub latency: Latency,
}

/// Calls of one kyro-server RPC on one instance.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EngineLatency {
    pub instance: String,
    pub rpc: String,
    pub calls: u64,
    /// Calls answered with an error other than NOT_FOUND.
    pub errors: u64,
    pub latency: Latency,
}

/// `GET /api/v1/admin/latency`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LatencySummary {
    /// Busiest first.
    pub routes: Vec<RouteLatency>,
    /// Busiest first.
    pub engine: Vec<EngineLatency>,
}

/// One sample line: `name{label="value",…} value`.
#[derive(Debug, PartialEq)]
struct Sample<'a> {
    name: &'a str,
    labels: Vec<(&'a str, String)>,
    value: f64,
}

impl Sample<'_> {
    fn label(&self, name: &str) -> &str {
        self.labels
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// Parses one line of the Prometheus text format; `None` for comments,
/// blank lines and anything malformed.
fn parse_sample(line: &str) -> Option<Sample<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            rest = rest.trim_start_matches([' ', ',']);
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = rest.find('=')?;
            let label = rest[..eq].trim();
            rest = rest[eq + 1..].strip_prefix('"')?;
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let end = loop {
                let (i, c) = chars.next()?;
                match c {
                    '"' => break i,
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    c => value.push(c),
                }
            };
            labels.push((label, value));
            rest = &rest[end + 1..];
        }
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// The series of one histogram, before quantiles.
#[derive(Default)]
struct Series {
    buckets: Vec<(f64, u64)>,
    sum: f64,
    count: u64,
}

impl Series {
    fn take(&mut self, suffix: &str, sample: &Sample<'_>) {
        let count = sample.value.max(0.0) as u64;
        match suffix {
            "_bucket" => {
                let le = match sample.label("le") {
                    "+Inf" => f64::INFINITY,
                    v => v.parse().unwrap_or(f64::INFINITY),
                };
                self.buckets.push((le, count));
            }
            "_sum" => self.sum = sample.value,
            "_count" => self.count = count,
            _ => {}
        }
    }

    fn finish(mut self) -> Latency {
        self.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let quantile = |q: f64| quantile(&self.buckets, self.count, q).map(|s| s * 1e3);
        Latency {
            count: self.count,
            sum_seconds: self.sum,
            mean_ms: (self.count > 0).then(|| self.sum / self.count as f64 * 1e3),
            p50_ms: quantile(0.50),
            p95_ms: quantile(0.95),
            p99_ms: quantile(0.99),
            buckets: self
                .buckets
                .iter()
                .map(|&(le, count)| Bucket {
                    le: le.is_finite().then_some(le),
                    count,
                })
                .collect(),
        }
    }
}

/// The `q` quantile (seconds) of a histogram with cumulative `buckets`
/// sorted by bound: linear within the bucket holding it; the largest finite
/// bound when it falls in `+Inf`.
fn quantile(buckets: &[(f64, u64)], count: u64, q: f64) -> Option<f64> {
    if count == 0 {
        return None;
    }
    let rank = q * count as f64;
    let mut lower = 0.0;
    let mut below = 0u64;
    for &(le, cumulative) in buckets {
        if cumulative as f64 >= rank {
            if !le.is_finite() {
                return Some(lower);
            }
            let inside = cumulative.saturating_sub(below);
            if inside == 0 {
                return Some(le);
            }
            let fraction = (rank - below as f64) / inside as f64;
            return Some(lower + (le - lower) * fraction.clamp(0.0, 1.0));
        }
        lower = le;
        below = cumulative;
    }
    Some(lower)
}

/// Splits a histogram sample name into the histogram and its suffix.
fn histogram_part<'a>(name: &'a str, histogram: &str) -> Option<&'a str> {
    let suffix = name.strip_prefix(histogram)?;
    ["_bucket", "_sum", "_count"]
        .into_iter()
        .find(|s| *s == suffix)
        .map(|_| suffix)
}

/// Summarises the text `/metrics` renders.
pub fn summarise(metrics_text: &str) -> LatencySummary {
    let mut route_series: BTreeMap<(String, String), Series> = BTreeMap::new();
    let mut route_statuses: BTreeMap<(String, String), BTreeMap<String, u64>> = BTreeMap::new();
    let mut engine_series: BTreeMap<(String, String), Series> = BTreeMap::new();
    let mut engine_calls: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for sample in metrics_text.lines().filter_map(parse_sample) {
        if let Some(suffix) = histogram_part(sample.name, "gateway_request_duration_seconds") {
            let key = (
                sample.label("route").to_owned(),
                sample.label("method").to_owned(),
            );
            route_series.entry(key).or_default().take(suffix, &sample);
        } else if sample.name == "gateway_requests_total" {
            let key = (
                sample.label("route").to_owned(),
                sample.label("method").to_owned(),
            );
            let class = match sample.label("status").chars().next() {
                Some(c @ '1'..='5') => format!("{c}xx"),
                _ => "other".to_owned(),
            };
            *route_statuses
                .entry(key)
                .or_default()
                .entry(class)
                .or_default() += sample.value.max(0.0) as u64;
        } else if let Some(suffix) = histogram_part(sample.name, "gateway_engine_call_seconds") {
            let key = (
                sample.label("instance").to_owned(),
                sample.label("rpc").to_owned(),
            );
            engine_series.entry(key).or_default().take(suffix, &sample);
        } else if sample.name == "gateway_engine_calls_total" {
            let key = (
                sample.label("instance").to_owned(),
                sample.label("rpc").to_owned(),
            );
            let calls = engine_calls.entry(key).or_default();
            let n = sample.value.max(0.0) as u64;
            calls.0 += n;
            if sample.label("code") == "error" {
                calls.1 += n;
            }
        }
    }
    let mut routes: Vec<RouteLatency> = route_series
        .into_iter()
        .map(|(key, series)| {
            let statuses = route_statuses.remove(&key).unwrap_or_default();
            let latency = series.finish();
            RouteLatency {
                requests: statuses.values().sum::<u64>().max(latency.count),
                route: key.0,
                method: key.1,
                statuses,
                latency,
            }
        })
        .collect();
    routes.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.route.cmp(&b.route)));
    let mut engine: Vec<EngineLatency> = engine_series
        .into_iter()
        .map(|(key, series)| {
            let (calls, errors) = engine_calls.remove(&key).unwrap_or_default();
            let latency = series.finish();
            EngineLatency {
                calls: calls.max(latency.count),
                errors,
                instance: key.0,
                rpc: key.1,
                latency,
            }
        })
        .collect();
    engine.sort_by(|a, b| b.calls.cmp(&a.calls).then(a.rpc.cmp(&b.rpc)));
    LatencySummary { routes, engine }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# TYPE gateway_requests_total counter
gateway_requests_total{route="/api/v1/capture",method="POST",status="201"} 3
gateway_requests_total{route="/api/v1/capture",method="POST",status="429"} 1
gateway_requests_total{route="/health",method="GET",status="200"} 10
# TYPE gateway_request_duration_seconds histogram
gateway_request_duration_seconds_bucket{route="/api/v1/capture",method="POST",le="0.01"} 1
gateway_request_duration_seconds_bucket{route="/api/v1/capture",method="POST",le="0.1"} 3
gateway_request_duration_seconds_bucket{route="/api/v1/capture",method="POST",le="1"} 4
gateway_request_duration_seconds_bucket{route="/api/v1/capture",method="POST",le="+Inf"} 4
gateway_request_duration_seconds_sum{route="/api/v1/capture",method="POST"} 0.8
gateway_request_duration_seconds_count{route="/api/v1/capture",method="POST"} 4
gateway_request_duration_seconds_bucket{route="/health",method="GET",le="0.01"} 10
gateway_request_duration_seconds_bucket{route="/health",method="GET",le="+Inf"} 10
gateway_request_duration_seconds_sum{route="/health",method="GET"} 0.02
gateway_request_duration_seconds_count{route="/health",method="GET"} 10
gateway_engine_calls_total{instance="text",rpc="search",code="ok"} 5
gateway_engine_calls_total{instance="text",rpc="search",code="error"} 1
gateway_engine_call_seconds_bucket{instance="text",rpc="search",le="0.001"} 6
gateway_engine_call_seconds_bucket{instance="text",rpc="search",le="+Inf"} 6
gateway_engine_call_seconds_sum{instance="text",rpc="search"} 0.003
gateway_engine_call_seconds_count{instance="text",rpc="search"} 6
"#;

    #[test]
    fn routes_are_summarised_busiest_first_with_status_classes() {
        let summary = summarise(TEXT);
        let routes: Vec<(&str, u64)> = summary
            .routes
            .iter()
            .map(|r| (r.route.as_str(), r.requests))
            .collect();
        assert_eq!(routes, [("/health", 10), ("/api/v1/capture", 4)]);
        let capture = &summary.routes[1];
        assert_eq!(capture.statuses["2xx"], 3);
        assert_eq!(capture.statuses["4xx"], 1);
        assert_eq!(capture.latency.count, 4);
        assert!((capture.latency.mean_ms.unwrap() - 200.0).abs() < 1e-9);
        assert_eq!(capture.latency.buckets.last().unwrap().le, None);
        let engine = &summary.engine[0];
        assert_eq!(
            (engine.instance.as_str(), engine.rpc.as_str()),
            ("text", "search")
        );
        assert_eq!((engine.calls, engine.errors), (6, 1));
    }

    #[test]
    fn quantiles_interpolate_within_the_bucket_like_prometheus() {
        let buckets = [(0.01, 1), (0.1, 3), (1.0, 4), (f64::INFINITY, 4)];
        // rank 2 of 4: halfway through the (0.01, 0.1] bucket's two.
        let p50 = quantile(&buckets, 4, 0.5).unwrap();
        assert!((p50 - 0.055).abs() < 1e-12, "{p50}");
        // rank 3.96: 96% into the (0.1, 1] bucket's one.
        let p99 = quantile(&buckets, 4, 0.99).unwrap();
        assert!((p99 - 0.964).abs() < 1e-12, "{p99}");
        assert_eq!(quantile(&buckets, 0, 0.5), None);
        // Beyond the last finite bound: that bound.
        assert_eq!(quantile(&[(0.5, 0), (f64::INFINITY, 2)], 2, 0.5), Some(0.5));
    }

    #[test]
    fn label_values_are_unescaped_and_junk_is_skipped() {
        let sample = parse_sample(r#"x_total{route="/a\"b\\c",method="GET"} 2"#).unwrap();
        assert_eq!(sample.label("route"), r#"/a"b\c"#);
        assert_eq!(sample.value, 2.0);
        assert!(parse_sample("# HELP x y").is_none());
        assert!(parse_sample("x{route=\"unterminated} 1").is_none());
        assert_eq!(parse_sample("plain 1.5").unwrap().value, 1.5);
    }
}
