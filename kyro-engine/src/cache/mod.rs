//! Byte-bounded in-memory caches whose admission and eviction learn access
//! frequencies online (W-TinyLFU with hill climbing).
//!
//! - [`tiny_lfu`]: [`AdaptiveCache`], the cache: admission window, segmented
//!   LRU main space, frequency-based admission, byte bound.
//! - [`sketch`]: [`FrequencySketch`], the ageing count-min sketch of recent
//!   request frequencies.
//! - `climber`: the hill climber that sizes the admission window.
//! - `arena`: the entries, their hash index and intrusive LRU queues.
//! - [`stats`]: [`CacheStats`], hit/miss/eviction counters.

mod arena;
mod climber;
pub mod sketch;
pub mod stats;
pub mod tiny_lfu;

pub use sketch::FrequencySketch;
pub use stats::CacheStats;
pub use tiny_lfu::AdaptiveCache;
