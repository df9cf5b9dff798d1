//! The state every handler shares.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::key_cache::KeyCache;
use crate::config::GatewayConfig;
use crate::embed::TextEmbedder;
use crate::engine::EngineClient;
use crate::ratelimit::RateLimits;
use crate::store::Store;

/// Cheap to clone: every field is a handle.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<GatewayConfig>,
    pub store: Store,
    pub keys: Arc<KeyCache>,
    pub limits: Arc<RateLimits>,
    pub engine: EngineClient,
    pub embedder: TextEmbedder,
    /// Renders `/metrics` (`None` when another recorder is installed).
    pub metrics: Option<PrometheusHandle>,
}
