//! Counters of what a cache did, for metrics and benchmarks.

/// What an [`AdaptiveCache`](super::AdaptiveCache) has done since it was
/// created. Every entry that leaves the cache for lack of room is counted
/// once, either as an eviction or as a rejection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// `get` calls that found their key.
    pub hits: u64,
    /// `get` calls that did not.
    pub misses: u64,
    /// `insert` calls that added a key not already cached (updates of a
    /// cached key are not counted).
    pub insertions: u64,
    /// Cached entries removed to make room: main-space victims that lost to
    /// a more frequent newcomer, and entries dropped when no contest was
    /// possible.
    pub evictions: u64,
    /// Entries refused: newcomers leaving the admission window that lost the
    /// frequency contest, and inserts heavier than the whole capacity.
    pub rejected: u64,
}

impl CacheStats {
    /// `hits + misses`.
    pub fn requests(&self) -> u64 {
        self.hits + self.misses
    }

    /// Fraction of `get` calls that hit, in `[0, 1]`; 0 before any request.
    pub fn hit_ratio(&self) -> f64 {
        match self.requests() {
            0 => 0.0,
            requests => self.hits as f64 / requests as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_ratio_is_hits_over_requests_and_zero_when_idle() {
        assert_eq!(CacheStats::default().hit_ratio(), 0.0);
        let stats = CacheStats {
            hits: 3,
            misses: 1,
            ..CacheStats::default()
        };
        assert_eq!(stats.requests(), 4);
        assert_eq!(stats.hit_ratio(), 0.75);
    }
}
