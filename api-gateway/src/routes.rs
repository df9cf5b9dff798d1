//! The REST API: one table of routes per area and thin handlers (parse →
//! call the operation → map the result). `app.rs` mounts it beside the
//! other surfaces and wraps them all in the cross-cutting layers.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::admin::{
    self, AuditPage, AuditQuery, CreateCustomer, CreateKey, CreatedKey, CustomerView,
    UpdateCustomer, UsageView,
};
use crate::api_schema::{BodyErrors, CallErrors};
use crate::auth::{
    AdminEndpoint, Authed, CaptureEndpoint, ReadEndpoint, ReflectEndpoint, SearchEndpoint,
    WriteEndpoint,
};
use crate::embed::MODEL_NAME;
use crate::engine::Instance;
use crate::episodes::capture::{self, CaptureResponse};
use crate::episodes::model::CaptureRequest;
use crate::episodes::retrieval::{
    self, ReflectRequest, ReflectResponse, SearchRequest, SearchResponse,
};
use crate::episodes::view::{
    self, EpisodePage, EpisodeView, ListQuery, SkillList, ValidateFixRequest, ValidateFixResponse,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;
use crate::store::CustomerStatus;

/// The REST API's routes, one table per area (the application around
/// them, with the other surfaces and the layers, is `app::router`).
pub fn rest() -> Router<AppState> {
    let episodes = Router::new()
        .route("/api/v1/capture", post(capture_episode))
        .route("/api/v1/episodes", get(list_episodes))
        .route(
            "/api/v1/episodes/{id}",
            get(get_episode).delete(delete_episode),
        )
        .route("/api/v1/search", post(search))
        .route("/api/v1/reflect", post(reflect))
        .route("/api/v1/validate_fix", post(validate_fix))
        .route("/api/v1/skills", get(skills))
        .route("/api/v1/embeddings", post(embeddings));
    let admin = Router::new()
        .route("/api/v1/customers", post(create_customer))
        .route(
            "/api/v1/customers/{id}",
            get(get_customer).patch(update_customer),
        )
        .route("/api/v1/customers/{id}/suspend", post(suspend_customer))
        .route("/api/v1/customers/{id}/activate", post(activate_customer))
        .route(
            "/api/v1/customers/{id}/keys",
            post(create_key).get(list_keys),
        )
        .route("/api/v1/customers/{id}/usage", get(customer_usage))
        .route("/api/v1/keys/{key_id}", delete(revoke_key))
        .route("/api/v1/audit", get(audit_log));
    let service = Router::new()
        .route("/health", get(health))
        .route("/health/liveness", get(liveness))
        .route("/health/readiness", get(readiness))
        .route("/metrics", get(metrics_text));
    episodes.merge(admin).merge(service)
}

fn body(bytes: Result<Bytes, BytesRejection>, state: &AppState) -> Result<Bytes, ApiError> {
    bytes.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge {
                limit: state.config.limits.max_body_bytes,
            }
        } else {
            ApiError::BadRequest {
                message: e.body_text(),
                field: None,
            }
        }
    })
}

fn episode_id(path: Result<Path<String>, PathRejection>) -> Result<u64, ApiError> {
    let Path(text) = path?;
    text.parse()
        .map_err(|_| ApiError::NotFound(format!("episode {text} does not exist")))
}

// ---------------------------------------------------------------- episodes

#[utoipa::path(
    post, path = "/api/v1/capture", tag = "episodes",
    summary = "Record a failure episode",
    description = "Validates, redacts, fingerprints and embeds the episode, then stores it in the caller's tenant. A repeat of a stored error signature, or a near-duplicate (cosine >= 0.95, same error_class and tool), is folded into the existing episode (200 with `linked_to`). Charged to the monthly quota either way; all-or-nothing.",
    request_body = CaptureRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key and body return the first result, another body is a 409.")),
    responses(
        (status = 201, description = "Stored as a new episode", body = CaptureResponse,
            headers(("x-quota-warning" = String, description = "Present at 80 % of the monthly quota and in the grace band"))),
        (status = 200, description = "Folded into an existing episode (`linked_to`)", body = CaptureResponse),
        (status = 409, description = "Idempotency key reused with another body, or still in progress", body = ErrorBody),
        BodyErrors, CallErrors
    ),
    security(("api_key" = []), ("bearer" = []))
)]
async fn capture_episode(
    State(state): State<AppState>,
    Authed(caller, _): Authed<CaptureEndpoint>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = body(bytes, &state)?;
    let key = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| ApiError::validation("Idempotency-Key", "must be visible ASCII"))
        })
        .transpose()?;
    let outcome = capture::capture(&state, &caller, &bytes, key).await?;
    let mut response = (
        outcome.status,
        [(header::CONTENT_TYPE, "application/json")],
        outcome.body,
    )
        .into_response();
    if let Some(warning) = outcome
        .quota_warning
        .and_then(|w| HeaderValue::from_str(&w).ok())
    {
        response.headers_mut().insert("x-quota-warning", warning);
    }
    if outcome.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

#[utoipa::path(
    get, path = "/api/v1/episodes/{id}", tag = "episodes",
    summary = "One episode",
    params(("id" = u64, Path, description = "The episode id (per customer)")),
    responses((status = 200, description = "The episode", body = EpisodeView),
        (status = 404, description = "No such episode for this caller", body = ErrorBody),
        CallErrors),
    security(("api_key" = []), ("bearer" = []))
)]
async fn get_episode(
    State(state): State<AppState>,
    Authed(caller, _): Authed<ReadEndpoint>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<view::EpisodeView>, ApiError> {
    Ok(Json(view::get(&state, &caller, episode_id(path)?).await?))
}

#[utoipa::path(
    get, path = "/api/v1/episodes", tag = "episodes",
    summary = "Episodes, newest first, with cursor pagination and filters",
    params(ListQuery),
    responses((status = 200, description = "A page of episodes", body = EpisodePage),
        (status = 422, description = "A query parameter is invalid", body = ErrorBody),
        CallErrors),
    security(("api_key" = []), ("bearer" = []))
)]
async fn list_episodes(
    State(state): State<AppState>,
    Authed(caller, _): Authed<ReadEndpoint>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<view::EpisodePage>, ApiError> {
    Ok(Json(view::list(&state, &caller, query).await?))
}

#[utoipa::path(
    delete, path = "/api/v1/episodes/{id}", tag = "episodes",
    summary = "Erase an episode",
    description = "Gone from the customer database, both engine instances and every cache before the 204, and never returned again.",
    params(("id" = u64, Path, description = "The episode id")),
    responses((status = 204, description = "Erased"),
        (status = 404, description = "No such episode for this caller", body = ErrorBody),
        CallErrors),
    security(("api_key" = []), ("bearer" = []))
)]
async fn delete_episode(
    State(state): State<AppState>,
    Authed(caller, _): Authed<WriteEndpoint>,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    view::delete(&state, &caller, episode_id(path)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post, path = "/api/v1/search", tag = "retrieval",
    summary = "Ranked episodes similar to a goal",
    description = "Embeds `goal`, searches the caller's episodes (project first, then the customer's other projects) and ranks by similarity, precondition match, recency and usage (default weights 0.5/0.3/0.1/0.1). Skills rank first.",
    request_body = SearchRequest,
    responses((status = 200, description = "Results, best first", body = SearchResponse),
        BodyErrors, CallErrors),
    security(("api_key" = []), ("bearer" = []))
)]
async fn search(
    State(state): State<AppState>,
    Authed(caller, _): Authed<SearchEndpoint>,
    ApiJson(request): ApiJson<SearchRequest>,
) -> Result<Json<retrieval::SearchResponse>, ApiError> {
    Ok(Json(retrieval::search(&state, &caller, request).await?))
}

#[utoipa::path(
    post, path = "/api/v1/reflect", tag = "retrieval",
    summary = "The pre-action gate: has this failed before?",
    description = "block / warn / hint / proceed from documented similarity thresholds, with the matched episodes and the suggested fix. A 503 (never a silent proceed) when the engine cannot be reached.",
    request_body = ReflectRequest,
    responses((status = 200, description = "The decision", body = ReflectResponse),
        BodyErrors, CallErrors),
    security(("api_key" = []), ("bearer" = []))
)]
async fn reflect(
    State(state): State<AppState>,
    Authed(caller, _): Authed<ReflectEndpoint>,
    ApiJson(request): ApiJson<ReflectRequest>,
) -> Result<Json<retrieval::ReflectResponse>, ApiError> {
    Ok(Json(retrieval::reflect(&state, &caller, request).await?))
}

#[utoipa::path(
    post, path = "/api/v1/validate_fix", tag = "episodes",
    summary = "Record whether an episode's resolution worked",
    request_body = ValidateFixRequest,
    responses((status = 200, description = "Recorded", body = ValidateFixResponse),
        (status = 404, description = "No such episode for this caller", body = ErrorBody),
        BodyErrors, CallErrors),
    security(("api_key" = []), ("bearer" = []))
)]
async fn validate_fix(
    State(state): State<AppState>,
    Authed(caller, _): Authed<WriteEndpoint>,
    ApiJson(request): ApiJson<ValidateFixRequest>,
) -> Result<Json<view::ValidateFixResponse>, ApiError> {
    Ok(Json(view::validate_fix(&state, &caller, request).await?))
}

#[utoipa::path(
    get, path = "/api/v1/skills", tag = "retrieval",
    summary = "Episodes promoted to skills (fix succeeded >= 3 times at >= 90 %)",
    responses((status = 200, description = "The skills", body = SkillList), CallErrors),
    security(("api_key" = []), ("bearer" = []))
)]
async fn skills(
    State(state): State<AppState>,
    Authed(caller, _): Authed<ReadEndpoint>,
) -> Result<Json<view::SkillList>, ApiError> {
    Ok(Json(view::skills(&state, &caller).await?))
}

/// `input` of the embeddings API: one text or many.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum EmbeddingInput {
    One(String),
    Many(Vec<String>),
}

/// `POST /api/v1/embeddings` (the OpenAI embeddings shape).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct EmbeddingsRequest {
    pub input: EmbeddingInput,
    /// Accepted for compatibility; the server's model answers.
    #[serde(default)]
    pub model: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EmbeddingItem {
    object: &'static str,
    embedding: Vec<f32>,
    index: usize,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EmbeddingsUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EmbeddingsResponse {
    object: &'static str,
    data: Vec<EmbeddingItem>,
    model: &'static str,
    usage: EmbeddingsUsage,
}

#[utoipa::path(
    post, path = "/api/v1/embeddings", tag = "embeddings",
    summary = "Embed texts with the server's model (OpenAI embeddings shape)",
    request_body = EmbeddingsRequest,
    responses((status = 200, description = "One 384-dim vector per input, in order", body = EmbeddingsResponse),
        BodyErrors, CallErrors),
    security(("api_key" = []), ("bearer" = []))
)]
async fn embeddings(
    State(state): State<AppState>,
    Authed(_caller, _): Authed<ReadEndpoint>,
    ApiJson(request): ApiJson<EmbeddingsRequest>,
) -> Result<Response, ApiError> {
    let texts = match request.input {
        EmbeddingInput::One(text) => vec![text],
        EmbeddingInput::Many(texts) => texts,
    };
    if texts.is_empty() || texts.len() > 256 {
        return Err(ApiError::validation("input", "1..=256 texts"));
    }
    if let Some(i) = texts.iter().position(|t| t.chars().count() > 20_000) {
        return Err(ApiError::validation(
            format!("input[{i}]"),
            "at most 20000 characters",
        ));
    }
    let vectors = state.embedder.embed_many(&texts).await?;
    let data = vectors
        .into_iter()
        .enumerate()
        .map(|(index, embedding)| EmbeddingItem {
            object: "embedding",
            embedding,
            index,
        })
        .collect();
    Ok(Json(EmbeddingsResponse {
        object: "list",
        data,
        model: MODEL_NAME,
        usage: EmbeddingsUsage {
            prompt_tokens: 0,
            total_tokens: 0,
        },
    })
    .into_response())
}

// ---------------------------------------------------------------- admin

#[utoipa::path(
    post, path = "/api/v1/customers", tag = "admin",
    summary = "Create a customer",
    request_body = CreateCustomer,
    responses((status = 201, description = "Created", body = CustomerView), BodyErrors, CallErrors),
    security(("api_key" = []), ("bearer" = []))
)]
async fn create_customer(
    State(state): State<AppState>,
    Authed(caller, _): Authed<AdminEndpoint>,
    ApiJson(body): ApiJson<CreateCustomer>,
) -> Result<(StatusCode, Json<admin::CustomerView>), ApiError> {
    let customer = admin::create_customer(&state, &caller, body).await?;
    Ok((StatusCode::CREATED, Json(customer)))
}

#[utoipa::path(
    get, path = "/api/v1/customers/{id}", tag = "admin",
    summary = "One customer",
    params(("id" = String, Path, description = "The customer id")),
    responses((status = 200, description = "The customer", body = CustomerView),
        (status = 404, description = "No such customer", body = ErrorBody), CallErrors),
    security(("api_key" = []), ("bearer" = []))
)]
async fn get_customer(
    State(state): State<AppState>,
    Authed(_caller, _): Authed<AdminEndpoint>,
    Path(id): Path<String>,
) -> Result<Json<admin::CustomerView>, ApiError> {
    Ok(Json(admin::get_customer(&state, id).await?))
}

#[utoipa::path(
    patch, path = "/api/v1/customers/{id}", tag = "admin",
    summary = "Rename a customer or change its tier",
    params(("id" = String, Path, description = "The customer id")),
    request_body = UpdateCustomer,
    responses((status = 200, description = "The updated customer", body = CustomerView),
        (status = 404, description = "No such customer", body = ErrorBody), BodyErrors, CallErrors),
    security(("api_key" = []), ("bearer" = []))
)]
async fn update_customer(
    State(state): State<AppState>,
    Authed(caller, _): Authed<AdminEndpoint>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateCustomer>,
) -> Result<Json<admin::CustomerView>, ApiError> {
    Ok(Json(
        admin::update_customer(&state, &caller, id, body).await?,
    ))
}

#[utoipa::path(
    post, path = "/api/v1/customers/{id}/suspend", tag = "admin",
    summary = "Suspend a customer: its keys fail on the very next request",
    params(("id" = String, Path, description = "The customer id")),
    responses((status = 200, description = "Suspended", body = CustomerView),
        (status = 404, description = "No such customer", body = ErrorBody), CallErrors),
    security(("api_key" = []), ("bearer" = []))
)]
async fn suspend_customer(
    State(state): State<AppState>,
    Authed(caller, _): Authed<AdminEndpoint>,
    Path(id): Path<String>,
) -> Result<Json<admin::CustomerView>, ApiError> {
    Ok(Json(
        admin::set_status(&state, &caller, id, CustomerStatus::Suspended).await?,
    ))
}

#[utoipa::path(
    post, path = "/api/v1/customers/{id}/activate", tag = "admin",
    summary = "Re-activate a suspended customer",
    params(("id" = String, Path, description = "The customer id")),
    responses((status = 200, description = "Active", body = CustomerView),
        (status = 404, description = "No such customer", body = ErrorBody), CallErrors),
    security(("api_key" = []), ("bearer" = []))
)]
async fn activate_customer(
    State(state): State<AppState>,
    Authed(caller, _): Authed<AdminEndpoint>,
    Path(id): Path<String>,
) -> Result<Json<admin::CustomerView>, ApiError> {
    Ok(Json(
        admin::set_status(&state, &caller, id, CustomerStatus::Active).await?,
    ))
}

#[utoipa::path(
    post, path = "/api/v1/customers/{id}/keys", tag = "admin",
    summary = "Create an API key (shown once)",
    params(("id" = String, Path, description = "The customer id")),
    request_body = CreateKey,
    responses((status = 201, description = "The key; `api_key` is never shown again", body = CreatedKey),
        (status = 404, description = "No such customer", body = ErrorBody), BodyErrors, CallErrors),
    security(("api_key" = []), ("bearer" = []))
)]
async fn create_key(
    State(state): State<AppState>,
    Authed(caller, _): Authed<AdminEndpoint>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreateKey>,
) -> Result<(StatusCode, Json<admin::CreatedKey>), ApiError> {
    let key = admin::create_key(&state, &caller, id, body).await?;
    Ok((StatusCode::CREATED, Json(key)))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct KeyList {
    keys: Vec<admin::KeyView>,
}

#[utoipa::path(
    get, path = "/api/v1/customers/{id}/keys", tag = "admin",
    summary = "A customer's keys (never their secrets)",
    params(("id" = String, Path, description = "The customer id")),
    responses((status = 200, description = "The keys", body = KeyList),
        (status = 404, description = "No such customer", body = ErrorBody), CallErrors),
    security(("api_key" = []), ("bearer" = []))
)]
async fn list_keys(
    State(state): State<AppState>,
    Authed(_caller, _): Authed<AdminEndpoint>,
    Path(id): Path<String>,
) -> Result<Json<KeyList>, ApiError> {
    Ok(Json(KeyList {
        keys: admin::list_keys(&state, id).await?,
    }))
}

#[utoipa::path(
    delete, path = "/api/v1/keys/{key_id}", tag = "admin",
    summary = "Revoke a key: it fails on the very next request",
    params(("key_id" = String, Path, description = "The key id (the part after `em_live_`)")),
    responses((status = 204, description = "Revoked"),
        (status = 404, description = "No such key", body = ErrorBody), CallErrors),
    security(("api_key" = []), ("bearer" = []))
)]
async fn revoke_key(
    State(state): State<AppState>,
    Authed(caller, _): Authed<AdminEndpoint>,
    Path(key_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin::revoke_key(&state, &caller, key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get, path = "/api/v1/customers/{id}/usage", tag = "admin",
    summary = "This month's captures against the quota",
    params(("id" = String, Path, description = "The customer id")),
    responses((status = 200, description = "Usage", body = UsageView),
        (status = 404, description = "No such customer", body = ErrorBody), CallErrors),
    security(("api_key" = []), ("bearer" = []))
)]
async fn customer_usage(
    State(state): State<AppState>,
    Authed(_caller, _): Authed<AdminEndpoint>,
    Path(id): Path<String>,
) -> Result<Json<admin::UsageView>, ApiError> {
    Ok(Json(admin::usage(&state, id).await?))
}

#[utoipa::path(
    get, path = "/api/v1/audit", tag = "admin",
    summary = "The audit log, newest first",
    params(AuditQuery),
    responses((status = 200, description = "Entries", body = AuditPage),
        (status = 422, description = "A query parameter is invalid", body = ErrorBody), CallErrors),
    security(("api_key" = []), ("bearer" = []))
)]
async fn audit_log(
    State(state): State<AppState>,
    Authed(_caller, _): Authed<AdminEndpoint>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<admin::AuditPage>, ApiError> {
    Ok(Json(admin::audit(&state, query).await?))
}

// ---------------------------------------------------------------- service

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Checks {
    database: bool,
    engine_text: bool,
    engine_image: bool,
    model: bool,
}

impl Checks {
    async fn run(state: &AppState) -> Checks {
        let (database, engine_text, engine_image) = tokio::join!(
            state.store.ping(),
            state.engine.is_serving(Instance::Text),
            state.engine.is_serving(Instance::Image)
        );
        Checks {
            database,
            engine_text,
            engine_image,
            model: state.embedder.is_loaded(),
        }
    }

    fn all(&self) -> bool {
        self.database && self.engine_text && self.engine_image && self.model
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct HealthBody {
    status: &'static str,
    version: &'static str,
    checks: Checks,
}

#[utoipa::path(
    get, path = "/health/liveness", tag = "service",
    summary = "The process answers",
    responses((status = 200, description = "Live", body = Object))
)]
async fn liveness() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "live"}))
}

#[utoipa::path(
    get, path = "/health/readiness", tag = "service",
    summary = "SQLite, both engine instances and the model are ready",
    responses((status = 200, description = "Ready", body = HealthBody),
        (status = 503, description = "Not ready: `checks` says what is missing", body = HealthBody))
)]
async fn readiness(State(state): State<AppState>) -> (StatusCode, Json<HealthBody>) {
    let checks = Checks::run(&state).await;
    let ready = checks.all();
    (
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(HealthBody {
            status: if ready { "ready" } else { "not_ready" },
            version: env!("CARGO_PKG_VERSION"),
            checks,
        }),
    )
}

#[utoipa::path(
    get, path = "/health", tag = "service",
    summary = "Status and the readiness checks (always 200)",
    responses((status = 200, description = "Status", body = HealthBody))
)]
async fn health(State(state): State<AppState>) -> Json<HealthBody> {
    let checks = Checks::run(&state).await;
    Json(HealthBody {
        status: if checks.all() { "ok" } else { "degraded" },
        version: env!("CARGO_PKG_VERSION"),
        checks,
    })
}

#[utoipa::path(
    get, path = "/metrics", tag = "service",
    summary = "Prometheus metrics",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"))
)]
async fn metrics_text(State(state): State<AppState>) -> Response {
    state.embedder.publish_stats();
    match &state.metrics {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => ApiError::Unavailable("metrics are not recorded in this process".to_owned())
            .into_response(),
    }
}
