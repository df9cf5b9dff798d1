//! What every vector index in the engine shares: configuration, the search
//! request and its answer, and the [`VectorIndex`] trait that the graph index
//! ([`crate::HnswIndex`]) and the exact index ([`crate::FlatIndex`]) implement.

use std::fmt;
use std::str::FromStr;

use crate::distance::{prepare_vector, Metric};
use crate::error::EngineError;
use crate::hnsw::params::HnswParams;

/// Largest `k` a search may ask for.
pub const MAX_K: usize = 10_000;
/// Largest `ef` a search may ask for.
pub const MAX_EF: usize = 100_000;
/// Largest supported vector dimension.
pub const MAX_DIM: usize = 65_536;

/// How the graph is traversed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Quantization {
    /// Exact `f32` distances throughout.
    #[default]
    None,
    /// Traverse with `i8` scalar-quantised vectors, then rescore the final
    /// candidates with exact `f32` distances.
    I8,
}

impl fmt::Display for Quantization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Quantization::None => "none",
            Quantization::I8 => "i8",
        })
    }
}

impl FromStr for Quantization {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "none" | "f32" => Ok(Quantization::None),
            "i8" | "int8" => Ok(Quantization::I8),
            other => Err(EngineError::InvalidParameter {
                field: "quantization",
                reason: format!("unknown quantization {other:?}; expected none or i8"),
            }),
        }
    }
}

/// The shape of an index: its vectors and how they are compared and linked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IndexConfig {
    /// Number of components of every vector.
    pub dim: usize,
    /// How vectors are compared.
    pub metric: Metric,
    /// Graph parameters (ignored by the flat index).
    pub hnsw: HnswParams,
    /// Traversal precision (ignored by the flat index).
    pub quantization: Quantization,
}

impl IndexConfig {
    /// A configuration with default graph parameters and no quantisation.
    pub fn new(dim: usize, metric: Metric) -> Self {
        Self {
            dim,
            metric,
            hnsw: HnswParams::default(),
            quantization: Quantization::None,
        }
    }

    /// Validates `vector` for this index and returns the form it is stored
    /// and searched in (see [`crate::distance::prepare_vector`]).
    pub fn prepare(&self, vector: &[f32]) -> Result<Vec<f32>, EngineError> {
        let mut prepared = Vec::with_capacity(self.dim);
        prepare_vector(self.metric, self.dim, vector, &mut prepared)?;
        Ok(prepared)
    }

    /// [`IndexConfig::prepare`] as a [`PreparedVector`]: a query that several
    /// indexes of this shape will answer, or a vector to insert, validated
    /// and normalised once and then handed on (`search_prepared_*`,
    /// `insert_prepared`) without being checked or copied again.
    pub fn prepare_once(&self, vector: &[f32]) -> Result<PreparedVector, EngineError> {
        Ok(PreparedVector {
            vector: self.prepare(vector)?,
        })
    }

    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), EngineError> {
        if self.dim == 0 || self.dim > MAX_DIM {
            return Err(EngineError::InvalidParameter {
                field: "dim",
                reason: format!("must be in 1..={MAX_DIM}, got {}", self.dim),
            });
        }
        self.hnsw.validate()
    }
}

/// A vector validated and put in the stored form (normalised for cosine) by
/// [`IndexConfig::prepare_once`]: only indexes of the same dimension and
/// metric may be searched with it or store it.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedVector {
    vector: Vec<f32>,
}

impl PreparedVector {
    /// The prepared components.
    pub fn as_slice(&self) -> &[f32] {
        &self.vector
    }
}

/// One search answer: the point's external id and its distance (lower is
/// closer; see [`crate::distance`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbor {
    /// The id the point was inserted under.
    pub id: u64,
    /// Distance to the query.
    pub distance: f32,
}

impl Neighbor {
    /// Nearest first; equal distances by id, so that answers are
    /// deterministic.
    pub(crate) fn nearest_first(a: &Neighbor, b: &Neighbor) -> std::cmp::Ordering {
        a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id))
    }
}

/// Keeps the `k` nearest of `neighbors`, nearest first
/// ([`Neighbor::nearest_first`]).
pub(crate) fn keep_k_nearest(neighbors: &mut Vec<Neighbor>, k: usize) {
    if neighbors.len() > k {
        neighbors.select_nth_unstable_by(k, Neighbor::nearest_first);
        neighbors.truncate(k);
    }
    neighbors.sort_unstable_by(Neighbor::nearest_first);
}

/// A filter over internal ids (the `u32` slot numbers an index hands out on
/// insert). Internal ids, not external ones, so that callers can back it with
/// dense bitmaps.
pub type InternalFilter<'a> = &'a (dyn Fn(u32) -> bool + Sync);

/// A filter over external ids (labels): the storage engine's sets of allowed
/// points are kept by label, which every segment of a namespace shares.
pub type LabelFilter<'a> = &'a (dyn Fn(u64) -> bool + Sync);

/// The one way a [`LabelFilter`] becomes a filter over an index's slots:
/// `label_of` names the label stored in a slot (`None` for a slot that holds
/// none), and a slot passes when its label does.
pub fn slot_filter<'a>(
    allow: LabelFilter<'a>,
    label_of: impl Fn(u32) -> Option<u64> + Sync + 'a,
) -> impl Fn(u32) -> bool + Sync + 'a {
    move |slot| label_of(slot).is_some_and(allow)
}

/// What to search for, besides the query vector.
#[derive(Clone, Copy)]
pub struct SearchParams<'a> {
    /// How many neighbours to return.
    pub k: usize,
    /// Size of the dynamic candidate list; raised to `k` when smaller. Higher is
    /// slower and more accurate. Ignored by exact searches.
    pub ef: usize,
    /// Only points for which the filter holds are returned.
    pub filter: Option<InternalFilter<'a>>,
}

impl<'a> SearchParams<'a> {
    /// `k` neighbours with candidate list size `ef` and no filter.
    pub fn new(k: usize, ef: usize) -> Self {
        Self {
            k,
            ef,
            filter: None,
        }
    }

    /// The same request, keeping only points the filter accepts.
    pub fn with_filter(mut self, filter: InternalFilter<'a>) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Checks `k` and `ef` against their limits.
    pub fn validate(&self) -> Result<(), EngineError> {
        if self.k == 0 || self.k > MAX_K {
            return Err(EngineError::InvalidParameter {
                field: "k",
                reason: format!("must be in 1..={MAX_K}, got {}", self.k),
            });
        }
        if self.ef > MAX_EF {
            return Err(EngineError::InvalidParameter {
                field: "ef",
                reason: format!("must be at most {MAX_EF}, got {}", self.ef),
            });
        }
        Ok(())
    }
}

/// Bytes an index holds in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryUsage {
    /// Vector storage (`f32`, plus the `i8` copy when quantised).
    pub vector_bytes: usize,
    /// Everything else: links, ids, flags, locks, the id map.
    pub graph_bytes: usize,
}

impl MemoryUsage {
    /// All bytes.
    pub fn total(&self) -> usize {
        self.vector_bytes + self.graph_bytes
    }
}

/// The interface shared by the graph and the exact index.
pub trait VectorIndex: Send + Sync {
    /// The index's configuration.
    fn config(&self) -> &IndexConfig;

    /// Inserts `vector` under external id `id`, replacing any point that had
    /// that id (upsert). Returns the new point's internal id.
    fn insert(&self, id: u64, vector: &[f32]) -> Result<u32, EngineError>;

    /// Deletes the point with external id `id`; false when there was none.
    /// A deleted point is never returned by a search.
    fn delete(&self, id: u64) -> bool;

    /// The `k` nearest live points to `query` that pass the filter, nearest
    /// first.
    fn search_with(
        &self,
        query: &[f32],
        params: &SearchParams<'_>,
    ) -> Result<Vec<Neighbor>, EngineError>;

    /// Exact search restricted to the given internal ids (for filters that
    /// match few points): every candidate is scored, none is missed.
    fn search_candidates(
        &self,
        query: &[f32],
        k: usize,
        candidates: &[u32],
    ) -> Result<Vec<Neighbor>, EngineError>;

    /// The internal id of the live point with external id `id`.
    fn internal_id(&self, id: u64) -> Option<u32>;

    /// Number of live points.
    fn len(&self) -> usize;

    /// True when no live point is stored.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held in memory.
    fn memory_usage(&self) -> MemoryUsage;

    /// The `k` nearest live points to `query`, nearest first.
    fn search(&self, query: &[f32], k: usize, ef: usize) -> Result<Vec<Neighbor>, EngineError> {
        self.search_with(query, &SearchParams::new(k, ef))
    }
}
