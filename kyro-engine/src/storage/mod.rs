//! The storage engine: namespaces of points that survive crashes, scale past
//! memory and are partitioned by tenant.
//!
//! - [`instance`]: [`Instance`] — open/recover, the read/write API, snapshots.
//! - `core`: what every part of an instance shares, and manifest writing.
//! - `maintenance`: the sealer and optimizer threads.
//! - `fs`: file-system helpers (directory fsync, removal).
//! - [`request`]: the API's requests and answers.
//! - [`config`]: [`InstanceConfig`] and its parts, defaults in one place.
//! - `namespace`: one namespace's segments, live set, payload index, writes;
//!   `namespaces`: an instance's namespaces created, listed and dropped.
//! - `search`: the read path, fanned out over segments and merged.
//! - `planner`: exact scan or graph traversal, per query.
//! - `segment`: the [`Segment`](segment) trait both tiers implement;
//!   `hot` / `sealed`: the in-memory hot segment and the mmap'd cold segment.
//! - `tiering`: sealing hot segments, merging and rewriting cold ones.
//! - `recovery`: rebuilding namespaces at open; `snapshot`: snapshots.
//! - `id_map`: a namespace's doc → point map in RocksDB.
//! - `store`: RocksDB and the group-commit path; `keys`: its key layout;
//!   `manifest`: the records that say which segments exist.
//! - `caches`: the query-result and point caches.
//! - [`error`]: the storage error type, [`StorageError`].

mod caches;
pub mod config;
mod core;
#[cfg(test)]
mod durability_tests;
pub mod error;
mod fs;
mod hot;
mod id_map;
pub mod instance;
mod keys;
mod maintenance;
mod manifest;
mod namespace;
mod namespaces;
mod planner;
mod recovery;
pub mod request;
mod sealed;
mod search;
mod segment;
mod snapshot;
mod store;
mod tiering;
#[cfg(test)]
mod unindex_tests;

pub use config::{CacheConfig, FsyncPolicy, InstanceConfig, OptimizerConfig, PlannerConfig};
pub use error::StorageError;
pub use instance::{Instance, InstanceStats};
pub use request::{
    score_of, NamespaceInfo, NamespaceRef, PayloadUpdate, PointRecord, PointWrite, QueryPlan,
    ScrollPage, SearchHit, SearchRequest, SearchResponse,
};
pub use store::SyncStats;
pub use tiering::OptimizeReport;
