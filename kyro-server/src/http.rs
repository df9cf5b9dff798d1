//! The HTTP listener beside gRPC: `/metrics` (Prometheus text),
//! `/health/live` (the process answers) and `/health/ready` (every instance
//! is open and serving, and the server is not shutting down).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use kyro_engine::storage::Instance;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::telemetry;

/// What the HTTP handlers read.
pub struct HttpState {
    pub metrics: PrometheusHandle,
    pub instances: Vec<(String, Arc<Instance>)>,
    /// Set once every listener is up; cleared when shutdown begins.
    pub ready: AtomicBool,
}

/// The router of the HTTP listener.
pub fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .with_state(state)
}

async fn metrics(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    let rendered = tokio::task::spawn_blocking(move || {
        for (name, instance) in &state.instances {
            telemetry::sample_instance(name, instance);
        }
        telemetry::sample_process();
        state.metrics.render()
    })
    .await;
    match rendered {
        Ok(text) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            text,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({ "error": format!("metrics: {e}") })),
        )
            .into_response(),
    }
}

async fn live() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "live" }))
}

async fn ready(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    let instances: Vec<&str> = state.instances.iter().map(|(n, _)| n.as_str()).collect();
    if state.ready.load(Ordering::Acquire) {
        (
            StatusCode::OK,
            Json(serde_json::json!({ "status": "ready", "instances": instances })),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "not ready", "instances": instances })),
        )
    }
}
