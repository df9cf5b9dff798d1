//! The read path of a namespace: searches fanned out over every segment and
//! merged, point reads, and the point cache in front of cold points.

use std::collections::HashSet;
use std::sync::Arc;

use roaring::RoaringBitmap;

use super::caches::{point_weight, CachedPoint, PointCache};
use super::config::InstanceConfig;
use super::error::StorageError;
use super::namespace::{Namespace, SegmentSet};
use super::planner::plan;
use super::request::{score_of, QueryPlan, SearchHit, SearchRequest, SearchResponse};
use super::store::Store;
use crate::error::EngineError;
use crate::index::{LabelFilter, Neighbor, PreparedVector, SearchParams, MAX_EF};
use crate::payload::Payload;

/// A search request checked and prepared once for every segment it visits:
/// the query validated and put in the stored form (normalised for cosine),
/// `ef` resolved, the filter validated and encoded (its key in the
/// filter-result and query caches).
pub(crate) struct PreparedSearch<'r> {
    pub(crate) request: &'r SearchRequest<'r>,
    pub(crate) query: PreparedVector,
    /// The effective breadth: the request's or the default, at least `k`.
    pub(crate) ef: usize,
    /// Canonical encoding of the filter (empty without one).
    pub(crate) filter_key: Vec<u8>,
}

/// Checks a search request's fields and prepares it ([`PreparedSearch`]).
pub(crate) fn prepare_search<'r>(
    config: &InstanceConfig,
    request: &'r SearchRequest<'r>,
) -> Result<PreparedSearch<'r>, EngineError> {
    let query = config.index_config().prepare_once(request.vector)?;
    let ef = request.ef.unwrap_or(config.default_ef);
    if ef == 0 || ef > MAX_EF {
        return Err(EngineError::InvalidParameter {
            field: "ef",
            reason: format!("must be in 1..={MAX_EF}, got {ef}"),
        });
    }
    SearchParams::new(request.k, ef).validate()?;
    if let Some(min_score) = request.min_score {
        if !min_score.is_finite() {
            return Err(EngineError::InvalidParameter {
                field: "min_score",
                reason: format!("must be finite, got {min_score}"),
            });
        }
    }
    let filter_key = match request.filter {
        Some(filter) => {
            filter.validate()?;
            filter.encode()
        }
        None => Vec::new(),
    };
    Ok(PreparedSearch {
        request,
        query,
        ef: ef.max(request.k),
        filter_key,
    })
}

/// Answers a prepared search over the namespace's current segments.
pub(crate) fn search(
    store: &Store,
    config: &InstanceConfig,
    namespace: &Namespace,
    point_cache: Option<&PointCache>,
    prepared: &PreparedSearch<'_>,
) -> Result<SearchResponse, StorageError> {
    let request = prepared.request;
    let set = namespace.segment_set();
    let points = namespace.points.read();
    let allowed: Option<Arc<RoaringBitmap>> = request
        .filter
        .map(|filter| namespace.matching(&points, filter, &prepared.filter_key));
    let live = points.live.len();
    let candidates = allowed.as_ref().map_or(live, |a| a.len());
    let chosen = plan(&config.planner, live, allowed.as_ref().map(|a| a.len()));
    let universe: &RoaringBitmap = allowed.as_deref().unwrap_or(&points.live);
    let (k, ef, query) = (request.k, prepared.ef, &prepared.query);

    let mut found: Vec<Neighbor> = Vec::new();
    match chosen {
        QueryPlan::Exact => {
            for segment in set.segments() {
                found.extend(match &allowed {
                    Some(allowed) => segment.score(query, k, &mut allowed.iter()),
                    None => segment.score_live(query, k, &points.live),
                });
            }
        }
        QueryPlan::Graph => {
            let allow_fn = |label: u64| u32::try_from(label).is_ok_and(|p| universe.contains(p));
            let allow: LabelFilter<'_> = &allow_fn;
            for segment in set.segments() {
                let checked = allowed.is_some() || segment.needs_live_filter();
                found.extend(segment.search(query, k, ef, checked.then_some(allow)));
            }
        }
    }
    found.sort_unstable_by(Neighbor::nearest_first);
    let mut seen = HashSet::with_capacity(k);
    found.retain(|n| seen.insert(n.id));
    found.truncate(k);

    let mut hits = Vec::with_capacity(found.len());
    for neighbor in found {
        let score = score_of(config.metric, neighbor.distance);
        if request.min_score.is_some_and(|min| score < min) {
            continue;
        }
        let Ok(point) = u32::try_from(neighbor.id) else {
            continue;
        };
        let Some(doc_id) = set.doc_of(point) else {
            continue;
        };
        let (payload, vector) = if request.with_payload || request.with_vector {
            let (payload, vector) = read_point_parts(
                store,
                namespace,
                &set,
                point_cache,
                point,
                request.with_payload,
            )?;
            (
                request.with_payload.then_some(payload),
                if request.with_vector { vector } else { None },
            )
        } else {
            (None, None)
        };
        hits.push(SearchHit {
            doc_id,
            score,
            distance: neighbor.distance,
            payload,
            vector,
        });
    }
    drop(points);
    Ok(SearchResponse {
        hits,
        plan: chosen,
        candidates,
        cached: false,
    })
}

/// The payload (when `with_payload`) and vector of live `point`, through the
/// point cache for cold points. The caller holds the namespace's point-state
/// read lock, which orders fills after invalidations (see `caches.rs`).
pub(crate) fn read_point_parts(
    store: &Store,
    namespace: &Namespace,
    set: &SegmentSet,
    point_cache: Option<&PointCache>,
    point: u32,
    with_payload: bool,
) -> Result<(Payload, Option<Vec<f32>>), StorageError> {
    let key = (namespace.id, point);
    if let Some(cached) = point_cache.and_then(|cache| cache.get(&key)) {
        return Ok((cached.payload.clone(), Some(cached.vector.clone())));
    }
    let vector = set.vector_of(point);
    let cold = vector.as_ref().is_some_and(|(_, cold)| *cold);
    let payload = if with_payload || (cold && point_cache.is_some()) {
        namespace.payload_of(store, point)?
    } else {
        Payload::default()
    };
    let vector = vector.map(|(v, _)| v);
    if let (Some(cache), true, Some(vector)) = (point_cache, cold, vector.as_ref()) {
        let entry = CachedPoint {
            payload: payload.clone(),
            vector: vector.clone(),
        };
        let weight = point_weight(&entry);
        cache.insert(key, Arc::new(entry), weight);
    }
    Ok((payload, vector))
}
