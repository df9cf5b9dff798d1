//! The Grafana dashboard (`docs/grafana/kyrodb.json`) queries only metrics
//! that exist: every metric name in its PromQL is checked against live
//! `/metrics` output of a real kyro-server and gateway after some traffic.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use common::{episode, Engine, Gateway};
use serde_json::Value;

/// The body of `GET /metrics` at `address`.
fn scrape(address: SocketAddr) -> String {
    let mut stream = TcpStream::connect(address).expect("connecting for /metrics");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

/// Metric families in a Prometheus text exposition (histogram series
/// reduced to their family name).
fn families(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(family)
        .collect()
}

fn family(name: &str) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            return base.to_owned();
        }
    }
    name.to_owned()
}

/// Every `kyro_…`/`gateway_…` metric name a PromQL expression reads.
fn queried(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find(|c: char| c.is_ascii_lowercase()) {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let word = &tail[..end];
        let before = rest[..start].chars().last();
        if (word.starts_with("kyro_") || word.starts_with("gateway_")) && before != Some('$') {
            names.push(family(word));
        }
        rest = &tail[end..];
    }
    names
}

fn dashboard_exprs() -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/grafana/kyrodb.json");
    let text = std::fs::read_to_string(&path).expect("reading the dashboard");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a PromQL expression");
            exprs.push((
                panel["title"].as_str().unwrap_or("?").to_owned(),
                expr.to_owned(),
            ));
        }
    }
    exprs
}

#[test]
fn the_promql_reader_finds_metric_names() {
    assert_eq!(
        queried("histogram_quantile(0.99, sum by (le, rpc) (rate(kyro_request_duration_seconds_bucket[$__rate_interval])))"),
        vec!["kyro_request_duration_seconds".to_owned()]
    );
    assert_eq!(
        queried("rate(kyro_wal_fsync_seconds[5m]) / rate(kyro_wal_fsyncs[5m])"),
        vec![
            "kyro_wal_fsync_seconds".to_owned(),
            "kyro_wal_fsyncs".to_owned()
        ]
    );
    let exposition = "# TYPE a_seconds histogram\na_seconds_bucket{le=\"0.1\"} 1\na_seconds_sum 0.2\nb_total{x=\"y\"} 3\n";
    assert_eq!(
        families(exposition),
        BTreeSet::from(["a_seconds".to_owned(), "b_total".to_owned()])
    );
}

#[test]
fn every_metric_the_dashboard_queries_exists() {
    let exprs = dashboard_exprs();
    assert!(
        exprs.len() >= 20,
        "the dashboard has {} queries",
        exprs.len()
    );

    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path());
    let gateway = Gateway::start(dir.path(), &engine, &[]);
    let (_, key) = gateway.customer("PRO", &["read", "write"]);
    // Traffic that produces every kind of series: captures (engine writes,
    // fsyncs, embeddings), searches, reflects, errors.
    let captured = gateway.call(
        "POST",
        "/api/v1/capture",
        &key,
        Some(&episode(
            "install numpy in a fresh python 3.12 virtualenv",
            "pip install numpy==1.24.0",
            "pip",
            "ModuleNotFoundError: No module named 'distutils'",
        )),
    );
    assert_eq!(captured.status, 201, "{}", captured.text);
    let search = serde_json::json!({"goal": "numpy does not build", "k": 3});
    assert_eq!(
        gateway
            .call("POST", "/api/v1/search", &key, Some(&search))
            .status,
        200
    );
    let reflect = serde_json::json!({"goal": "install numpy", "proposed_action": "pip install numpy==1.24.0", "tool": "pip"});
    assert_eq!(
        gateway
            .call("POST", "/api/v1/reflect", &key, Some(&reflect))
            .status,
        200
    );
    assert_eq!(
        gateway
            .call("GET", "/api/v1/episodes/999999", &key, None)
            .status,
        404
    );
    // The engine samples its gauges periodically; the gateway's scrape
    // refreshes its own.
    std::thread::sleep(Duration::from_secs(3));

    let mut live = families(&scrape(engine.http));
    live.extend(families(&scrape(gateway.address)));
    let mut missing = Vec::new();
    for (title, expr) in &exprs {
        for name in queried(expr) {
            if !live.contains(&name) {
                missing.push(format!("{name} (panel {title:?})"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics that /metrics does not serve: {missing:#?}\nserved: {live:#?}"
    );
}
