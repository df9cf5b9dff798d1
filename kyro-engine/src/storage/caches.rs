//! The learned-frequency caches in front of the tiers (policy in
//! [`crate::cache`]):
//! - the **query-result cache**, keyed by everything that determines an
//!   answer, including the namespace's generation: every write raises the
//!   generation before it is acknowledged, so an answer cached before a write
//!   is never looked up after it (it ages out of the cache instead);
//! - the **point cache** of cold points (payload + vector), filled under the
//!   namespace's point-state read lock and invalidated under its write lock,
//!   so a fill can never put back a copy older than an invalidation.

use std::sync::Arc;

use crate::cache::AdaptiveCache;
use crate::payload::Payload;

use super::request::SearchResponse;

/// Everything a search answer depends on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct QueryKey {
    pub(crate) namespace: u32,
    pub(crate) generation: u64,
    pub(crate) k: usize,
    pub(crate) ef: usize,
    pub(crate) min_score: Option<u32>,
    pub(crate) with_payload: bool,
    pub(crate) with_vector: bool,
    /// Canonical encoding of the filter (empty without one).
    pub(crate) filter: Vec<u8>,
    /// The query's `f32` bit patterns.
    pub(crate) query: Vec<u32>,
}

impl QueryKey {
    /// Approximate bytes of the key.
    pub(crate) fn weight(&self) -> u64 {
        (64 + self.filter.len() + 4 * self.query.len()) as u64
    }
}

/// Cached search answers.
pub(crate) type QueryCache = AdaptiveCache<QueryKey, Arc<SearchResponse>>;

/// A cold point's payload and vector.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CachedPoint {
    pub(crate) payload: Payload,
    pub(crate) vector: Vec<f32>,
}

/// Cached cold points, keyed by (namespace id, point id).
pub(crate) type PointCache = AdaptiveCache<(u32, u32), Arc<CachedPoint>>;

/// Approximate bytes of a cached search answer.
pub(crate) fn response_weight(key: &QueryKey, response: &SearchResponse) -> u64 {
    key.weight()
        + response
            .hits
            .iter()
            .map(|hit| {
                48 + hit.vector.as_ref().map_or(0, |v| 4 * v.len())
                    + hit.payload.as_ref().map_or(0, |p| p.encoded_len())
            })
            .sum::<usize>() as u64
}

/// Approximate bytes of a cached point.
pub(crate) fn point_weight(point: &CachedPoint) -> u64 {
    (32 + 4 * point.vector.len() + point.payload.encoded_len()) as u64
}
