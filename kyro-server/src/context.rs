//! [`InstanceContext`]: what one instance's service, and the layer that
//! accounts for requests refused before it, share.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kyro_engine::storage::Instance;
use tokio::sync::Semaphore;

use crate::auth::KeyRing;
use crate::telemetry::RequestMetrics;
use crate::workers::WorkerPool;

/// Everything one instance's service needs; shared by its requests.
pub struct InstanceContext {
    /// The instance's configured name (`text`, `image`).
    pub name: String,
    pub instance: Arc<Instance>,
    pub keys: Arc<KeyRing>,
    /// `false` only when auth was explicitly switched off.
    pub auth_enabled: bool,
    pub workers: Arc<WorkerPool>,
    /// The instance's request counters and latency histograms.
    pub metrics: RequestMetrics,
    /// Permits for requests in flight; empty means shed.
    pub limiter: Arc<Semaphore>,
    pub max_concurrent_requests: usize,
    /// Applied when a request carries no `grpc-timeout`.
    pub default_timeout: Option<Duration>,
    pub max_batch_searches: usize,
    /// Where CreateSnapshot writes.
    pub snapshot_dir: PathBuf,
    /// The effective server configuration, for GetConfig.
    pub config_toml: Arc<String>,
    pub io_spin: Arc<crate::io_spin::IoSpin>,
}
