//! The requests and answers of the [`crate::storage::Instance`] API.

use std::fmt;

use crate::distance::Metric;
use crate::error::EngineError;
use crate::payload::{Filter, Payload};

/// Longest tenant or namespace name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;
/// Most points one write call may carry.
pub const MAX_BATCH_POINTS: usize = 10_000;
/// Most points one scroll page may return.
pub const MAX_SCROLL_LIMIT: usize = 10_000;

/// A namespace, addressed by its owner and its name. Namespaces of different
/// tenants never see each other, even when their names are equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NamespaceRef<'a> {
    /// The tenant that owns the namespace.
    pub tenant: &'a str,
    /// The namespace's name within the tenant.
    pub namespace: &'a str,
}

impl<'a> NamespaceRef<'a> {
    /// `tenant`'s namespace `namespace`.
    pub fn new(tenant: &'a str, namespace: &'a str) -> Self {
        Self { tenant, namespace }
    }

    /// Checks both names: 1 to [`MAX_NAME_BYTES`] bytes of `[A-Za-z0-9_.-]`.
    pub fn validate(&self) -> Result<(), EngineError> {
        validate_name("tenant", self.tenant)?;
        validate_name("namespace", self.namespace)
    }
}

impl fmt::Display for NamespaceRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tenant, self.namespace)
    }
}

/// Checks a name of the data model (tenant, namespace, snapshot): 1 to
/// [`MAX_NAME_BYTES`] bytes of `[A-Za-z0-9_.-]`; errors name `field`.
pub fn validate_name(field: &'static str, name: &str) -> Result<(), EngineError> {
    let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(EngineError::InvalidParameter {
            field,
            reason: format!("must be 1..={MAX_NAME_BYTES} bytes, got {}", name.len()),
        });
    }
    if let Some(bad) = name.chars().find(|&c| !valid_char(c)) {
        return Err(EngineError::InvalidParameter {
            field,
            reason: format!("{bad:?} is not allowed; use letters, digits, '_', '-' and '.'"),
        });
    }
    Ok(())
}

/// One point to insert or replace (upsert).
#[derive(Debug, Clone, PartialEq)]
pub struct PointWrite {
    /// The point's id within its namespace.
    pub doc_id: u64,
    /// The vector (the instance's dimension; finite; non-zero for cosine).
    pub vector: Vec<f32>,
    /// Metadata stored with the point, filterable.
    pub payload: Payload,
}

/// How [`crate::storage::Instance::update_payload`] combines payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadUpdate {
    /// Set the given keys, keep the others.
    Merge,
    /// Replace the whole payload.
    Replace,
}

/// A stored point as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct PointRecord {
    /// The point's id within its namespace.
    pub doc_id: u64,
    /// The stored vector (unit length under cosine), when asked for.
    pub vector: Option<Vec<f32>>,
    /// The payload, when asked for.
    pub payload: Option<Payload>,
}

/// A nearest-neighbour query.
#[derive(Debug, Clone, Copy)]
pub struct SearchRequest<'a> {
    /// The query vector.
    pub vector: &'a [f32],
    /// How many hits to return (1..=10,000).
    pub k: usize,
    /// Candidate list size of graph searches; the instance default when
    /// `None`. Raised to `k` when smaller.
    pub ef: Option<usize>,
    /// Only points whose payload matches are returned.
    pub filter: Option<&'a Filter>,
    /// Only hits with at least this score are returned.
    pub min_score: Option<f32>,
    /// Return each hit's payload.
    pub with_payload: bool,
    /// Return each hit's stored vector.
    pub with_vector: bool,
}

impl<'a> SearchRequest<'a> {
    /// The `k` nearest points to `vector`, no filter, ids and scores only.
    pub fn new(vector: &'a [f32], k: usize) -> Self {
        Self {
            vector,
            k,
            ef: None,
            filter: None,
            min_score: None,
            with_payload: false,
            with_vector: false,
        }
    }
}

/// One search hit.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    /// The point's id within its namespace.
    pub doc_id: u64,
    /// Similarity, higher is closer: cosine similarity (cosine), inner product
    /// (dot), negated squared distance (L2). See [`score_of`].
    pub score: f32,
    /// Distance, lower is closer (see [`crate::distance`]).
    pub distance: f32,
    /// The payload, when asked for.
    pub payload: Option<Payload>,
    /// The stored vector, when asked for.
    pub vector: Option<Vec<f32>>,
}

/// How a search was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueryPlan {
    /// Every candidate point was scored (small namespace or selective filter).
    Exact,
    /// Filter-aware HNSW traversal of every segment.
    Graph,
}

impl QueryPlan {
    /// `exact` or `graph`.
    pub fn name(self) -> &'static str {
        match self {
            QueryPlan::Exact => "exact",
            QueryPlan::Graph => "graph",
        }
    }
}

/// The answer to a search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchResponse {
    /// Hits, best first.
    pub hits: Vec<SearchHit>,
    /// How the planner answered it.
    pub plan: QueryPlan,
    /// Points the filter matched (the live count without a filter).
    pub candidates: u64,
    /// Served from the query-result cache.
    pub cached: bool,
}

/// One page of [`crate::storage::Instance::scroll`].
#[derive(Debug, Clone, PartialEq)]
pub struct ScrollPage {
    /// Points in ascending doc id order.
    pub points: Vec<PointRecord>,
    /// Pass as `after` to read the next page; `None` at the end.
    pub next_after: Option<u64>,
}

/// What a namespace holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceInfo {
    /// Owner.
    pub tenant: String,
    /// Name.
    pub namespace: String,
    /// Live points.
    pub points: u64,
    /// Points in the hot tier (including segments being sealed).
    pub hot_points: u64,
    /// Cold segments.
    pub cold_segments: usize,
    /// Bytes of the cold segments' files.
    pub cold_bytes: u64,
    /// Live points of each cold segment, oldest segment first.
    pub cold_segment_points: Vec<u64>,
}

/// The similarity score of a distance under `metric` (higher is closer).
pub fn score_of(metric: Metric, distance: f32) -> f32 {
    match metric {
        Metric::Cosine => 1.0 - distance,
        Metric::Dot | Metric::L2 => -distance,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_errors_name_the_field() {
        assert!(NamespaceRef::new("acme", "failure-episodes_v1.2")
            .validate()
            .is_ok());
        let err = NamespaceRef::new("", "x").validate().unwrap_err();
        assert!(err.to_string().starts_with("tenant"), "{err}");
        let err = NamespaceRef::new("a", "has space").validate().unwrap_err();
        assert!(err.to_string().starts_with("namespace"), "{err}");
        let long = "n".repeat(MAX_NAME_BYTES + 1);
        assert!(NamespaceRef::new("a", &long).validate().is_err());
    }

    #[test]
    fn scores_are_higher_for_closer_points() {
        for metric in [Metric::Cosine, Metric::Dot, Metric::L2] {
            assert!(score_of(metric, 0.1) > score_of(metric, 0.2));
        }
        assert_eq!(score_of(Metric::Cosine, 0.25), 0.75);
    }
}
