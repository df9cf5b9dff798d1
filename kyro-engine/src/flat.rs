//! [`FlatIndex`]: exact search by scanning every point. For small collections,
//! where a graph costs more than it saves, and as the ground truth in tests.

use std::collections::HashMap;

use parking_lot::RwLock;

use crate::distance::prepared_distance;
use crate::error::EngineError;
use crate::index::{keep_k_nearest, IndexConfig, MemoryUsage, Neighbor, SearchParams, VectorIndex};

/// An exact index: every search scores every live point.
pub struct FlatIndex {
    config: IndexConfig,
    /// All points; one lock, since inserts are cheap appends and a scan reads
    /// everything anyway.
    points: RwLock<FlatPoints>,
}

#[derive(Default)]
struct FlatPoints {
    /// Prepared vectors, `dim` per slot.
    vectors: Vec<f32>,
    /// External id per slot; `None` for a free slot.
    labels: Vec<Option<u64>>,
    slot_of: HashMap<u64, u32>,
    free: Vec<u32>,
}

impl FlatIndex {
    /// An empty exact index. The graph and quantisation settings of `config`
    /// are ignored.
    pub fn new(config: IndexConfig) -> Result<Self, EngineError> {
        config.validate()?;
        Ok(Self {
            config,
            points: RwLock::new(FlatPoints::default()),
        })
    }

    fn scan(
        &self,
        query: &[f32],
        k: usize,
        keep: impl Fn(u32) -> bool,
    ) -> Result<Vec<Neighbor>, EngineError> {
        let prepared = self.config.prepare(query)?;
        let points = self.points.read();
        let dim = self.config.dim;
        let mut scored: Vec<Neighbor> = points
            .labels
            .iter()
            .enumerate()
            .filter_map(|(slot, label)| {
                let id = (*label)?;
                keep(slot as u32).then(|| Neighbor {
                    id,
                    distance: prepared_distance(
                        self.config.metric,
                        &prepared,
                        &points.vectors[slot * dim..(slot + 1) * dim],
                    ),
                })
            })
            .collect();
        keep_k_nearest(&mut scored, k);
        Ok(scored)
    }
}

impl VectorIndex for FlatIndex {
    fn config(&self) -> &IndexConfig {
        &self.config
    }

    fn insert(&self, id: u64, vector: &[f32]) -> Result<u32, EngineError> {
        let prepared = self.config.prepare(vector)?;
        let dim = self.config.dim;
        let mut points = self.points.write();
        let slot = match points
            .slot_of
            .get(&id)
            .copied()
            .or_else(|| points.free.pop())
        {
            Some(slot) => slot,
            None => {
                let slot = u32::try_from(points.labels.len()).map_err(|_| {
                    EngineError::CapacityExceeded {
                        capacity: u32::MAX as usize,
                    }
                })?;
                points.labels.push(None);
                points.vectors.resize((slot as usize + 1) * dim, 0.0);
                slot
            }
        };
        let start = slot as usize * dim;
        points.vectors[start..start + dim].copy_from_slice(&prepared);
        points.labels[slot as usize] = Some(id);
        points.slot_of.insert(id, slot);
        Ok(slot)
    }

    fn delete(&self, id: u64) -> bool {
        let mut points = self.points.write();
        match points.slot_of.remove(&id) {
            Some(slot) => {
                points.labels[slot as usize] = None;
                points.free.push(slot);
                true
            }
            None => false,
        }
    }

    fn search_with(
        &self,
        query: &[f32],
        params: &SearchParams<'_>,
    ) -> Result<Vec<Neighbor>, EngineError> {
        params.validate()?;
        match params.filter {
            Some(filter) => self.scan(query, params.k, filter),
            None => self.scan(query, params.k, |_| true),
        }
    }

    fn search_candidates(
        &self,
        query: &[f32],
        k: usize,
        candidates: &[u32],
    ) -> Result<Vec<Neighbor>, EngineError> {
        SearchParams::new(k, k).validate()?;
        let mut wanted = candidates.to_vec();
        wanted.sort_unstable();
        self.scan(query, k, |slot| wanted.binary_search(&slot).is_ok())
    }

    fn internal_id(&self, id: u64) -> Option<u32> {
        self.points.read().slot_of.get(&id).copied()
    }

    fn len(&self) -> usize {
        self.points.read().slot_of.len()
    }

    fn memory_usage(&self) -> MemoryUsage {
        let points = self.points.read();
        MemoryUsage {
            vector_bytes: points.vectors.capacity() * 4,
            graph_bytes: points.labels.capacity() * 16
                + points.slot_of.capacity() * 17
                + points.free.capacity() * 4,
        }
    }
}
