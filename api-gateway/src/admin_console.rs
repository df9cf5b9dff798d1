//! The JSON the admin page reads beyond the admin API (`admin` scope): all
//! customers with this month's usage against quota, kyro-server's figures
//! per instance, request latency per route from the gateway's own metrics,
//! and a search of one customer's episodes as that customer would see it.
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /api/v1/admin/customers?limit=&offset=` | customers, creation order, with `usage`, `quota_used`, `active_keys` |
//! | `GET /api/v1/admin/engine?customer_id=` | per instance: points, segments, caches (see [`InstanceStats`]) |
//! | `GET /api/v1/admin/latency` | [`LatencySummary`] |
//! | `POST /api/v1/admin/search` | `{"customer_id", …search fields}` → the search answer; audited, not counted |

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use kyro_proto::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::admin::CustomerView;
use crate::api_schema::{BodyErrors, CallErrors};
use crate::auth::{AdminEndpoint, Authed, Caller, Scope};
use crate::clock;
use crate::engine::Instance;
use crate::episodes::retrieval::{self, Accounting, SearchRequest, SearchResponse};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};
use crate::route_latency::{self, LatencySummary};
use crate::state::AppState;
use crate::store::{AuditEntry, AuditLog, Customers, Keys, Usage, UsageMonth};

/// The tenant named on `Stats` calls for instance-wide figures (any name
/// will do: with the `admin` scope kyro-server answers for the instance).
const INSTANCE_TENANT: &str = "gateway-admin";

/// The admin page's JSON routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/customers", get(customers))
        .route("/api/v1/admin/engine", get(engine_stats))
        .route("/api/v1/admin/latency", get(latency))
        .route("/api/v1/admin/search", post(search))
}

// ---------------------------------------------------------------- customers

/// Query of `GET /api/v1/admin/customers`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CustomerListQuery {
    /// 1..=1000 (default 500).
    pub limit: Option<u32>,
    /// Customers to skip (the previous page's `next_offset`).
    pub offset: Option<u64>,
}

/// A customer with this month's usage.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CustomerSummary {
    #[serde(flatten)]
    pub customer: CustomerView,
    /// This month's captures, searches and reflects.
    pub usage: UsageMonth,
    /// Captures this month / monthly quota (`null`: unlimited); above 1.0
    /// in the 20 % grace.
    pub quota_used: Option<f64>,
    /// Keys neither revoked nor expired.
    pub active_keys: u64,
}

/// `GET /api/v1/admin/customers`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CustomerList {
    /// The usage month (UTC), `2026-12`.
    pub month: String,
    pub customers: Vec<CustomerSummary>,
    pub next_offset: Option<u64>,
}

#[utoipa::path(
    get, path = "/api/v1/admin/customers", tag = "admin",
    summary = "Every customer with this month's usage against its quota (the admin page's table)",
    params(CustomerListQuery),
    responses((status = 200, description = "A page of customers, creation order", body = CustomerList),
        (status = 422, description = "`limit` outside 1..=1000", body = ErrorBody), CallErrors),
    security(("api_key" = []), ("bearer" = []))
)]
async fn customers(
    State(state): State<AppState>,
    Authed(_caller, _): Authed<AdminEndpoint>,
    ApiQuery(query): ApiQuery<CustomerListQuery>,
) -> Result<Json<CustomerList>, ApiError> {
    let limit = query.limit.unwrap_or(500);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::validation("limit", "must be 1..=1000"));
    }
    let offset = query.offset.unwrap_or(0);
    let now = clock::now();
    let month = clock::month_of(now);
    let this_month = month.clone();
    let rows = state
        .store
        .run_fresh(move |c| {
            let mut out = Vec::new();
            for customer in Customers(c).list(limit, offset)? {
                let usage = Usage(c)
                    .months(&customer.id)?
                    .into_iter()
                    .find(|m| m.month == this_month);
                let active_keys = Keys(c)
                    .of_customer(&customer.id)?
                    .iter()
                    .filter(|k| k.revoked_at.is_none() && k.expires_at.is_none_or(|at| at > now))
                    .count() as u64;
                out.push((customer, usage, active_keys));
            }
            Ok(out)
        })
        .await?;
    let next_offset = (rows.len() == limit as usize).then_some(offset + u64::from(limit));
    let customers = rows
        .into_iter()
        .map(|(customer, usage, active_keys)| {
            let customer = CustomerView::from(customer);
            let usage = usage.unwrap_or_else(|| UsageMonth {
                month: month.clone(),
                captures: 0,
                searches: 0,
                reflects: 0,
            });
            CustomerSummary {
                quota_used: customer
                    .monthly_quota
                    .map(|quota| usage.captures as f64 / quota.max(1) as f64),
                customer,
                usage,
                active_keys,
            }
        })
        .collect();
    Ok(Json(CustomerList {
        month,
        customers,
        next_offset,
    }))
}

// ---------------------------------------------------------------- engine

/// Query of `GET /api/v1/admin/engine`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EngineQuery {
    /// Ask for this customer's namespaces (used when the gateway's
    /// kyro-server key lacks `admin`: kyro-server then answers per tenant).
    pub customer_id: Option<String>,
}

/// A cache's counters since the instance started.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CacheView {
    pub hits: u64,
    pub misses: u64,
    pub insertions: u64,
    pub evictions: u64,
    pub rejected: u64,
    /// hits / (hits + misses); `null` before the first lookup.
    pub hit_ratio: Option<f64>,
}

impl From<pb::CacheStats> for CacheView {
    fn from(c: pb::CacheStats) -> Self {
        let lookups = c.hits + c.misses;
        CacheView {
            hit_ratio: (lookups > 0).then(|| c.hits as f64 / lookups as f64),
            hits: c.hits,
            misses: c.misses,
            insertions: c.insertions,
            evictions: c.evictions,
            rejected: c.rejected,
        }
    }
}

/// What kyro-server reported. The instance-wide figures (`hot_bytes`,
/// caches, fsyncs, `unreachable_points`) are `null` when it answered for
/// one tenant only.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EngineFigures {
    pub dim: u32,
    pub metric: String,
    pub namespaces: u64,
    pub points: u64,
    pub hot_points: u64,
    pub cold_segments: u64,
    pub cold_bytes: u64,
    pub hot_bytes: Option<u64>,
    pub query_cache: Option<CacheView>,
    pub point_cache: Option<CacheView>,
    pub fsyncs: Option<u64>,
    pub synced_writes: Option<u64>,
    pub fsync_mean_ms: Option<f64>,
    pub unreachable_points: Option<u64>,
}

/// One instance.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InstanceStats {
    /// `text` or `image`.
    pub instance: &'static str,
    pub reachable: bool,
    /// `instance` (the whole instance) or `tenant` (one customer's
    /// namespaces); `null` when unreachable or nothing useful was answered.
    pub scope: Option<&'static str>,
    /// Why there are no figures, when there are none.
    pub note: Option<String>,
    pub stats: Option<EngineFigures>,
}

/// `GET /api/v1/admin/engine`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EngineStats {
    /// The customer asked about, if any.
    pub customer_id: Option<String>,
    pub instances: Vec<InstanceStats>,
}

fn instance_stats(
    instance: Instance,
    customer: Option<&str>,
    answer: Result<pb::StatsResponse, tonic::Status>,
) -> InstanceStats {
    let stats = match answer {
        Ok(stats) => stats,
        Err(status) => {
            return InstanceStats {
                instance: instance.label(),
                reachable: !matches!(
                    status.code(),
                    tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
                ),
                scope: None,
                note: Some(format!("{:?}: {}", status.code(), status.message())),
                stats: None,
            }
        }
    };
    // kyro-server fills the caches for admin keys only.
    let instance_wide = stats.query_cache.is_some();
    if !instance_wide && customer.is_none() {
        return InstanceStats {
            instance: instance.label(),
            reachable: true,
            scope: None,
            note: Some(
                "instance-wide figures need the admin scope on the gateway's kyro-server key \
                 (engine.service_key); choose a customer to see its namespaces"
                    .to_owned(),
            ),
            stats: None,
        };
    }
    let admin = |v: u64| instance_wide.then_some(v);
    InstanceStats {
        instance: instance.label(),
        reachable: true,
        scope: Some(if instance_wide { "instance" } else { "tenant" }),
        note: None,
        stats: Some(EngineFigures {
            dim: stats.dim,
            metric: stats.metric,
            namespaces: stats.namespaces,
            points: stats.points,
            hot_points: stats.hot_points,
            cold_segments: stats.cold_segments,
            cold_bytes: stats.cold_bytes,
            hot_bytes: admin(stats.hot_bytes),
            query_cache: stats.query_cache.map(Into::into),
            point_cache: stats.point_cache.map(Into::into),
            fsyncs: admin(stats.fsyncs),
            synced_writes: admin(stats.synced_writes),
            fsync_mean_ms: (instance_wide && stats.fsyncs > 0)
                .then(|| stats.fsync_seconds / stats.fsyncs as f64 * 1e3),
            unreachable_points: admin(stats.unreachable_points),
        }),
    }
}

#[utoipa::path(
    get, path = "/api/v1/admin/engine", tag = "admin",
    summary = "kyro-server's figures per instance: points, segments, caches, fsyncs",
    params(EngineQuery),
    responses((status = 200, description = "One entry per instance; an unreachable one says why", body = EngineStats),
        (status = 404, description = "No such customer", body = ErrorBody), CallErrors),
    security(("api_key" = []), ("bearer" = []))
)]
async fn engine_stats(
    State(state): State<AppState>,
    Authed(_caller, _): Authed<AdminEndpoint>,
    ApiQuery(query): ApiQuery<EngineQuery>,
) -> Result<Json<EngineStats>, ApiError> {
    if let Some(id) = query.customer_id.clone() {
        let target = id.clone();
        let found = state.store.run(move |c| Customers(c).get(&id)).await?;
        if found.is_none() {
            return Err(ApiError::NotFound(format!(
                "customer {target} does not exist"
            )));
        }
    }
    let tenant = query.customer_id.as_deref().unwrap_or(INSTANCE_TENANT);
    let (text, image) = tokio::join!(
        state.engine.stats(Instance::Text, tenant),
        state.engine.stats(Instance::Image, tenant),
    );
    let customer = query.customer_id.as_deref();
    Ok(Json(EngineStats {
        instances: vec![
            instance_stats(Instance::Text, customer, text),
            instance_stats(Instance::Image, customer, image),
        ],
        customer_id: query.customer_id,
    }))
}

// ---------------------------------------------------------------- latency

#[utoipa::path(
    get, path = "/api/v1/admin/latency", tag = "admin",
    summary = "Requests and latency per route and per engine RPC since start",
    responses((status = 200, description = "Busiest first", body = LatencySummary), CallErrors),
    security(("api_key" = []), ("bearer" = []))
)]
async fn latency(
    State(state): State<AppState>,
    Authed(_caller, _): Authed<AdminEndpoint>,
) -> Result<Json<LatencySummary>, ApiError> {
    let handle = state.metrics.as_ref().ok_or_else(|| {
        ApiError::Unavailable("metrics are not recorded in this process".to_owned())
    })?;
    Ok(Json(route_latency::summarise(&handle.render())))
}

// ---------------------------------------------------------------- search

/// `POST /api/v1/admin/search`: a search body plus the customer whose
/// episodes to search.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct AdminSearch {
    pub customer_id: String,
    #[serde(flatten)]
    pub search: SearchRequest,
}

/// Searches a customer's episodes exactly as the customer's own search
/// would rank them (all projects, as a key without a project sees them),
/// without counting anything against the customer (no usage, no
/// retrievals). Each search is written to the audit log as `admin.search`
/// with the acting key; the query text is not (it may hold what redaction
/// misses).
#[utoipa::path(
    post, path = "/api/v1/admin/search", tag = "admin",
    summary = "Search one customer's episodes as that customer would (audited, not counted)",
    request_body = AdminSearch,
    responses((status = 200, description = "The customer's search answer", body = SearchResponse),
        (status = 404, description = "No such customer", body = ErrorBody), BodyErrors, CallErrors),
    security(("api_key" = []), ("bearer" = []))
)]
async fn search(
    State(state): State<AppState>,
    Authed(admin, _): Authed<AdminEndpoint>,
    ApiJson(body): ApiJson<AdminSearch>,
) -> Result<Json<SearchResponse>, ApiError> {
    let id = body.customer_id.clone();
    let entry = AuditEntry {
        id: 0,
        at: clock::now(),
        actor: Some(admin.key_id.clone()),
        customer_id: Some(id.clone()),
        action: "admin.search".to_owned(),
        target: Some(id.clone()),
        address: admin.address.clone(),
        outcome: "ok".to_owned(),
    };
    let customer = state
        .store
        .run(move |c| {
            let Some(customer) = Customers(c).get(&id)? else {
                return Ok(None);
            };
            AuditLog(c).append(&entry)?;
            Ok(Some(customer))
        })
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!("customer {} does not exist", body.customer_id))
        })?;
    let as_customer = Caller {
        key_id: admin.key_id.clone(),
        customer,
        scopes: vec![Scope::Read],
        project: None,
        address: admin.address.clone(),
    };
    Ok(Json(
        retrieval::search_with(&state, &as_customer, body.search, Accounting::Uncounted).await?,
    ))
}
