//! Text embedding for the gateway: the one place that knows which embedder
//! runs (all-MiniLM-L6-v2, 384-dim, in-process), and how episode and query
//! texts are laid out before they are embedded, so that a stored failure
//! and a later query for the same action produce the same vector.

use std::sync::Arc;
use std::time::Instant;

use crate::error::ApiError;

/// Whether an embedder is compiled into this gateway. Tests that need
/// embeddings run only when it is (and then fail if the model is missing).
pub const BUILT_IN: bool = true;

/// The model name reported by `/api/v1/embeddings`.
pub const MODEL_NAME: &str = "all-MiniLM-L6-v2";

/// The text embedded for an episode, and for a reflect query: the goal,
/// the action that failed (an episode's last action) and the tool (an
/// episode's last tool). The same layout on both sides makes a repeat of a
/// stored failure score ~1.0.
pub fn action_text(goal: &str, action: &str, tool: &str) -> String {
    format!("{goal}\naction: {action}\ntool: {tool}")
}

/// The embedder, or why it is not loaded (then every embedding request is
/// a 503 and readiness fails).
#[derive(Clone)]
pub struct TextEmbedder {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    /// kyro-embed's micro-batching service (with its cache of recent texts).
    Model(kyro_embed::EmbedService),
    /// No model: the reason.
    Unloaded(Arc<str>),
}

impl TextEmbedder {
    /// Loads the model as `[model]` says (folder, threads, precision).
    pub fn load(settings: &crate::config::ModelSettings) -> TextEmbedder {
        let model_dir = settings.model_dir();
        let loaded = kyro_embed::Embedder::load_with_precision(
            &model_dir,
            settings.threads,
            settings.precision,
        );
        let backend = match loaded {
            Ok(embedder) => {
                tracing::info!(
                    model = %model_dir.display(),
                    threads = embedder.threads(),
                    precision = %embedder.precision(),
                    "embedding model loaded"
                );
                Backend::Model(kyro_embed::EmbedService::start(
                    embedder,
                    kyro_embed::BatcherConfig {
                        cache_capacity: settings.cache_texts,
                        ..kyro_embed::BatcherConfig::default()
                    },
                ))
            }
            Err(e) => Backend::Unloaded(
                format!("loading the model from {}: {e}", model_dir.display()).into(),
            ),
        };
        TextEmbedder { backend }
    }

    /// Whether the model is loaded (readiness).
    pub fn is_loaded(&self) -> bool {
        matches!(self.backend, Backend::Model(_))
    }

    /// Embeds one text (unit length).
    pub async fn embed(&self, text: &str) -> Result<Vec<f32>, ApiError> {
        let started = Instant::now();
        let result = match &self.backend {
            Backend::Model(service) => service
                .embed(text)
                .await
                .map(|v| v.to_vec())
                .map_err(|e| ApiError::Unavailable(format!("embedding failed: {e}"))),
            Backend::Unloaded(reason) => Err(ApiError::Unavailable(format!(
                "the embedding model is not loaded: {reason}"
            ))),
        };
        metrics::histogram!("gateway_embedding_seconds").record(started.elapsed().as_secs_f64());
        result
    }

    /// Embeds many texts, in order.
    pub async fn embed_many(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, ApiError> {
        match &self.backend {
            Backend::Model(service) => service
                .embed_many(texts)
                .await
                .map(|vs| vs.iter().map(|v| v.to_vec()).collect())
                .map_err(|e| ApiError::Unavailable(format!("embedding failed: {e}"))),
            Backend::Unloaded(reason) => Err(ApiError::Unavailable(format!(
                "the embedding model is not loaded: {reason}"
            ))),
        }
    }

    /// Publishes the embedder's cache counters as gauges (on `/metrics`).
    pub fn publish_stats(&self) {
        if let Backend::Model(service) = &self.backend {
            let stats = service.stats();
            let lookups = stats.cache_hits + stats.cache_misses;
            if lookups > 0 {
                metrics::gauge!("gateway_embedding_cache_hit_ratio")
                    .set(stats.cache_hits as f64 / lookups as f64);
            }
            metrics::gauge!("gateway_embedding_batches").set(stats.batches as f64);
        }
    }
}
