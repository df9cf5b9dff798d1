//! The two ways the tools are served: streamable HTTP at `/mcp`, and
//! stdio as a bridge to a running gateway's REST API.

use std::sync::Arc;

use axum::Router;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::ServiceExt;

use super::backend::Backend;
use super::rest::{RestClient, UrlError};
use super::tools::KyroTools;
use crate::state::AppState;

/// `/mcp`: the tools over streamable HTTP, calling this gateway in-process.
pub fn router(state: &AppState) -> Router<AppState> {
    let settings = &state.config.mcp;
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_allowed_hosts(settings.allowed_hosts.clone())
        .with_allowed_origins(settings.allowed_origins.clone())
        .with_max_request_body_bytes(state.config.limits.max_body_bytes);
    let backend = Backend::InProcess(Box::new(state.clone()));
    let service = StreamableHttpService::new(
        move || Ok(KyroTools::new(backend.clone())),
        Arc::new(NeverSessionManager::default()),
        config,
    );
    Router::new().nest_service("/mcp", service)
}

/// Why the stdio bridge stopped.
#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    #[error("gateway URL: {0}")]
    Url(#[from] UrlError),
    #[error("MCP session: {0}")]
    Session(String),
}

/// Serves the tools on stdin/stdout until the client closes them, each
/// call going to the gateway at `url` with `key`.
pub async fn serve_stdio(url: &str, key: &str) -> Result<(), StdioError> {
    let client = RestClient::new(url, key)?;
    let tools = KyroTools::new(Backend::Remote(Arc::new(client)));
    let running = tools
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| StdioError::Session(e.to_string()))?;
    running
        .waiting()
        .await
        .map_err(|e| StdioError::Session(e.to_string()))?;
    Ok(())
}
