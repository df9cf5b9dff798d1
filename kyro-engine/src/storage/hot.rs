//! [`HotSegment`]: the in-memory, mutable segment that takes a namespace's
//! writes. Every point in it is also in the RocksDB write log (`hot` column
//! family), from which it is rebuilt at open.

use std::collections::HashMap;

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::config::InstanceConfig;
use crate::error::EngineError;
use crate::hnsw::HnswIndex;
use crate::index::{IndexConfig, PreparedVector, Quantization, VectorIndex};

/// One hot segment: an HNSW graph whose labels are point ids, and the doc id
/// of every point it ever held.
pub(crate) struct HotSegment {
    index: HnswIndex,
    /// Point id → doc id. Entries stay after a delete, so that a sealed copy
    /// exported before the delete can still name the doc (it is masked by the
    /// namespace's live set).
    docs: RwLock<HashMap<u32, u64>>,
    /// The lowest point id this segment can hold: its write-log records are
    /// the key range `[first_point, end)` of the namespace, `end` being the
    /// next point id when the segment stopped taking writes.
    first_point: u32,
    /// Writers hold this shared while they insert into `index` (outside the
    /// namespace's write lock); the sealer takes it exclusively before it
    /// exports the segment, so that no accepted insert is missed.
    writers: RwLock<()>,
}

impl HotSegment {
    /// An empty segment whose first point will be `first_point`.
    pub(crate) fn new(config: &InstanceConfig, first_point: u32) -> Result<Self, EngineError> {
        Ok(Self {
            index: HnswIndex::new(config.index_config())?,
            docs: RwLock::new(HashMap::new()),
            first_point,
            writers: RwLock::new(()),
        })
    }

    /// A segment built in bulk from `(point, doc, vector)` rows (recovery of
    /// the write log, and merges of cold segments) with the graph settings
    /// `index` (a merge asks for the `i8` copy its cold segment will be
    /// walked with, see [`InstanceConfig::cold_index_config`]), on `threads`
    /// threads; gives up with [`EngineError::Cancelled`] once `stop` returns
    /// true.
    pub(crate) fn build(
        index: IndexConfig,
        first_point: u32,
        rows: &[(u32, u64)],
        vectors: &[f32],
        threads: usize,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<Self, EngineError> {
        let labels: Vec<u64> = rows.iter().map(|&(point, _)| u64::from(point)).collect();
        let index = if rows.is_empty() {
            // Nothing to calibrate an `i8` copy on.
            HnswIndex::new(IndexConfig {
                quantization: Quantization::None,
                ..index
            })?
        } else {
            HnswIndex::build_parallel_until(index, vectors, Some(&labels), threads, &|_| {}, stop)?
        };
        Ok(Self {
            index,
            docs: RwLock::new(rows.iter().copied().collect()),
            first_point,
            writers: RwLock::new(()),
        })
    }

    /// See the field.
    pub(crate) fn first_point(&self) -> u32 {
        self.first_point
    }

    /// Shared gate of a writer (see the field `writers`).
    pub(crate) fn writer_gate(&self) -> RwLockReadGuard<'_, ()> {
        self.writers.read()
    }

    /// Exclusive gate of the sealer: returns once in-flight inserts are done.
    pub(crate) fn seal_gate(&self) -> RwLockWriteGuard<'_, ()> {
        self.writers.write()
    }

    /// Inserts `point` (a fresh point id) for `doc`, its vector prepared for
    /// the instance's shape.
    pub(crate) fn insert(
        &self,
        point: u32,
        doc: u64,
        vector: &PreparedVector,
    ) -> Result<(), EngineError> {
        self.docs.write().insert(point, doc);
        self.index
            .insert_prepared(u64::from(point), vector)
            .map(|_| ())
    }

    /// Removes `point`; false when it is not (or no longer) here.
    pub(crate) fn delete(&self, point: u32) -> bool {
        self.index.delete(u64::from(point))
    }

    /// The doc id `point` was written for.
    pub(crate) fn doc_of(&self, point: u32) -> Option<u64> {
        self.docs.read().get(&point).copied()
    }

    /// The stored vector of live `point`.
    pub(crate) fn vector_of(&self, point: u32) -> Option<Vec<f32>> {
        self.index.vector_of(u64::from(point))
    }

    /// (point, doc) of its live points, in no particular order.
    pub(crate) fn live_points(&self) -> Vec<(u32, u64)> {
        self.docs
            .read()
            .iter()
            .filter(|(&point, _)| self.index.internal_id(u64::from(point)).is_some())
            .map(|(&point, &doc)| (point, doc))
            .collect()
    }

    /// Live points.
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    /// The graph, for sealing.
    pub(crate) fn index(&self) -> &HnswIndex {
        &self.index
    }

    /// Point ids of live points that the graph search cannot reach (one
    /// walk over the graph).
    pub(crate) fn unreachable_points(&self) -> Vec<u32> {
        self.index
            .unreachable_ids()
            .into_iter()
            .filter_map(|label| u32::try_from(label).ok())
            .collect()
    }

    /// Approximate bytes held in memory.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.index.memory_usage().total() + self.docs.read().capacity() * 16
    }
}
