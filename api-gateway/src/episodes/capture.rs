//! Capturing an episode: validate, redact, fingerprint, embed, fold repeats
//! into the episode they repeat, charge the quota and write — all or
//! nothing.
//!
//! The write is three steps. (1) One SQLite transaction claims the
//! idempotency key, checks and charges the quota, takes the episode id and
//! writes the row `pending`. (2) The engine stores the vector. (3) A second
//! transaction turns the row `live` and stores the idempotency response. If
//! (2) fails, (1) is undone (row removed, quota refunded, key released)
//! before the 503. If the process dies between the steps, `recover` undoes
//! (1) at the next start; a pending row is never visible.

use std::collections::{BTreeMap, HashMap};

use axum::http::StatusCode;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::auth::Caller;
use crate::clock;
use crate::embed::action_text;
use crate::engine::{self, Instance};
use crate::episodes::model::{CaptureRequest, StoredEpisode};
use crate::error::ApiError;
use crate::extract::decode;
use crate::redact::{redact, redact_json, RedactionCounts};
use crate::signature::signature;
use crate::state::AppState;
use crate::store::{
    AuditEntry, AuditLog, Customers, EpisodeRow, Episodes, Idempotency, QuotaCharge, StoreError,
    StoredBody, Usage,
};

/// Cosine similarity at or above which a capture with the same error class
/// and failing tool (in the same project) is folded into an existing
/// episode as a near-duplicate.
pub const NEAR_DUPLICATE_SIMILARITY: f32 = 0.95;

/// What a capture answered.
pub struct CaptureOutcome {
    pub status: StatusCode,
    /// The JSON body.
    pub body: String,
    pub quota_warning: Option<String>,
    /// Answered from an earlier request with the same idempotency key.
    pub replayed: bool,
}

/// The caller's monthly quota after this capture.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct QuotaView {
    used: u64,
    limit: Option<u64>,
}

/// The error's normalised form and its fingerprint.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SignatureView {
    fingerprint: String,
    normalized: String,
}

/// The answer of a capture.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct CaptureResponse {
    episode_id: u64,
    /// `created`, or `linked` when folded into an existing episode.
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    linked_to: Option<u64>,
    /// `same_error_signature` or `near_duplicate`.
    #[serde(skip_serializing_if = "Option::is_none")]
    link_reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    similarity: Option<f32>,
    occurrences: u64,
    project: Option<String>,
    error_signature: SignatureView,
    /// What redaction removed: counts per kind, never the values.
    redactions: RedactionCounts,
    quota: QuotaView,
}

/// Where a capture goes after the embedding and the duplicate checks.
enum Fold {
    New,
    Into {
        id: u64,
        reason: &'static str,
        similarity: Option<f32>,
    },
}

enum Reserved {
    Replay(u16, String),
    Conflict(String),
    Exhausted {
        used: u64,
        quota: u64,
    },
    Folded {
        body: String,
        charge: QuotaCharge,
    },
    New {
        id: u64,
        charge: QuotaCharge,
        month: String,
    },
}

fn valid_idempotency_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::validation(
            "Idempotency-Key",
            "must be 1..=255 visible ASCII characters",
        ));
    }
    Ok(())
}

fn warning(charge: &QuotaCharge) -> Option<String> {
    match charge {
        QuotaCharge::Charged { warning, .. } => warning.clone(),
        QuotaCharge::Exhausted { .. } => None,
    }
}

fn quota_view(charge: &QuotaCharge) -> QuotaView {
    match charge {
        QuotaCharge::Charged { used, quota, .. } => QuotaView {
            used: *used,
            limit: *quota,
        },
        QuotaCharge::Exhausted { used, quota } => QuotaView {
            used: *used,
            limit: Some(*quota),
        },
    }
}

/// The project a write lands in: the key's, when the key is limited to one
/// (naming another is a 403), else the body's.
pub fn write_project(
    caller: &Caller,
    requested: Option<String>,
) -> Result<Option<String>, ApiError> {
    let requested = requested.map(|p| p.trim().to_owned());
    match (&caller.project, requested) {
        (Some(own), Some(other)) if *own != other => Err(ApiError::Forbidden(format!(
            "this key is limited to project {own:?}"
        ))),
        (Some(own), _) => Ok(Some(own.clone())),
        (None, requested) => Ok(requested),
    }
}

/// Runs `POST /api/v1/capture` for `caller` on the raw `body`.
pub async fn capture(
    state: &AppState,
    caller: &Caller,
    body: &[u8],
    idempotency_key: Option<String>,
) -> Result<CaptureOutcome, ApiError> {
    let request: CaptureRequest = decode(body)?;
    let valid = request.validate()?;
    if let Some(key) = &idempotency_key {
        valid_idempotency_key(key)?;
    }
    let customer = caller.customer.clone();
    let project = write_project(caller, valid.request.project.clone())?;
    let body_sha256 = hex::encode(Sha256::digest(body));

    // A retry of a finished request is answered before any work.
    if let Some(key) = idempotency_key.clone() {
        let customer_id = customer.id.clone();
        let record = state
            .store
            .run(move |c| Idempotency(c).get(&customer_id, &key))
            .await?;
        if let Some(record) = record {
            return replay_or_conflict(record, &body_sha256);
        }
    }

    // Redact before anything is embedded, stored or logged.
    let r = &valid.request;
    let mut counts = RedactionCounts::new();
    let mut red = |t: &str| redact(t, &mut counts);
    let goal = red(&r.goal);
    let tool_chain: Vec<String> = r.tool_chain.iter().map(|t| red(t.trim())).collect();
    let actions_taken: Vec<String> = r.actions_taken.iter().map(|a| red(a)).collect();
    let error_trace = red(&r.error_trace);
    let code_state_diff = r.code_state_diff.as_deref().map(&mut red);
    let resolution = r.resolution.as_deref().map(&mut red);
    let tags: Vec<String> = r.tags.iter().map(|t| red(t.trim())).collect();
    let branch = r.branch.as_deref().map(|b| red(b.trim()));
    let preconditions: BTreeMap<String, String> = valid
        .preconditions
        .iter()
        .map(|(k, v)| (red(k), red(v)))
        .collect();
    let resolved_in: BTreeMap<String, String> = r
        .resolved_in
        .iter()
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut environment = serde_json::Value::Object(r.environment_info.clone());
    redact_json(&mut environment, &mut counts);
    let environment_info = match environment {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    let error_class = r.error_class.as_str();
    let sig = signature(error_class, &error_trace);
    let last_tool = tool_chain.last().cloned().unwrap_or_default();
    let last_action = actions_taken.last().cloned().unwrap_or_default();
    let now = clock::now();

    let vector = state
        .embedder
        .embed(&action_text(&goal, &last_action, &last_tool))
        .await?;

    // Repeats: the same error signature first, then a near-duplicate.
    let fold = {
        let customer_id = customer.id.clone();
        let fingerprint = sig.fingerprint.clone();
        let project_key = project.clone();
        let same = state
            .store
            .run(move |c| {
                Episodes(c).by_fingerprint(&customer_id, &fingerprint, project_key.as_deref())
            })
            .await?;
        match same {
            Some(row) => Fold::Into {
                id: row.id,
                reason: "same_error_signature",
                similarity: None,
            },
            None => {
                let mut conditions = vec![
                    engine::eq("error_class", error_class),
                    engine::eq("tools", &last_tool),
                ];
                conditions.push(match &project {
                    Some(p) => engine::eq("project", p),
                    None => engine::negate(engine::exists("project")),
                });
                let hits = state
                    .engine
                    .search(
                        Instance::Text,
                        &customer.id,
                        vector.clone(),
                        1,
                        Some(NEAR_DUPLICATE_SIMILARITY),
                        engine::all_of(conditions),
                    )
                    .await?;
                match hits.first() {
                    Some(hit) => Fold::Into {
                        id: hit.episode_id,
                        reason: "near_duplicate",
                        similarity: Some(hit.similarity),
                    },
                    None => Fold::New,
                }
            }
        }
    };

    let screenshot_sha256 = valid
        .screenshot
        .as_ref()
        .map(|b| hex::encode(Sha256::digest(b)));
    let stored = StoredEpisode {
        goal,
        tool_chain: tool_chain.clone(),
        actions_taken,
        error_trace,
        error_class: error_class.to_owned(),
        code_state_diff,
        environment_info,
        preconditions,
        resolution,
        time_to_resolve_seconds: r.time_to_resolve_seconds,
        tags: tags.clone(),
        severity: r.severity,
        project: project.clone(),
        branch: branch.clone(),
        resolved_in,
        error_signature: sig.normalized.clone(),
        screenshot_sha256,
    };
    let image_vector = r.image_embedding.clone();
    let month = clock::month_of(now);
    let row = EpisodeRow {
        customer_id: customer.id.clone(),
        id: 0,
        project: project.clone(),
        branch,
        error_class: error_class.to_owned(),
        tools: tool_chain.clone(),
        tags: tags.clone(),
        fingerprint: sig.fingerprint.clone(),
        body: serde_json::to_value(&stored)
            .and_then(|v| StoredBody::from_value(&v))
            .map_err(ApiError::internal)?,
        has_image: image_vector.is_some(),
        created_at: now,
        last_seen_at: now,
        occurrences: 1,
        retrievals: 0,
        fix_successes: 0,
        fix_failures: 0,
        charged_month: month.clone(),
    };
    let response_for = {
        let sig = sig.clone();
        let counts = counts.clone();
        let project = project.clone();
        move |id: u64, fold: &Fold, occurrences: u64, charge: &QuotaCharge| -> String {
            let (status, linked_to, link_reason, similarity) = match fold {
                Fold::New => ("created", None, None, None),
                Fold::Into {
                    id,
                    reason,
                    similarity,
                } => ("linked", Some(*id), Some(*reason), *similarity),
            };
            let response = CaptureResponse {
                episode_id: id,
                status,
                linked_to,
                link_reason,
                similarity,
                occurrences,
                project: project.clone(),
                error_signature: SignatureView {
                    fingerprint: sig.fingerprint.clone(),
                    normalized: sig.normalized.clone(),
                },
                redactions: counts.clone(),
                quota: quota_view(charge),
            };
            serde_json::to_string(&response).unwrap_or_else(|_| "{}".to_owned())
        }
    };

    // Step 1: one transaction.
    let reserved = {
        let customer = customer.clone();
        let key = idempotency_key.clone();
        let body_sha256 = body_sha256.clone();
        let month = month.clone();
        let response_for = response_for.clone();
        state
            .store
            .run(move |c| -> Result<Reserved, StoreError> {
                let tx = c.transaction()?;
                if let Some(key) = &key {
                    if let Some(record) = Idempotency(&tx).get(&customer.id, key)? {
                        return Ok(match (record.status, record.response) {
                            (Some(status), Some(body)) if record.body_sha256 == body_sha256 => {
                                Reserved::Replay(status, body)
                            }
                            _ if record.body_sha256 != body_sha256 => Reserved::Conflict(
                                "this Idempotency-Key was used with another body".to_owned(),
                            ),
                            _ => Reserved::Conflict(
                                "a request with this Idempotency-Key is still in progress"
                                    .to_owned(),
                            ),
                        });
                    }
                    Idempotency(&tx).begin(&customer.id, key, &body_sha256, now)?;
                }
                let charge = Usage(&tx).charge_capture(&customer.id, customer.tier, &month)?;
                if let QuotaCharge::Exhausted { used, quota } = charge {
                    return Ok(Reserved::Exhausted { used, quota });
                }
                if let Fold::Into { id, .. } = &fold {
                    if let Some(existing) = Episodes(&tx).get(&customer.id, *id)? {
                        Episodes(&tx).record_occurrence(&customer.id, *id, now)?;
                        let body = response_for(*id, &fold, existing.occurrences + 1, &charge);
                        if let Some(key) = &key {
                            Idempotency(&tx).complete(&customer.id, key, 200, &body)?;
                        }
                        tx.commit()?;
                        return Ok(Reserved::Folded { body, charge });
                    }
                }
                let id = Customers(&tx).next_episode_id(&customer.id)?;
                let mut row = row;
                row.id = id;
                Episodes(&tx).insert_pending(&row)?;
                tx.commit()?;
                Ok(Reserved::New { id, charge, month })
            })
            .await?
    };
    let (id, charge, month) = match reserved {
        Reserved::Replay(status, body) => {
            return Ok(CaptureOutcome {
                status: StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                body,
                quota_warning: None,
                replayed: true,
            })
        }
        Reserved::Conflict(message) => return Err(ApiError::Conflict(message)),
        Reserved::Exhausted { used, quota } => {
            metrics::counter!("gateway_quota_denied_total").increment(1);
            let entry = AuditEntry {
                id: 0,
                at: now,
                actor: Some(caller.key_id.clone()),
                customer_id: Some(customer.id.clone()),
                action: "request.denied".to_owned(),
                target: Some("capture".to_owned()),
                address: caller.address.clone(),
                outcome: "quota_exceeded".to_owned(),
            };
            let _ = state.store.run(move |c| AuditLog(c).append(&entry)).await;
            return Err(ApiError::QuotaExceeded { limit: quota, used });
        }
        Reserved::Folded { body, charge } => {
            return Ok(CaptureOutcome {
                status: StatusCode::OK,
                body,
                quota_warning: warning(&charge),
                replayed: false,
            })
        }
        Reserved::New { id, charge, month } => (id, charge, month),
    };

    // Step 2: the engine.
    let mut payload = HashMap::new();
    payload.insert("error_class".to_owned(), engine::string(error_class));
    payload.insert("tools".to_owned(), engine::strings(&tool_chain));
    payload.insert("tags".to_owned(), engine::strings(&tags));
    payload.insert("created_at".to_owned(), engine::integer(now));
    payload.insert("fingerprint".to_owned(), engine::string(&sig.fingerprint));
    if let Some(p) = &project {
        payload.insert("project".to_owned(), engine::string(p));
    }
    let mut written = state
        .engine
        .insert(Instance::Text, &customer.id, id, vector, payload.clone())
        .await;
    if written.is_ok() {
        if let Some(image) = image_vector {
            written = state
                .engine
                .insert(Instance::Image, &customer.id, id, image, payload)
                .await;
        }
    }
    if let Err(status) = written {
        undo_reservation(state, &customer.id, id, &month, idempotency_key.clone()).await;
        return Err(status.into());
    }

    // Step 3: visible.
    let body = response_for(id, &Fold::New, 1, &charge);
    {
        let customer_id = customer.id.clone();
        let key = idempotency_key.clone();
        let body = body.clone();
        state
            .store
            .run(move |c| {
                let tx = c.transaction()?;
                Episodes(&tx).mark_live(&customer_id, id)?;
                if let Some(key) = &key {
                    Idempotency(&tx).complete(&customer_id, key, 201, &body)?;
                }
                tx.commit()?;
                Ok(())
            })
            .await?;
    }
    metrics::counter!("gateway_captures_total").increment(1);
    Ok(CaptureOutcome {
        status: StatusCode::CREATED,
        body,
        quota_warning: warning(&charge),
        replayed: false,
    })
}

fn replay_or_conflict(
    record: crate::store::IdempotencyRecord,
    body_sha256: &str,
) -> Result<CaptureOutcome, ApiError> {
    if record.body_sha256 != body_sha256 {
        return Err(ApiError::Conflict(
            "this Idempotency-Key was used with another body".to_owned(),
        ));
    }
    match (record.status, record.response) {
        (Some(status), Some(body)) => Ok(CaptureOutcome {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            body,
            quota_warning: None,
            replayed: true,
        }),
        _ => Err(ApiError::Conflict(
            "a request with this Idempotency-Key is still in progress".to_owned(),
        )),
    }
}

/// Undoes step 1 of a capture whose engine write failed.
async fn undo_reservation(
    state: &AppState,
    customer_id: &str,
    id: u64,
    month: &str,
    key: Option<String>,
) {
    let customer_id = customer_id.to_owned();
    let month = month.to_owned();
    let result = state
        .store
        .run(move |c| {
            let tx = c.transaction()?;
            Episodes(&tx).remove(&customer_id, id)?;
            Usage(&tx).refund_capture(&customer_id, &month)?;
            if let Some(key) = &key {
                Idempotency(&tx).abandon(&customer_id, key)?;
            }
            tx.commit()?;
            Ok(())
        })
        .await;
    if let Err(e) = result {
        // The row stays pending (invisible); recovery removes it later.
        tracing::error!(error = %e, episode_id = id, "rolling back a failed capture");
    }
}

/// A capture a crash left pending: (customer, episode id, charged month,
/// has an image vector).
pub type PendingCapture = (String, u64, String, bool);

/// The captures a previous run left pending, and releases idempotency keys
/// whose request never finished. Call before serving: at that point every
/// pending row and unfinished key belongs to a dead process.
pub async fn pending_at_start(state: &AppState) -> Result<Vec<PendingCapture>, ApiError> {
    Ok(state
        .store
        .run(|c| {
            c.execute("DELETE FROM idempotency_keys WHERE status IS NULL", [])?;
            Episodes(c).pending()
        })
        .await?)
}

/// Rolls back `pending` captures: removes their vectors from the engine,
/// then their rows, and refunds their quota. Returns the ones that could not
/// be rolled back yet (engine down); they stay invisible until a later try.
pub async fn roll_back(state: &AppState, pending: Vec<PendingCapture>) -> Vec<PendingCapture> {
    let mut left = Vec::new();
    for (customer_id, id, month, has_image) in pending {
        let text = state
            .engine
            .delete(Instance::Text, &customer_id, vec![id])
            .await;
        let image = if has_image {
            state
                .engine
                .delete(Instance::Image, &customer_id, vec![id])
                .await
        } else {
            Ok(0)
        };
        if text.is_err() || image.is_err() {
            left.push((customer_id, id, month, has_image));
            continue;
        }
        let (c2, m2) = (customer_id.clone(), month.clone());
        let result = state
            .store
            .run(move |c| {
                let tx = c.transaction()?;
                Episodes(&tx).remove(&c2, id)?;
                Usage(&tx).refund_capture(&c2, &m2)?;
                tx.commit()?;
                Ok(())
            })
            .await;
        match result {
            Ok(()) => {
                tracing::info!(customer = %customer_id, episode_id = id, "rolled back an unfinished capture")
            }
            Err(e) => {
                tracing::warn!(error = %e, "rolling back an unfinished capture");
                left.push((customer_id, id, month, has_image));
            }
        }
    }
    left
}
