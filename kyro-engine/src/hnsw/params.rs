//! The graph's construction parameters. A leaf: the index configuration
//! (`index.rs`) names them without depending on the graph.

use crate::error::EngineError;
use crate::index::MAX_EF;

/// Graph construction parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HnswParams {
    /// Neighbours per node on layers ≥ 1; layer 0 keeps `2·m`.
    pub m: usize,
    /// Candidate list size while inserting. Higher builds slower, better graphs.
    pub ef_construction: usize,
    /// Seed of the level generator: a single-threaded build with the same seed
    /// and insertion order produces the same graph.
    pub seed: u64,
    /// The `ef` at which every point must be found by a search with its own
    /// vector once a graph is complete (after a bulk build, before a seal):
    /// a point such a search misses is linked in from where the search ended
    /// ([`crate::HnswIndex::link_hard_to_find`]). The storage engine sets it
    /// to the instance's default `ef`; 0 skips the check.
    pub findable_ef: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        Self {
            m: 16,
            ef_construction: 200,
            seed: 42,
            findable_ef: 64,
        }
    }
}

impl HnswParams {
    /// Largest accepted `m`.
    pub const MAX_M: usize = 128;
    /// Largest accepted `ef_construction`.
    pub const MAX_EF_CONSTRUCTION: usize = 10_000;

    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), EngineError> {
        if !(2..=Self::MAX_M).contains(&self.m) {
            return Err(EngineError::InvalidParameter {
                field: "m",
                reason: format!("must be in 2..={}, got {}", Self::MAX_M, self.m),
            });
        }
        if self.ef_construction == 0 || self.ef_construction > Self::MAX_EF_CONSTRUCTION {
            return Err(EngineError::InvalidParameter {
                field: "ef_construction",
                reason: format!(
                    "must be in 1..={}, got {}",
                    Self::MAX_EF_CONSTRUCTION,
                    self.ef_construction
                ),
            });
        }
        // A search `ef`: bounded as searches are.
        if self.findable_ef > MAX_EF {
            return Err(EngineError::InvalidParameter {
                field: "findable_ef",
                reason: format!("must be at most {MAX_EF}, got {}", self.findable_ef),
            });
        }
        Ok(())
    }
}
