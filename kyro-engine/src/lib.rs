//! `kyro-engine`: KyroDB's vector-search and storage library.
//!
//! It computes distances ([`distance`]), indexes vectors in an HNSW graph
//! ([`HnswIndex`]) or exactly ([`FlatIndex`]), and answers nearest-neighbour
//! queries, optionally filtered. It does no networking and starts no async
//! runtime: the server crate puts it behind gRPC.
//!
//! - [`cache`]: [`AdaptiveCache`], a byte-bounded W-TinyLFU cache.
//! - [`distance`]: metrics, SIMD kernels (numkong), `i8` quantisation.
//! - [`index`]: the configuration and search types every index shares.
//! - [`hnsw`]: the graph index.
//! - [`flat`]: the exact index.
//! - [`segment`]: immutable on-disk segments searched from mmap.
//! - [`payload`]: point payloads, the filter language, and the payload index
//!   that evaluates filters to bitmaps of point ids.
//! - [`cache`]: the learned-frequency cache policy.
//! - [`storage`]: the storage engine — namespaces, tiers, durability.
//! - [`error`]: the engine's error type, [`EngineError`].

pub mod cache;
pub mod distance;
pub mod error;
pub mod flat;
pub mod hnsw;
pub mod index;
pub mod payload;
pub mod segment;
pub mod storage;

pub use cache::{AdaptiveCache, CacheStats};
pub use distance::{Metric, ScalarQuantizer};
pub use error::EngineError;
pub use flat::FlatIndex;
pub use hnsw::{Consolidation, HnswIndex, HnswParams};
pub use index::{
    IndexConfig, InternalFilter, LabelFilter, MemoryUsage, Neighbor, PreparedVector, Quantization,
    SearchParams, VectorIndex,
};
pub use payload::{Filter, FilterValue, Payload, PayloadIndex, PayloadValue, Range};
