//! The whole application: the REST routes, the OpenAPI document, MCP and
//! the admin page mounted side by side, and the tower layers for the
//! cross-cutting work (request ids, tracing, metrics, timeouts, body limit,
//! CORS) around all of them.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::state::AppState;

/// The request id header, set when the client sends none.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole application.
pub fn router(state: AppState) -> Router {
    let limits = &state.config.limits;
    let timeout = Duration::from_millis(limits.request_timeout_ms);
    let mut app = crate::routes::rest()
        .merge(crate::openapi::router())
        .merge(crate::mcp::router(&state))
        .merge(crate::admin_page::router())
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            observe(timeout, request, next)
        }))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|request: &Request| {
                            let id = request
                                .headers()
                                .get(REQUEST_ID)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("-");
                            let route = request
                                .extensions()
                                .get::<MatchedPath>()
                                .map_or("-", |p| p.as_str());
                            tracing::info_span!(
                                "request",
                                request_id = %id,
                                method = %request.method(),
                                route = %route,
                                customer = tracing::field::Empty,
                            )
                        })
                        .on_response(
                            |response: &Response, latency: Duration, _span: &tracing::Span| {
                                tracing::info!(
                                    status = response.status().as_u16(),
                                    latency_ms = latency.as_secs_f64() * 1e3,
                                    "finished"
                                );
                            },
                        ),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID)),
        );
    if !state.config.cors.allow_origins.is_empty() {
        let origins: Vec<HeaderValue> = state
            .config
            .cors
            .allow_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        app = app.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
                .allow_headers([
                    header::CONTENT_TYPE,
                    header::AUTHORIZATION,
                    HeaderName::from_static("x-api-key"),
                    HeaderName::from_static("idempotency-key"),
                ]),
        );
    }
    app.with_state(state)
}

/// Per-request metrics (requests and latency by route, method, status) and
/// the request deadline.
async fn observe(timeout: Duration, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Unavailable(format!(
            "the request did not finish within {} ms",
            timeout.as_millis()
        ))
        .into_response(),
    };
    let status = response.status().as_u16().to_string();
    metrics::counter!("gateway_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("gateway_request_duration_seconds", "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}

async fn unknown_route() -> ApiError {
    ApiError::NotFound("no such route".to_owned())
}

async fn method_not_allowed() -> Response {
    let mut response =
        ApiError::NotFound("no such route for this method".to_owned()).into_response();
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    response
}
