//! The `kyro.v1.Kyro` service over one engine instance.
//!
//! Every RPC goes through [`KyroService::handle_with`]: authenticate, take a
//! concurrency permit (or shed with RESOURCE_EXHAUSTED), apply the deadline,
//! run the handler inside a span carrying instance, rpc, tenant and
//! namespace, and record the outcome in metrics. Unary RPCs go through
//! `KyroService::unary` on top of it — scope check, message conversion,
//! engine work on the worker pool, errors mapped by `status.rs` — so that
//! each handler holds only its conversions and its engine call.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kyro_engine::payload::Filter;
use kyro_engine::storage::request::{validate_name, MAX_BATCH_POINTS, MAX_SCROLL_LIMIT};
use kyro_engine::storage::{
    Instance, NamespaceRef, PayloadUpdate, PointWrite, SearchRequest, StorageError,
};
use kyro_proto::v1 as pb;
use tokio::sync::OwnedSemaphorePermit;
use tonic::metadata::MetadataMap;
use tonic::{Code, Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::auth::{Caller, Scope};
use crate::context::InstanceContext;
use crate::convert::{self, invalid};
use crate::refusals::{is_oversized_message, HandlerRan};
use crate::status::{from_engine, from_storage, RpcError};
use crate::telemetry::{rpc_span, Rpc};

/// Refused points a BulkInsert response lists (all are counted in `failed`):
/// bounds the response of a long stream of bad points.
pub const MAX_LISTED_ERRORS: usize = 10_000;

/// Points per page when a Scroll leaves `limit` at 0.
pub const DEFAULT_SCROLL_LIMIT: usize = 100;

/// What a handler knows about the call besides the message.
pub struct Call {
    pub caller: Caller,
    pub deadline: Option<Instant>,
}

/// The gRPC service of one instance.
#[derive(Clone)]
pub struct KyroService {
    context: Arc<InstanceContext>,
}

impl KyroService {
    pub fn new(context: Arc<InstanceContext>) -> Self {
        Self { context }
    }

    fn authenticate(&self, metadata: &MetadataMap) -> Result<Caller, Status> {
        if self.context.auth_enabled {
            self.context.keys.authenticate(metadata)
        } else {
            Ok(Caller::unauthenticated_admin())
        }
    }

    fn admit(&self) -> Result<OwnedSemaphorePermit, Status> {
        self.context
            .limiter
            .clone()
            .try_acquire_owned()
            .map_err(|_| {
                self.context.metrics.record_shed();
                Status::resource_exhausted(format!(
                    "instance {} is at its limit of {} concurrent requests; retry with backoff",
                    self.context.name, self.context.max_concurrent_requests
                ))
            })
    }

    fn deadline(
        &self,
        metadata: &MetadataMap,
        started: Instant,
        default: DefaultDeadline,
    ) -> Option<Instant> {
        let client = metadata
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout);
        let timeout = match default {
            DefaultDeadline::Apply => client.or(self.context.default_timeout),
            DefaultDeadline::ClientOnly => client,
        }?;
        Some(started + timeout)
    }

    /// Runs one RPC (see the module documentation); `default_deadline` says
    /// whether the server's default deadline applies when the client sets
    /// none.
    async fn handle_with<Req, Resp, F, Fut>(
        &self,
        rpc: Rpc,
        namespace: &str,
        request: Request<Req>,
        default_deadline: DefaultDeadline,
        handler: F,
    ) -> Result<Response<Resp>, Status>
    where
        F: FnOnce(Arc<InstanceContext>, Call, Req) -> Fut,
        Fut: Future<Output = Result<Resp, Status>>,
    {
        let started = Instant::now();
        self.context.io_spin.touch_at(started);
        if let Some(ran) = request.extensions().get::<HandlerRan>() {
            ran.mark();
        }
        // Authenticate before opening the span so that it gets every field
        // at once: recording fields into an open span formats them again.
        let caller = self.authenticate(request.metadata());
        let span = rpc_span(&self.context.name, rpc, namespace, caller.as_ref().ok());
        let result = async {
            let caller = caller?;
            let _permit = self.admit()?;
            let deadline = self.deadline(request.metadata(), started, default_deadline);
            let call = Call { caller, deadline };
            let work = handler(self.context.clone(), call, request.into_inner());
            match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline.into(), work)
                    .await
                    .unwrap_or_else(|_| {
                        Err(Status::deadline_exceeded("the request's deadline passed"))
                    }),
                None => work.await,
            }
        }
        .instrument(span.clone())
        .await;
        let elapsed = started.elapsed();
        self.context.io_spin.touch_at(started + elapsed);
        // A stream message over the size limit: tonic says OUT_OF_RANGE,
        // gRPC clients expect RESOURCE_EXHAUSTED (as for unary calls, see
        // `refusals`).
        let result = result.map_err(|status| {
            if status.code() == Code::OutOfRange && is_oversized_message(status.message()) {
                Status::resource_exhausted(status.message().to_owned())
            } else {
                status
            }
        });
        let code = result.as_ref().map_or_else(Status::code, |_| Code::Ok);
        self.context.metrics.record(rpc, code, elapsed);
        span.in_scope(|| match &result {
            Ok(_) => tracing::debug!(elapsed_us = elapsed.as_micros() as u64, "ok"),
            Err(status) if code == Code::Internal => {
                tracing::error!(code = ?code, message = status.message(), "failed")
            }
            Err(status) => {
                tracing::debug!(code = ?code, message = status.message(), "refused")
            }
        });
        result.map(Response::new)
    }
}

/// Whether `limits.default_timeout_ms` bounds a call whose client set no
/// deadline. Streams (BulkInsert) and long maintenance (Flush,
/// CreateSnapshot) run as long as they need unless the client says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DefaultDeadline {
    Apply,
    ClientOnly,
}

/// Parses a `grpc-timeout` header value: up to 8 digits and a unit (`H`,
/// `M`, `S`, `m`, `u`, `n`).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.checked_mul(3600)?),
        "M" => Duration::from_secs(amount.checked_mul(60)?),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

fn target<'a>(caller: &'a Caller, namespace: &'a str) -> NamespaceRef<'a> {
    NamespaceRef::new(&caller.tenant, namespace)
}

fn check_count(field: &str, count: usize, max: usize) -> Result<(), Status> {
    if count > max {
        return Err(invalid(
            field,
            format!("has {count} entries; at most {max} are allowed"),
        ));
    }
    Ok(())
}

fn update_mode(mode: i32) -> Result<PayloadUpdate, Status> {
    match pb::UpdateMode::try_from(mode) {
        Ok(pb::UpdateMode::Merge) => Ok(PayloadUpdate::Merge),
        Ok(pb::UpdateMode::Replace) => Ok(PayloadUpdate::Replace),
        Err(_) => Err(invalid("mode", format!("{mode} is not an UpdateMode"))),
    }
}

/// A search message checked and translated, ready for a worker.
struct PreparedSearch {
    namespace: String,
    vector: Vec<f32>,
    k: usize,
    ef: Option<usize>,
    filter: Option<Filter>,
    min_score: Option<f32>,
    with_payload: bool,
    with_vector: bool,
}

impl PreparedSearch {
    fn from_wire(request: pb::SearchRequest) -> Result<Self, Status> {
        Ok(Self {
            filter: convert::optional_filter(request.filter)?,
            namespace: request.namespace,
            vector: request.vector,
            k: request.k as usize,
            ef: (request.ef > 0).then_some(request.ef as usize),
            min_score: request.min_score,
            with_payload: request.with_payload.unwrap_or(true),
            with_vector: request.with_vector,
        })
    }

    fn run(&self, instance: &Instance, tenant: &str) -> Result<pb::SearchResponse, Status> {
        let request = SearchRequest {
            vector: &self.vector,
            k: self.k,
            ef: self.ef,
            filter: self.filter.as_ref(),
            min_score: self.min_score,
            with_payload: self.with_payload,
            with_vector: self.with_vector,
        };
        let response = instance
            .search(NamespaceRef::new(tenant, &self.namespace), &request)
            .map_err(from_storage)?;
        Ok(pb::SearchResponse {
            hits: response
                .hits
                .into_iter()
                .map(convert::hit_to_wire)
                .collect(),
            plan: response.plan.name().to_owned(),
            candidates: response.candidates,
            cached: response.cached,
        })
    }
}

/// The status `status` with `prefix` put before its message (to say which
/// item of a batch failed).
fn prefixed(prefix: &str, status: Status) -> Status {
    Status::new(status.code(), format!("{prefix}.{}", status.message()))
}

fn snapshot_name(requested: String) -> Result<String, Status> {
    if requested.is_empty() {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        return Ok(format!("snapshot-{millis}"));
    }
    validate_name("name", &requested).map_err(from_engine)?;
    // Names are directory names: no `.`, `..` or hidden directories.
    if requested.starts_with('.') {
        return Err(invalid("name", "must not start with '.'"));
    }
    Ok(requested)
}

/// The namespace a request names, for its span (`""` when it names none).
trait Addressed {
    fn namespace(&self) -> &str {
        ""
    }
}

macro_rules! addressed {
    ($($request:ty),* $(,)?) => {
        $(impl Addressed for $request {
            fn namespace(&self) -> &str {
                &self.namespace
            }
        })*
    };
}

addressed!(
    pb::InsertRequest,
    pb::GetRequest,
    pb::BulkGetRequest,
    pb::UpdatePayloadRequest,
    pb::DeleteRequest,
    pb::DeleteByFilterRequest,
    pb::SearchRequest,
    pb::CountRequest,
    pb::ScrollRequest,
    pb::DropNamespaceRequest,
    pb::FlushRequest,
);
impl Addressed for pb::BatchSearchRequest {}
impl Addressed for pb::ListNamespacesRequest {}
impl Addressed for pb::CreateSnapshotRequest {}
impl Addressed for pb::StatsRequest {}
impl Addressed for pb::GetConfigRequest {}

impl KyroService {
    /// The one path of every unary RPC: [`Self::handle_with`] (auth,
    /// admission, deadline, span, metrics), the scope check, `prepare` on the
    /// runtime (checking and converting the message, no engine work), then
    /// `work` on the worker pool; errors reach the wire through `status.rs`.
    async fn unary<Req, Job, Resp>(
        &self,
        rpc: Rpc,
        scope: Scope,
        default_deadline: DefaultDeadline,
        request: Request<Req>,
        prepare: impl FnOnce(&InstanceContext, &Caller, Req) -> Result<Job, RpcError> + Send,
        work: impl FnOnce(&InstanceContext, &Caller, Job) -> Result<Resp, RpcError> + Send + 'static,
    ) -> Result<Response<Resp>, Status>
    where
        Req: Addressed,
        Job: Send + 'static,
        Resp: Send + 'static,
    {
        let namespace = request.get_ref().namespace().to_owned();
        self.handle_with(
            rpc,
            &namespace,
            request,
            default_deadline,
            |ctx, call, req| async move {
                call.caller.require(scope, rpc.name())?;
                let job = prepare(&ctx, &call.caller, req)?;
                let Call { caller, deadline } = call;
                let workers = ctx.workers.clone();
                workers
                    .run(deadline, move || {
                        work(&ctx, &caller, job).map_err(Status::from)
                    })
                    .await
            },
        )
        .await
    }
}

/// For `unary` calls whose message needs no checking before the pool.
fn as_is<Req>(_: &InstanceContext, _: &Caller, request: Req) -> Result<Req, RpcError> {
    Ok(request)
}

#[tonic::async_trait]
impl pb::kyro_server::Kyro for KyroService {
    async fn insert(
        &self,
        request: Request<pb::InsertRequest>,
    ) -> Result<Response<pb::InsertResponse>, Status> {
        self.unary(
            Rpc::Insert,
            Scope::Write,
            DefaultDeadline::Apply,
            request,
            |_, _, req| {
                let payload = convert::payload_from_wire("payload", req.payload)?;
                let point = PointWrite {
                    doc_id: req.doc_id,
                    vector: req.vector,
                    payload,
                };
                Ok((req.namespace, point))
            },
            |ctx, caller, (namespace, point)| {
                let doc_id = point.doc_id;
                ctx.instance.insert(target(caller, &namespace), point)?;
                Ok(pb::InsertResponse { doc_id })
            },
        )
        .await
    }

    async fn bulk_insert(
        &self,
        request: Request<Streaming<pb::BulkInsertRequest>>,
    ) -> Result<Response<pb::BulkInsertResponse>, Status> {
        // A stream: its messages go to the pool one by one, so it does not
        // fit `unary`; the same steps, spelled out.
        self.handle_with(
            Rpc::BulkInsert,
            "",
            request,
            DefaultDeadline::ClientOnly,
            |ctx, call, mut stream| async move {
                call.caller.require(Scope::Write, Rpc::BulkInsert.name())?;
                let caller = Arc::new(call.caller);
                let mut summary = pb::BulkInsertResponse::default();
                let mut position: u64 = 0;
                while let Some(message) = stream.message().await? {
                    let received = message.points.len();
                    check_count("points", received, MAX_BATCH_POINTS)?;
                    let mut writes = Vec::with_capacity(message.points.len());
                    let mut indexes = Vec::with_capacity(message.points.len());
                    let mut refused = Vec::new();
                    for (i, point) in message.points.into_iter().enumerate() {
                        let index = position + i as u64;
                        match convert::payload_from_wire(
                            &format!("points[{i}].payload"),
                            point.payload,
                        ) {
                            Ok(payload) => {
                                indexes.push((index, point.doc_id));
                                writes.push(PointWrite {
                                    doc_id: point.doc_id,
                                    vector: point.vector,
                                    payload,
                                });
                            }
                            Err(status) => refused.push(pb::ItemError {
                                index,
                                doc_id: point.doc_id,
                                message: status.message().to_owned(),
                            }),
                        }
                    }
                    position += received as u64;
                    if !writes.is_empty() {
                        let (instance, caller, namespace) =
                            (ctx.instance.clone(), caller.clone(), message.namespace);
                        let outcomes = ctx
                            .workers
                            .run(call.deadline, move || {
                                instance
                                    .upsert(target(&caller, &namespace), writes)
                                    .map_err(from_storage)
                            })
                            .await;
                        let outcomes = match outcomes {
                            Ok(outcomes) => outcomes
                                .into_iter()
                                .map(|o| o.map_err(|e| e.to_string()))
                                .collect(),
                            // A message the caller got wrong as a whole (its
                            // namespace name) refuses its own points; the
                            // stream goes on. Server faults end the call.
                            Err(status) if status.code() == Code::InvalidArgument => {
                                vec![Err(status.message().to_owned()); indexes.len()]
                            }
                            Err(status) => return Err(status),
                        };
                        for ((index, doc_id), outcome) in indexes.into_iter().zip(outcomes) {
                            match outcome {
                                Ok(()) => summary.inserted += 1,
                                Err(message) => refused.push(pb::ItemError {
                                    index,
                                    doc_id,
                                    message,
                                }),
                            }
                        }
                    }
                    refused.sort_by_key(|e| e.index);
                    summary.failed += refused.len() as u64;
                    let room = MAX_LISTED_ERRORS.saturating_sub(summary.errors.len());
                    summary.errors.extend(refused.into_iter().take(room));
                }
                Ok(summary)
            },
        )
        .await
    }

    async fn get(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::GetResponse>, Status> {
        self.unary(
            Rpc::Get,
            Scope::Read,
            DefaultDeadline::Apply,
            request,
            as_is,
            |ctx, caller, req| {
                let record = ctx
                    .instance
                    .get(
                        target(caller, &req.namespace),
                        &[req.doc_id],
                        req.with_vector,
                        req.with_payload.unwrap_or(true),
                    )?
                    .pop()
                    .flatten()
                    .ok_or(StorageError::DocNotFound {
                        namespace: req.namespace,
                        doc_id: req.doc_id,
                    })?;
                Ok(pb::GetResponse {
                    point: Some(convert::record_to_wire(record)),
                })
            },
        )
        .await
    }

    async fn bulk_get(
        &self,
        request: Request<pb::BulkGetRequest>,
    ) -> Result<Response<pb::BulkGetResponse>, Status> {
        self.unary(
            Rpc::BulkGet,
            Scope::Read,
            DefaultDeadline::Apply,
            request,
            |_, _, req| {
                check_count("doc_ids", req.doc_ids.len(), MAX_BATCH_POINTS)?;
                Ok(req)
            },
            |ctx, caller, req| {
                let records = ctx.instance.get(
                    target(caller, &req.namespace),
                    &req.doc_ids,
                    req.with_vector,
                    req.with_payload.unwrap_or(true),
                )?;
                let mut response = pb::BulkGetResponse::default();
                for (doc_id, record) in req.doc_ids.iter().zip(records) {
                    match record {
                        Some(record) => response.points.push(convert::record_to_wire(record)),
                        None => response.missing_doc_ids.push(*doc_id),
                    }
                }
                Ok(response)
            },
        )
        .await
    }

    async fn update_payload(
        &self,
        request: Request<pb::UpdatePayloadRequest>,
    ) -> Result<Response<pb::UpdatePayloadResponse>, Status> {
        self.unary(
            Rpc::UpdatePayload,
            Scope::Write,
            DefaultDeadline::Apply,
            request,
            |_, _, req| {
                let mode = update_mode(req.mode)?;
                let payload = convert::payload_from_wire("payload", req.payload)?;
                Ok((req.namespace, req.doc_id, payload, mode))
            },
            |ctx, caller, (namespace, doc_id, payload, mode)| {
                ctx.instance
                    .update_payload(target(caller, &namespace), doc_id, payload, mode)?;
                Ok(pb::UpdatePayloadResponse {})
            },
        )
        .await
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        self.unary(
            Rpc::Delete,
            Scope::Write,
            DefaultDeadline::Apply,
            request,
            |_, _, req| {
                check_count("doc_ids", req.doc_ids.len(), MAX_BATCH_POINTS)?;
                Ok(req)
            },
            |ctx, caller, req| {
                let deleted = ctx
                    .instance
                    .delete(target(caller, &req.namespace), &req.doc_ids)?;
                Ok(pb::DeleteResponse {
                    deleted: deleted as u64,
                })
            },
        )
        .await
    }

    async fn delete_by_filter(
        &self,
        request: Request<pb::DeleteByFilterRequest>,
    ) -> Result<Response<pb::DeleteByFilterResponse>, Status> {
        self.unary(
            Rpc::DeleteByFilter,
            Scope::Write,
            DefaultDeadline::Apply,
            request,
            |_, _, req| {
                let filter = convert::optional_filter(req.filter)?.ok_or_else(|| {
                    invalid(
                        "filter",
                        "is required (to delete everything, drop the namespace)",
                    )
                })?;
                Ok((req.namespace, filter))
            },
            |ctx, caller, (namespace, filter)| {
                let deleted = ctx
                    .instance
                    .delete_by_filter(target(caller, &namespace), &filter)?;
                Ok(pb::DeleteByFilterResponse {
                    deleted: deleted as u64,
                })
            },
        )
        .await
    }

    async fn search(
        &self,
        request: Request<pb::SearchRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        self.unary(
            Rpc::Search,
            Scope::Read,
            DefaultDeadline::Apply,
            request,
            |_, _, req| Ok(PreparedSearch::from_wire(req)?),
            |ctx, caller, search| Ok(search.run(&ctx.instance, &caller.tenant)?),
        )
        .await
    }

    async fn batch_search(
        &self,
        request: Request<pb::BatchSearchRequest>,
    ) -> Result<Response<pb::BatchSearchResponse>, Status> {
        self.unary(
            Rpc::BatchSearch,
            Scope::Read,
            DefaultDeadline::Apply,
            request,
            |ctx, _, req| {
                if req.searches.is_empty() {
                    return Err(invalid("searches", "needs at least one search").into());
                }
                check_count("searches", req.searches.len(), ctx.max_batch_searches)?;
                let searches = req
                    .searches
                    .into_iter()
                    .enumerate()
                    .map(|(i, s)| {
                        PreparedSearch::from_wire(s)
                            .map_err(|e| prefixed(&format!("searches[{i}]"), e))
                    })
                    .collect::<Result<Vec<_>, Status>>()?;
                Ok(searches)
            },
            |ctx, caller, searches| {
                let results = searches
                    .iter()
                    .enumerate()
                    .map(|(i, search)| {
                        search
                            .run(&ctx.instance, &caller.tenant)
                            .map_err(|e| prefixed(&format!("searches[{i}]"), e))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(pb::BatchSearchResponse { results })
            },
        )
        .await
    }

    async fn count(
        &self,
        request: Request<pb::CountRequest>,
    ) -> Result<Response<pb::CountResponse>, Status> {
        self.unary(
            Rpc::Count,
            Scope::Read,
            DefaultDeadline::Apply,
            request,
            |_, _, req| Ok((req.namespace, convert::optional_filter(req.filter)?)),
            |ctx, caller, (namespace, filter)| {
                let count = ctx
                    .instance
                    .count(target(caller, &namespace), filter.as_ref())?;
                Ok(pb::CountResponse { count })
            },
        )
        .await
    }

    async fn scroll(
        &self,
        request: Request<pb::ScrollRequest>,
    ) -> Result<Response<pb::ScrollResponse>, Status> {
        self.unary(
            Rpc::Scroll,
            Scope::Read,
            DefaultDeadline::Apply,
            request,
            |_, _, mut req| {
                let filter = convert::optional_filter(req.filter.take())?;
                let limit = match req.limit as usize {
                    0 => DEFAULT_SCROLL_LIMIT,
                    n if n > MAX_SCROLL_LIMIT => {
                        return Err(invalid(
                            "limit",
                            format!("must be at most {MAX_SCROLL_LIMIT}, got {n}"),
                        )
                        .into())
                    }
                    n => n,
                };
                Ok((req, filter, limit))
            },
            |ctx, caller, (req, filter, limit)| {
                let page = ctx.instance.scroll(
                    target(caller, &req.namespace),
                    filter.as_ref(),
                    req.after_doc_id,
                    limit,
                    req.with_vector,
                    req.with_payload.unwrap_or(true),
                )?;
                Ok(pb::ScrollResponse {
                    points: page
                        .points
                        .into_iter()
                        .map(convert::record_to_wire)
                        .collect(),
                    next_after_doc_id: page.next_after,
                })
            },
        )
        .await
    }

    async fn list_namespaces(
        &self,
        request: Request<pb::ListNamespacesRequest>,
    ) -> Result<Response<pb::ListNamespacesResponse>, Status> {
        self.unary(
            Rpc::ListNamespaces,
            Scope::Read,
            DefaultDeadline::Apply,
            request,
            |_, caller, req| {
                if req.tenant == "*" {
                    caller.require(Scope::Admin, "ListNamespaces of every tenant")?;
                    Ok(None)
                } else {
                    let tenant = caller.tenant_for(&req.tenant, Rpc::ListNamespaces.name())?;
                    Ok(Some(tenant.to_owned()))
                }
            },
            |ctx, _, tenant| {
                let namespaces = ctx.instance.list_namespaces(tenant.as_deref());
                Ok(pb::ListNamespacesResponse {
                    namespaces: namespaces
                        .into_iter()
                        .map(convert::namespace_to_wire)
                        .collect(),
                })
            },
        )
        .await
    }

    async fn drop_namespace(
        &self,
        request: Request<pb::DropNamespaceRequest>,
    ) -> Result<Response<pb::DropNamespaceResponse>, Status> {
        self.unary(
            Rpc::DropNamespace,
            Scope::Write,
            DefaultDeadline::Apply,
            request,
            |_, caller, req| {
                let tenant = caller.tenant_for(&req.tenant, Rpc::DropNamespace.name())?;
                Ok((tenant.to_owned(), req.namespace))
            },
            |ctx, _, (tenant, namespace)| {
                let dropped = ctx
                    .instance
                    .drop_namespace(NamespaceRef::new(&tenant, &namespace))?;
                Ok(pb::DropNamespaceResponse { dropped })
            },
        )
        .await
    }

    async fn flush(
        &self,
        request: Request<pb::FlushRequest>,
    ) -> Result<Response<pb::FlushResponse>, Status> {
        self.unary(
            Rpc::Flush,
            Scope::Admin,
            DefaultDeadline::ClientOnly,
            request,
            |_, caller, req| {
                let tenant = caller.tenant_for(&req.tenant, Rpc::Flush.name())?;
                Ok((tenant.to_owned(), req.namespace))
            },
            |ctx, _, (tenant, namespace)| {
                let scope = (!namespace.is_empty()).then(|| NamespaceRef::new(&tenant, &namespace));
                let sealed = ctx.instance.flush(scope)?;
                Ok(pb::FlushResponse {
                    segments_sealed: sealed as u64,
                })
            },
        )
        .await
    }

    async fn create_snapshot(
        &self,
        request: Request<pb::CreateSnapshotRequest>,
    ) -> Result<Response<pb::CreateSnapshotResponse>, Status> {
        self.unary(
            Rpc::CreateSnapshot,
            Scope::Admin,
            DefaultDeadline::ClientOnly,
            request,
            |ctx, _, req| {
                let name = snapshot_name(req.name)?;
                let path = ctx.snapshot_dir.join(&name);
                if path.exists() {
                    return Err(Status::already_exists(format!(
                        "name: snapshot {name:?} already exists"
                    ))
                    .into());
                }
                Ok((name, path))
            },
            |ctx, _, (name, path)| {
                ctx.instance.create_snapshot(&path)?;
                tracing::info!(snapshot = %path.display(), "snapshot written");
                Ok(pb::CreateSnapshotResponse {
                    name,
                    path: path.display().to_string(),
                })
            },
        )
        .await
    }

    async fn stats(
        &self,
        request: Request<pb::StatsRequest>,
    ) -> Result<Response<pb::StatsResponse>, Status> {
        self.unary(
            Rpc::Stats,
            Scope::Read,
            DefaultDeadline::Apply,
            request,
            as_is,
            |ctx, caller, _| {
                let config = ctx.instance.config();
                let mut response = pb::StatsResponse {
                    instance: ctx.name.clone(),
                    dim: config.dim as u32,
                    metric: config.metric.to_string(),
                    ..Default::default()
                };
                if caller.has(Scope::Admin) {
                    let stats = ctx.instance.stats();
                    response.namespaces = stats.namespaces as u64;
                    response.points = stats.points;
                    response.hot_points = stats.hot_points;
                    response.cold_segments = stats.cold_segments as u64;
                    response.cold_bytes = stats.cold_bytes;
                    response.hot_bytes = stats.hot_bytes;
                    response.query_cache = Some(convert::cache_to_wire(stats.query_cache));
                    response.point_cache = Some(convert::cache_to_wire(stats.point_cache));
                    response.fsyncs = stats.sync.fsyncs;
                    response.synced_writes = stats.sync.synced_writes;
                    response.fsync_seconds = stats.sync.fsync_seconds;
                    response.unreachable_points = stats.unreachable_points;
                } else {
                    for info in ctx.instance.list_namespaces(Some(&caller.tenant)) {
                        response.namespaces += 1;
                        response.points += info.points;
                        response.hot_points += info.hot_points;
                        response.cold_segments += info.cold_segments as u64;
                        response.cold_bytes += info.cold_bytes;
                    }
                }
                Ok(response)
            },
        )
        .await
    }

    async fn get_config(
        &self,
        request: Request<pb::GetConfigRequest>,
    ) -> Result<Response<pb::GetConfigResponse>, Status> {
        self.unary(
            Rpc::GetConfig,
            Scope::Admin,
            DefaultDeadline::Apply,
            request,
            as_is,
            |ctx, _, _| {
                let config = ctx.instance.config();
                Ok(pb::GetConfigResponse {
                    instance: ctx.name.clone(),
                    dim: config.dim as u32,
                    metric: config.metric.to_string(),
                    config_toml: ctx.config_toml.as_str().to_owned(),
                })
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("5u"), Some(Duration::from_micros(5)));
        assert_eq!(parse_grpc_timeout("m"), None);
        assert_eq!(parse_grpc_timeout("12x"), None);
        assert_eq!(parse_grpc_timeout("123456789S"), None, "at most 8 digits");
    }

    #[test]
    fn snapshot_names_are_checked() {
        assert!(snapshot_name("nightly-1".into()).is_ok());
        assert!(snapshot_name(String::new())
            .unwrap()
            .starts_with("snapshot-"));
        for bad in ["../etc", ".hidden", "a/b", &"x".repeat(65)] {
            let err = snapshot_name(bad.to_owned()).unwrap_err();
            assert!(err.message().starts_with("name:"), "{bad}");
        }
    }
}
