//! Replaying request traces through cache policies, for `kyro-bench cache`:
//! KyroDB's [`AdaptiveCache`], plain LRU (the `lru` crate) and moka
//! (`moka::sync::Cache`, TinyLFU admission), all of the same size in
//! entries, every entry weighing 1. Each request is a `get`; a miss is
//! followed by an `insert`, as a read-through cache does.
//!
//! Hit ratios are counted here, from what `get` returned, the same way for
//! every policy.

use std::collections::hash_map::DefaultHasher;
use std::hash::BuildHasherDefault;
use std::num::NonZeroUsize;
use std::path::Path;

use anyhow::Context;
use kyro_engine::AdaptiveCache;
use serde::{Deserialize, Serialize};

/// A fixed hasher (SipHash with zero keys) for our cache and moka, so that a
/// run is reproducible: the default per-process random seeds would move the
/// sketch collisions, and the hit ratios with them, by a few hundredths of a
/// point between runs.
type FixedHasher = BuildHasherDefault<DefaultHasher>;

/// How often moka's pending reads and writes are applied. Moka buffers them
/// in bounded channels (a few hundred entries) and drops read records when
/// they fill, which would deprive its frequency sketch of data; applying them
/// every 64 requests keeps every record.
const MOKA_MAINTENANCE_INTERVAL: usize = 64;

/// A cache policy the benchmark compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// KyroDB's [`AdaptiveCache`] (W-TinyLFU with hill climbing).
    Kyro,
    /// Least recently used, from the `lru` crate.
    Lru,
    /// `moka::sync::Cache`.
    Moka,
}

impl Policy {
    /// Every policy, in report order.
    pub const ALL: [Policy; 3] = [Policy::Kyro, Policy::Lru, Policy::Moka];

    /// The report name: `kyro`, `lru`, `moka`.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Kyro => "kyro",
            Policy::Lru => "lru",
            Policy::Moka => "moka",
        }
    }
}

/// Replays `trace` through a fresh cache of `policy` holding `entries`
/// entries (at least 1); returns the hit ratio.
pub fn replay(policy: Policy, trace: &[u64], entries: u64) -> f64 {
    let entries = entries.max(1);
    let hits = match policy {
        Policy::Kyro => replay_kyro(trace, entries),
        Policy::Lru => replay_lru(trace, entries),
        Policy::Moka => replay_moka(trace, entries),
    };
    if trace.is_empty() {
        0.0
    } else {
        hits as f64 / trace.len() as f64
    }
}

fn replay_kyro(trace: &[u64], entries: u64) -> u64 {
    let cache: AdaptiveCache<u64, u64, FixedHasher> =
        AdaptiveCache::with_hasher(entries, FixedHasher::default());
    let mut hits = 0;
    for &key in trace {
        if cache.get(&key).is_some() {
            hits += 1;
        } else {
            cache.insert(key, key, 1);
        }
    }
    hits
}

fn replay_lru(trace: &[u64], entries: u64) -> u64 {
    let capacity = NonZeroUsize::new(entries as usize).unwrap_or(NonZeroUsize::MIN);
    let mut cache = lru::LruCache::new(capacity);
    let mut hits = 0;
    for &key in trace {
        if cache.get(&key).is_some() {
            hits += 1;
        } else {
            cache.put(key, key);
        }
    }
    hits
}

fn replay_moka(trace: &[u64], entries: u64) -> u64 {
    let cache: moka::sync::Cache<u64, u64, FixedHasher> = moka::sync::Cache::builder()
        .max_capacity(entries)
        .build_with_hasher(FixedHasher::default());
    let mut hits = 0;
    for (i, &key) in trace.iter().enumerate() {
        if cache.get(&key).is_some() {
            hits += 1;
        } else {
            cache.insert(key, key);
        }
        if (i + 1) % MOKA_MAINTENANCE_INTERVAL == 0 {
            cache.run_pending_tasks();
        }
    }
    cache.run_pending_tasks();
    hits
}

/// One measured point: a policy's hit ratio on a trace at a cache size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheRun {
    /// `zipf-0.8`, `zipf-1.0`, `zipf-1.2` or `shifting`.
    pub trace: String,
    /// Cache size as a percentage of the number of keys.
    pub size_pct: f64,
    /// Cache size in entries.
    pub entries: u64,
    /// `kyro`, `lru` or `moka`.
    pub policy: String,
    /// Hits over requests, in `[0, 1]`.
    pub hit_ratio: f64,
}

/// The result of `kyro-bench cache`. Key names are a contract with anyone
/// reading these files: add keys, do not rename them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheReport {
    /// Distinct keys the traces draw from.
    pub keys: usize,
    /// Requests per trace.
    pub requests: usize,
    /// Seed of the first trace (trace `i` uses `seed + i`).
    pub seed: u64,
    /// One entry per (trace, size, policy), in report order.
    pub runs: Vec<CacheRun>,
}

impl CacheReport {
    /// Writes the report as pretty JSON.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let json = serde_json::to_string_pretty(self).context("serialising report")?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_of_one_repeated_key_hits_all_but_once_for_every_policy() {
        let trace = vec![7u64; 1_000];
        for policy in Policy::ALL {
            assert_eq!(replay(policy, &trace, 10), 0.999, "{}", policy.name());
        }
    }

    #[test]
    fn a_cycle_larger_than_the_cache_never_hits_under_lru() {
        let trace: Vec<u64> = (0..10_000).map(|i| i % 100).collect();
        assert_eq!(replay(Policy::Lru, &trace, 50), 0.0);
        // The frequency-aware policies keep part of the cycle.
        assert!(replay(Policy::Kyro, &trace, 50) > 0.2);
        assert!(replay(Policy::Moka, &trace, 50) > 0.2);
    }
}
