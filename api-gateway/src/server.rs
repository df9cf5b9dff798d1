//! Starting the gateway: open the database (bootstrap admin key on an empty
//! one), connect to the engine, load the model, roll back captures a crash
//! left unfinished, bind, and serve until the shutdown signal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::auth::KeyCache;
use crate::config::GatewayConfig;
use crate::embed::TextEmbedder;
use crate::engine::EngineClient;
use crate::episodes::capture;
use crate::ratelimit::RateLimits;
use crate::state::AppState;
use crate::store::Store;

/// A started gateway.
pub struct Started {
    pub address: SocketAddr,
    /// The bootstrap admin key, on the first start only.
    pub bootstrap_key: Option<String>,
    pub state: AppState,
    listener: tokio::net::TcpListener,
}

/// Prepares everything and binds the listener.
pub async fn start(
    config: GatewayConfig,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
) -> anyhow::Result<Started> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let path = config.database_path();
    let store = Store::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let bootstrap_key = crate::admin::bootstrap(&store)?;
    let engine = EngineClient::new(&config.engine)?;
    if config.engine.service_key.is_empty() {
        tracing::warn!("engine.service_key is empty: kyro-server will refuse the gateway's calls");
    }
    let embedder = TextEmbedder::load(&config.model);
    if !embedder.is_loaded() {
        tracing::warn!(
            "the embedding model is not loaded: captures, search and reflect answer 503"
        );
    }
    let state = AppState {
        limits: Arc::new(RateLimits::new(
            &config.rate_limits,
            config.limits.failed_auth_per_minute,
        )),
        config: Arc::new(config),
        store,
        keys: Arc::new(KeyCache::default()),
        engine,
        embedder,
        metrics,
    };
    // Query counters are written with the next trip to the database once
    // due; this writes them when no request comes.
    let store = state.store.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(crate::store::FLUSH_AFTER);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = store.flush_tallies(false).await {
                tracing::warn!(error = %e, "writing the query counters failed");
            }
        }
    });
    let pending = capture::pending_at_start(&state).await?;
    if !pending.is_empty() {
        let recovery = state.clone();
        tokio::spawn(async move {
            let mut pending = pending;
            loop {
                pending = capture::roll_back(&recovery, pending).await;
                if pending.is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        });
    }
    let address = state.config.listen_address()?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("binding {address}"))?;
    Ok(Started {
        address: listener.local_addr()?,
        bootstrap_key,
        state,
        listener,
    })
}

impl Started {
    /// Serves until `shutdown` completes, then finishes in-flight requests.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let store = self.state.store.clone();
        let app = crate::app::router(self.state);
        axum::serve(
            self.listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await?;
        // The last query counters, before the process exits.
        store.flush_tallies(true).await?;
        Ok(())
    }
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
