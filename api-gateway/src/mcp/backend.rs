//! Where an MCP tool call goes: into this gateway's own operations (the
//! `/mcp` endpoint: the caller is authenticated from the HTTP request's
//! key, with the same scopes, rate limits and quotas as REST), or to a
//! gateway over its REST API (`kyro-gateway mcp-stdio`: every call carries
//! the key given on the command line).

use std::sync::Arc;

use axum::http::request::Parts;
use serde_json::Value;

use super::operation::{Operation, ToolFailure};
use super::rest::RestClient;
use crate::auth::{
    authorize, CaptureEndpoint, ReadEndpoint, ReflectEndpoint, SearchEndpoint, WriteEndpoint,
};
use crate::episodes::{capture, retrieval, view};
use crate::error::ApiError;
use crate::extract::decode_value as decode;
use crate::state::AppState;

/// Where tool calls go.
#[derive(Clone)]
pub enum Backend {
    /// This gateway's operations, for callers of `/mcp`.
    InProcess(Box<AppState>),
    /// A gateway's REST API, for `mcp-stdio`.
    Remote(Arc<RestClient>),
}

fn json(value: &impl serde::Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(value).map_err(ApiError::internal)
}

impl Backend {
    /// Runs `operation`; `parts` are the HTTP request's (in-process only).
    pub async fn call(
        &self,
        operation: Operation,
        parts: Option<&Parts>,
    ) -> Result<Value, ToolFailure> {
        match self {
            Backend::InProcess(state) => {
                let parts = parts.ok_or_else(|| {
                    ToolFailure::internal("the MCP request carries no HTTP headers")
                })?;
                Ok(in_process(state, parts, operation).await?)
            }
            Backend::Remote(client) => client.call(operation).await,
        }
    }
}

async fn in_process(
    state: &AppState,
    parts: &Parts,
    operation: Operation,
) -> Result<Value, ApiError> {
    match operation {
        Operation::Capture {
            body,
            idempotency_key,
        } => {
            let caller = authorize::<CaptureEndpoint>(parts, state).await?;
            let bytes = serde_json::to_vec(&body).map_err(ApiError::internal)?;
            let outcome = capture::capture(state, &caller, &bytes, idempotency_key).await?;
            let mut answer: Value =
                serde_json::from_str(&outcome.body).map_err(ApiError::internal)?;
            if let (Some(warning), Some(map)) = (outcome.quota_warning, answer.as_object_mut()) {
                map.insert("quota_warning".to_owned(), Value::from(warning));
            }
            Ok(answer)
        }
        Operation::Search { body } => {
            let caller = authorize::<SearchEndpoint>(parts, state).await?;
            json(&retrieval::search(state, &caller, decode(body)?).await?)
        }
        Operation::Reflect { body } => {
            let caller = authorize::<ReflectEndpoint>(parts, state).await?;
            json(&retrieval::reflect(state, &caller, decode(body)?).await?)
        }
        Operation::ValidateFix { body } => {
            let caller = authorize::<WriteEndpoint>(parts, state).await?;
            json(&view::validate_fix(state, &caller, decode(body)?).await?)
        }
        Operation::Get { id } => {
            let caller = authorize::<ReadEndpoint>(parts, state).await?;
            json(&view::get(state, &caller, id).await?)
        }
        Operation::Delete { id } => {
            let caller = authorize::<WriteEndpoint>(parts, state).await?;
            view::delete(state, &caller, id).await?;
            Ok(serde_json::json!({"episode_id": id, "deleted": true}))
        }
    }
}
