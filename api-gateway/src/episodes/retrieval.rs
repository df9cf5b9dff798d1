//! Search and reflect: embed the query, ask the engine for candidates in the
//! caller's project first and then across the customer's other projects,
//! rank them (see `ranking`), and for reflect decide.
//!
//! Reflect thresholds (on the cosine similarity of the closest stored
//! failure, query and episode embedded with the same layout):
//! ≥ 0.90 `block`, ≥ 0.75 `warn`, ≥ 0.60 `hint`, else `proceed`; one level
//! lower when that episode is stale by version or its preconditions clearly
//! differ from `current_state` (precondition component < 0.3). When the
//! engine or the model cannot be reached the answer is a 503, never a
//! silent `proceed`.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::clock;
use crate::embed::action_text;
use crate::engine::{self, Hit, Instance};
use crate::episodes::model::{check_image_embedding, ErrorClass, KeyValues};
use crate::episodes::ranking::{self, rank, Components, Ranked, RankingWeights};
use crate::episodes::view::EpisodeView;
use crate::error::ApiError;
use crate::redact::{redact, RedactionCounts};
use crate::state::AppState;
use crate::store::{EpisodeRow, Episodes};

/// Similarity at or above which reflect blocks.
pub const BLOCK_SIMILARITY: f32 = 0.90;
/// … warns.
pub const WARN_SIMILARITY: f32 = 0.75;
/// … hints.
pub const HINT_SIMILARITY: f32 = 0.60;
/// A precondition component below this lowers the decision by one level.
pub const PRECONDITION_MISMATCH: f32 = 0.3;

/// Filters of a search.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchFilters {
    pub tool: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub error_class: Option<ErrorClass>,
    /// RFC 3339 or a date: captured at or after.
    pub since: Option<String>,
    /// Captured at or before.
    pub until: Option<String>,
}

fn default_k() -> i64 {
    10
}

/// `POST /api/v1/search`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct SearchRequest {
    /// The query text (may be empty when `image_embedding` is given).
    #[serde(default)]
    pub goal: String,
    #[serde(default)]
    #[schema(schema_with = crate::api_schema::key_values)]
    pub current_state: KeyValues,
    /// 1..=100 (default 10).
    #[serde(default = "default_k")]
    pub k: i64,
    /// 0..=1 (default 0).
    #[serde(default)]
    pub min_similarity: f32,
    #[serde(default)]
    pub filters: SearchFilters,
    pub ranking_weights: Option<RankingWeights>,
    /// Search the image instance with this 512-dim vector instead.
    pub image_embedding: Option<Vec<f32>>,
    /// Look in this project first (a key limited to a project: only there).
    pub project: Option<String>,
}

/// Whether a search leaves a trace in the customer's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accounting {
    /// The customer's own search: one search in its usage, one retrieval
    /// per returned episode (the popularity that `usage` ranks by).
    Counted,
    /// An operator looking from the admin page: nothing is counted, so that
    /// looking does not change the usage shown or the ranking looked at.
    Uncounted,
}

/// Where a result was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MatchedIn {
    /// The caller's project.
    Project,
    /// Another project of the customer.
    OtherProject,
    /// No project was named: anywhere in the customer's episodes.
    Customer,
}

/// One search result.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SearchResult {
    pub episode_id: u64,
    pub score: f32,
    pub components: Components,
    pub explanation: String,
    pub matched_in: MatchedIn,
    pub is_skill: bool,
    pub demoted: Option<String>,
    pub episode: EpisodeView,
}

/// The answer of a search.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SearchResponse {
    pub results: Vec<SearchResult>,
    /// What redaction removed from the query (counts per kind).
    pub redactions: RedactionCounts,
}

fn check_goal(field: &str, text: &str, max: usize) -> Result<(), ApiError> {
    let n = text.chars().count();
    if n == 0 || n > max {
        return Err(ApiError::validation(
            field,
            format!("must be 1..={max} characters, got {n}"),
        ));
    }
    Ok(())
}

/// The project a read looks in first (a project-limited key: only there).
fn read_project(
    caller: &Caller,
    requested: Option<String>,
) -> Result<(Option<String>, bool), ApiError> {
    match (&caller.project, requested.map(|p| p.trim().to_owned())) {
        (Some(own), Some(other)) if *own != other => Err(ApiError::Forbidden(format!(
            "this key is limited to project {own:?}"
        ))),
        (Some(own), _) => Ok((Some(own.clone()), true)),
        (None, requested) => Ok((requested, false)),
    }
}

/// What to ask the engine for.
struct CandidateQuery {
    instance: Instance,
    vector: Vec<f32>,
    k: u32,
    min_similarity: Option<f32>,
    conditions: Vec<kyro_proto::v1::Filter>,
    /// Look in this project first.
    project: Option<String>,
    /// … and only there (a project-limited key).
    only_project: bool,
}

/// Candidates from the engine: the project's first, then the others'.
async fn candidates(
    state: &AppState,
    caller: &Caller,
    query: CandidateQuery,
) -> Result<Vec<(Hit, MatchedIn)>, ApiError> {
    let CandidateQuery {
        instance,
        vector,
        k,
        min_similarity,
        conditions,
        project,
        only_project,
    } = query;
    let tenant = caller.customer.id.as_str();
    let Some(project) = project.as_deref() else {
        let hits = state
            .engine
            .search(
                instance,
                tenant,
                vector,
                k,
                min_similarity,
                engine::all_of(conditions),
            )
            .await?;
        return Ok(hits.into_iter().map(|h| (h, MatchedIn::Customer)).collect());
    };
    let mut own = conditions.clone();
    own.push(engine::eq("project", project));
    let own_search = state.engine.search(
        instance,
        tenant,
        vector.clone(),
        k,
        min_similarity,
        engine::all_of(own),
    );
    if only_project {
        let hits = own_search.await?;
        return Ok(hits.into_iter().map(|h| (h, MatchedIn::Project)).collect());
    }
    let mut others = conditions;
    others.push(engine::negate(engine::eq("project", project)));
    let other_search = state.engine.search(
        instance,
        tenant,
        vector,
        k,
        min_similarity,
        engine::all_of(others),
    );
    let (own_hits, other_hits) = tokio::join!(own_search, other_search);
    Ok(own_hits?
        .into_iter()
        .map(|h| (h, MatchedIn::Project))
        .chain(
            other_hits?
                .into_iter()
                .map(|h| (h, MatchedIn::OtherProject)),
        )
        .collect())
}

/// Ranks candidates: the project's results first, each group skills first
/// then by score; at most `k`. Counts a retrieval of each returned episode
/// and the query in the customer's usage, unless `Uncounted` (in memory,
/// written in batches: see `store::tallies`). One trip to the store: the
/// rows are read and ranked while it is held (ranking a hundred rows is
/// microseconds; a second hand-off to the blocking pool per search was not).
#[allow(clippy::too_many_arguments)]
async fn rank_candidates(
    state: &AppState,
    caller: &Caller,
    hits: Vec<(Hit, MatchedIn)>,
    current: &BTreeMap<String, String>,
    weights: &RankingWeights,
    k: usize,
    reflect: bool,
    accounting: Accounting,
) -> Result<Vec<(Ranked, MatchedIn)>, ApiError> {
    let customer_id = caller.customer.id.clone();
    let current = current.clone();
    let weights = *weights;
    let now = clock::now();
    let ranked = state
        .store
        .run(move |c| {
            let ids: Vec<u64> = hits.iter().map(|(h, _)| h.episode_id).collect();
            let rows = Episodes(c).get_many(&customer_id, &ids)?;
            Ok(rank_rows(rows, hits, &current, &weights, k, now))
        })
        .await?;
    if accounting == Accounting::Counted {
        let returned: Vec<u64> = ranked.iter().map(|(r, _)| r.row.id).collect();
        state.store.count_query(
            &caller.customer.id,
            &clock::month_of(now),
            reflect,
            &returned,
        );
    }
    Ok(ranked)
}

/// Orders the hits whose rows exist: the project's group first, each group
/// by [`ranking::sort`]; at most `k`.
fn rank_rows(
    mut rows: HashMap<u64, EpisodeRow>,
    hits: Vec<(Hit, MatchedIn)>,
    current: &BTreeMap<String, String>,
    weights: &RankingWeights,
    k: usize,
    now: i64,
) -> Vec<(Ranked, MatchedIn)> {
    let mut groups: [Vec<(Ranked, MatchedIn)>; 2] = [Vec::new(), Vec::new()];
    for (hit, matched) in hits {
        // Each episode once, so its row can move into the ranking; a row
        // that is missing (pending or deleted meanwhile) is never shown.
        let Some(row) = rows.remove(&hit.episode_id) else {
            continue;
        };
        let group = usize::from(matched == MatchedIn::OtherProject);
        groups[group].push((rank(row, hit.similarity, current, weights, now), matched));
    }
    let mut out = Vec::with_capacity(k);
    for mut group in groups {
        group.sort_by(|(a, _), (b, _)| ranking::order(a, b));
        out.extend(group.into_iter().take(k - out.len()));
    }
    out
}

/// Runs `POST /api/v1/search`.
pub async fn search(
    state: &AppState,
    caller: &Caller,
    request: SearchRequest,
) -> Result<SearchResponse, ApiError> {
    search_with(state, caller, request, Accounting::Counted).await
}

/// A search, counted or not (the admin page's searches are not).
pub async fn search_with(
    state: &AppState,
    caller: &Caller,
    request: SearchRequest,
    accounting: Accounting,
) -> Result<SearchResponse, ApiError> {
    if !(1..=100).contains(&request.k) {
        return Err(ApiError::validation(
            "k",
            format!("must be 1..=100, got {}", request.k),
        ));
    }
    if !(0.0..=1.0).contains(&request.min_similarity) {
        return Err(ApiError::validation(
            "min_similarity",
            "must be within 0..=1",
        ));
    }
    let weights = request.ranking_weights.unwrap_or_default().normalised()?;
    let current = request.current_state.normalise("current_state")?;
    let (project, only_project) = read_project(caller, request.project.clone())?;
    let filters = &request.filters;
    let mut conditions = Vec::new();
    if let Some(tool) = &filters.tool {
        conditions.push(engine::eq("tools", tool.trim()));
    }
    for tag in &filters.tags {
        conditions.push(engine::eq("tags", tag.trim()));
    }
    if let Some(class) = filters.error_class {
        conditions.push(engine::eq("error_class", class.as_str()));
    }
    let bound = |field: &str, text: &Option<String>| -> Result<Option<i64>, ApiError> {
        text.as_deref()
            .map(|t| {
                clock::parse_rfc3339(t).ok_or_else(|| {
                    ApiError::validation(format!("filters.{field}"), "expected an RFC 3339 time")
                })
            })
            .transpose()
    };
    let since = bound("since", &filters.since)?;
    let until = bound("until", &filters.until)?;
    conditions.extend(engine::range("created_at", since, until));

    let mut redactions = RedactionCounts::new();
    let (instance, vector) = match &request.image_embedding {
        Some(vector) => {
            check_image_embedding("image_embedding", vector)?;
            (Instance::Image, vector.clone())
        }
        None => {
            check_goal("goal", &request.goal, 2_000)?;
            let goal = redact(&request.goal, &mut redactions);
            (Instance::Text, state.embedder.embed(&goal).await?)
        }
    };
    let k = request.k as usize;
    // Ranking may reorder: fetch a few more candidates than asked.
    let fetch = (k * 3).clamp(10, 300) as u32;
    let min = (request.min_similarity > 0.0).then_some(request.min_similarity);
    let hits = candidates(
        state,
        caller,
        CandidateQuery {
            instance,
            vector,
            k: fetch,
            min_similarity: min,
            conditions,
            project,
            only_project,
        },
    )
    .await?;
    let ranked = rank_candidates(
        state, caller, hits, &current, &weights, k, false, accounting,
    )
    .await?;
    let results = ranked
        .into_iter()
        .map(|(r, matched_in)| SearchResult {
            episode_id: r.row.id,
            score: r.score,
            components: r.components,
            explanation: r.explanation,
            matched_in,
            is_skill: r.row.is_skill(),
            demoted: r.demoted,
            episode: EpisodeView::from_row(&r.row),
        })
        .collect();
    Ok(SearchResponse {
        results,
        redactions,
    })
}

/// `POST /api/v1/reflect`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ReflectRequest {
    pub goal: String,
    pub proposed_action: String,
    pub tool: String,
    #[serde(default)]
    #[schema(schema_with = crate::api_schema::key_values)]
    pub current_state: KeyValues,
    pub project: Option<String>,
}

/// The gate's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Block,
    Warn,
    Hint,
    Proceed,
}

impl Decision {
    fn lower(self) -> Decision {
        match self {
            Decision::Block => Decision::Warn,
            Decision::Warn => Decision::Hint,
            Decision::Hint | Decision::Proceed => Decision::Proceed,
        }
    }

    fn from_similarity(similarity: f32) -> Decision {
        if similarity >= BLOCK_SIMILARITY {
            Decision::Block
        } else if similarity >= WARN_SIMILARITY {
            Decision::Warn
        } else if similarity >= HINT_SIMILARITY {
            Decision::Hint
        } else {
            Decision::Proceed
        }
    }
}

/// One episode reflect matched.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MatchedEpisode {
    pub episode_id: u64,
    pub similarity: f32,
    pub score: f32,
    pub explanation: String,
    pub matched_in: MatchedIn,
    pub resolution: Option<String>,
    pub is_skill: bool,
    pub demoted: Option<String>,
}

/// The answer of reflect.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReflectResponse {
    pub decision: Decision,
    pub confidence: f32,
    pub rationale: String,
    pub matched_episodes: Vec<MatchedEpisode>,
    pub suggested_action: Option<String>,
}

/// Runs `POST /api/v1/reflect`.
pub async fn reflect(
    state: &AppState,
    caller: &Caller,
    request: ReflectRequest,
) -> Result<ReflectResponse, ApiError> {
    check_goal("goal", &request.goal, 2_000)?;
    check_goal("proposed_action", &request.proposed_action, 2_000)?;
    check_goal("tool", request.tool.trim(), 200)?;
    let current = request.current_state.normalise("current_state")?;
    let (project, only_project) = read_project(caller, request.project.clone())?;
    let mut counts = RedactionCounts::new();
    let text = action_text(
        &redact(&request.goal, &mut counts),
        &redact(&request.proposed_action, &mut counts),
        &redact(request.tool.trim(), &mut counts),
    );
    let vector = state.embedder.embed(&text).await?;
    let hits = candidates(
        state,
        caller,
        CandidateQuery {
            instance: Instance::Text,
            vector,
            k: 10,
            min_similarity: Some(HINT_SIMILARITY * 0.8),
            conditions: Vec::new(),
            project,
            only_project,
        },
    )
    .await?;
    let weights = RankingWeights::default();
    let ranked = rank_candidates(
        state,
        caller,
        hits,
        &current,
        &weights,
        5,
        true,
        Accounting::Counted,
    )
    .await?;
    // The decision follows the closest stored failure.
    let closest = ranked.iter().max_by(|(a, _), (b, _)| {
        let key = |r: &Ranked| (r.demoted.is_none(), r.components.similarity);
        let (ka, kb) = (key(a), key(b));
        ka.0.cmp(&kb.0).then(ka.1.total_cmp(&kb.1))
    });
    let (decision, confidence, rationale, suggested_action) = match closest {
        None => (
            Decision::Proceed,
            1.0,
            "no similar failure is on record".to_owned(),
            None,
        ),
        Some((best, matched_in)) => {
            let similarity = best.components.similarity;
            let mut decision = Decision::from_similarity(similarity);
            let mut why = format!(
                "episode {} ({}, seen {}×) is {:.0}% similar",
                best.row.id,
                best.row.error_class,
                best.row.occurrences,
                similarity * 100.0
            );
            if *matched_in == MatchedIn::OtherProject {
                why.push_str(" (from another project)");
            }
            if let Some(reason) = &best.demoted {
                decision = decision.lower();
                why.push_str(&format!("; lowered: {reason}"));
            } else if best.components.precondition < PRECONDITION_MISMATCH {
                decision = decision.lower();
                why.push_str("; lowered: its preconditions differ from the current state");
            }
            let resolution = best.resolution.clone().filter(|r| !r.is_empty());
            let suggestion = match decision {
                Decision::Proceed => None,
                _ => resolution.or_else(|| {
                    Some(format!(
                        "this action failed before (episode {}); change the approach before retrying",
                        best.row.id
                    ))
                }),
            };
            let confidence = match decision {
                Decision::Proceed => 1.0 - similarity,
                _ => similarity,
            };
            (decision, confidence, why, suggestion)
        }
    };
    let matched_episodes = ranked
        .iter()
        .take(3)
        .map(|(r, matched_in)| MatchedEpisode {
            episode_id: r.row.id,
            similarity: r.components.similarity,
            score: r.score,
            explanation: r.explanation.clone(),
            matched_in: *matched_in,
            resolution: r.resolution.clone(),
            is_skill: r.row.is_skill(),
            demoted: r.demoted.clone(),
        })
        .collect();
    metrics::counter!("gateway_reflect_decisions_total", "decision" => format!("{decision:?}").to_lowercase())
        .increment(1);
    Ok(ReflectResponse {
        decision,
        confidence: confidence.clamp(0.0, 1.0),
        rationale,
        matched_episodes,
        suggested_action,
    })
}
