//! Reading, listing, deleting episodes, fix feedback and skills.

use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::clock;
use crate::engine::Instance;
use crate::error::ApiError;
use crate::redact::{redact, RedactionCounts};
use crate::state::AppState;
use crate::store::{EpisodeFilter, EpisodeRow, Episodes, StoredBody};

/// An episode as returned: its stored (redacted) fields plus its counters.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EpisodeView {
    pub episode_id: u64,
    /// The stored (redacted) capture fields, at the top level.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub body: StoredBody,
    pub fingerprint: String,
    pub occurrences: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub retrievals: u64,
    pub fix_successes: u64,
    pub fix_failures: u64,
    pub is_skill: bool,
}

impl EpisodeView {
    /// The view of a stored row.
    pub fn from_row(row: &EpisodeRow) -> EpisodeView {
        EpisodeView {
            episode_id: row.id,
            body: row.body.clone(),
            fingerprint: row.fingerprint.clone(),
            occurrences: row.occurrences,
            first_seen: clock::rfc3339(row.created_at),
            last_seen: clock::rfc3339(row.last_seen_at),
            retrievals: row.retrievals,
            fix_successes: row.fix_successes,
            fix_failures: row.fix_failures,
            is_skill: row.is_skill(),
        }
    }
}

/// Whether a caller may see an episode: a project-limited key sees its
/// project's only (others are 404, as if they did not exist).
fn visible(caller: &Caller, row: &EpisodeRow) -> bool {
    match &caller.project {
        Some(project) => row.project.as_deref() == Some(project.as_str()),
        None => true,
    }
}

fn not_found(id: u64) -> ApiError {
    ApiError::NotFound(format!("episode {id} does not exist"))
}

/// `GET /api/v1/episodes/{id}`.
pub async fn get(state: &AppState, caller: &Caller, id: u64) -> Result<EpisodeView, ApiError> {
    let customer_id = caller.customer.id.clone();
    let row = state
        .store
        .run_fresh(move |c| Episodes(c).get(&customer_id, id))
        .await?
        .filter(|row| visible(caller, row))
        .ok_or_else(|| not_found(id))?;
    Ok(EpisodeView::from_row(&row))
}

/// Query of `GET /api/v1/episodes`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// 1..=100 (default 20).
    pub limit: Option<u32>,
    pub tag: Option<String>,
    pub tool: Option<String>,
    pub error_class: Option<String>,
    pub project: Option<String>,
    /// RFC 3339: captured at or after.
    pub since: Option<String>,
    /// RFC 3339: captured at or before.
    pub until: Option<String>,
}

/// A page of episodes.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EpisodePage {
    pub episodes: Vec<EpisodeView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/episodes`.
pub async fn list(
    state: &AppState,
    caller: &Caller,
    query: ListQuery,
) -> Result<EpisodePage, ApiError> {
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::validation("limit", "must be 1..=100"));
    }
    let after = match &query.cursor {
        None => 0,
        Some(text) => text
            .parse::<u64>()
            .map_err(|_| ApiError::validation("cursor", "not a cursor from a previous page"))?,
    };
    let time = |field: &str, text: &Option<String>| -> Result<Option<i64>, ApiError> {
        text.as_deref()
            .map(|t| {
                clock::parse_rfc3339(t)
                    .ok_or_else(|| ApiError::validation(field, "expected an RFC 3339 time"))
            })
            .transpose()
    };
    let project = match (&caller.project, query.project) {
        (Some(own), Some(other)) if *own != other => {
            return Err(ApiError::Forbidden(format!(
                "this key is limited to project {own:?}"
            )))
        }
        (Some(own), _) => Some(own.clone()),
        (None, requested) => requested,
    };
    let filter = EpisodeFilter {
        tag: query.tag,
        tool: query.tool,
        error_class: query.error_class,
        project,
        since: time("since", &query.since)?,
        until: time("until", &query.until)?,
    };
    let customer_id = caller.customer.id.clone();
    let rows = state
        .store
        .run_fresh(move |c| Episodes(c).list(&customer_id, &filter, after, limit + 1))
        .await?;
    let more = rows.len() > limit as usize;
    let episodes: Vec<EpisodeView> = rows
        .iter()
        .take(limit as usize)
        .map(EpisodeView::from_row)
        .collect();
    let next_cursor = more
        .then(|| episodes.last().map(|e| e.episode_id.to_string()))
        .flatten();
    Ok(EpisodePage {
        episodes,
        next_cursor,
    })
}

/// `DELETE /api/v1/episodes/{id}`: removed from the engine (both
/// instances) first, then from the database; a 503 leaves it in place so
/// that a retry completes the erasure.
pub async fn delete(state: &AppState, caller: &Caller, id: u64) -> Result<(), ApiError> {
    let customer_id = caller.customer.id.clone();
    let row = state
        .store
        .run(move |c| Episodes(c).get(&customer_id, id))
        .await?
        .filter(|row| visible(caller, row))
        .ok_or_else(|| not_found(id))?;
    let tenant = caller.customer.id.as_str();
    state
        .engine
        .delete(Instance::Text, tenant, vec![id])
        .await?;
    if row.has_image {
        state
            .engine
            .delete(Instance::Image, tenant, vec![id])
            .await?;
    }
    let customer_id = caller.customer.id.clone();
    state
        .store
        .run(move |c| Episodes(c).remove(&customer_id, id))
        .await?;
    Ok(())
}

/// Whether an applied fix worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FixOutcome {
    Success,
    StillFailed,
}

/// `POST /api/v1/validate_fix`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ValidateFixRequest {
    pub episode_id: u64,
    pub outcome: FixOutcome,
    /// The suggestion that was applied (text, or `true`/`false`).
    #[serde(default)]
    pub applied_suggestion: serde_json::Value,
    #[serde(default)]
    pub notes: Option<String>,
}

/// The episode's fix record after the feedback.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ValidateFixResponse {
    pub episode_id: u64,
    pub outcome: FixOutcome,
    pub fix_successes: u64,
    pub fix_failures: u64,
    pub success_rate: f64,
    pub is_skill: bool,
}

/// Runs `POST /api/v1/validate_fix`.
pub async fn validate_fix(
    state: &AppState,
    caller: &Caller,
    request: ValidateFixRequest,
) -> Result<ValidateFixResponse, ApiError> {
    if let Some(notes) = &request.notes {
        if notes.chars().count() > 10_000 {
            return Err(ApiError::validation("notes", "at most 10000 characters"));
        }
        // Notes are not stored; redacted so that nothing of them reaches a log.
        let _ = redact(notes, &mut RedactionCounts::new());
    }
    match &request.applied_suggestion {
        serde_json::Value::Null | serde_json::Value::Bool(_) => {}
        serde_json::Value::String(s) if s.chars().count() <= 10_000 => {}
        _ => {
            return Err(ApiError::validation(
                "applied_suggestion",
                "expected a string of at most 10000 characters or a boolean",
            ))
        }
    }
    let id = request.episode_id;
    let customer_id = caller.customer.id.clone();
    let existing = state
        .store
        .run(move |c| Episodes(c).get(&customer_id, id))
        .await?
        .filter(|row| visible(caller, row))
        .ok_or_else(|| not_found(id))?;
    let customer_id = caller.customer.id.clone();
    let success = request.outcome == FixOutcome::Success;
    let row = state
        .store
        .run(move |c| Episodes(c).record_fix(&customer_id, existing.id, success))
        .await?
        .ok_or_else(|| not_found(id))?;
    let attempts = row.fix_successes + row.fix_failures;
    Ok(ValidateFixResponse {
        episode_id: row.id,
        outcome: request.outcome,
        fix_successes: row.fix_successes,
        fix_failures: row.fix_failures,
        success_rate: if attempts == 0 {
            0.0
        } else {
            row.fix_successes as f64 / attempts as f64
        },
        is_skill: row.is_skill(),
    })
}

/// A skill: an episode whose fix worked ≥ 3 times at a rate ≥ 0.9.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Skill {
    pub episode_id: u64,
    pub goal: String,
    pub resolution: Option<String>,
    pub error_class: String,
    pub tools: Vec<String>,
    pub project: Option<String>,
    pub fix_successes: u64,
    pub attempts: u64,
    pub success_rate: f64,
}

/// The skills of a customer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SkillList {
    pub skills: Vec<Skill>,
}

/// `GET /api/v1/skills`.
pub async fn skills(state: &AppState, caller: &Caller) -> Result<SkillList, ApiError> {
    let customer_id = caller.customer.id.clone();
    let project = caller.project.clone();
    let rows = state
        .store
        .run_fresh(move |c| Episodes(c).skills(&customer_id, project.as_deref()))
        .await?;
    let skills = rows
        .into_iter()
        .map(|row| {
            let attempts = row.fix_successes + row.fix_failures;
            let body = row.body.summary();
            Skill {
                episode_id: row.id,
                goal: body.goal.unwrap_or_default(),
                resolution: body.resolution,
                error_class: row.error_class.clone(),
                tools: row.tools.clone(),
                project: row.project.clone(),
                fix_successes: row.fix_successes,
                attempts,
                success_rate: row.fix_successes as f64 / attempts.max(1) as f64,
            }
        })
        .collect();
    Ok(SkillList { skills })
}
