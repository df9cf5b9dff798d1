//! Where an MCP tool call goes: into this gateway's own operations (the
//! `/mcp` endpoint: the caller is authenticated from the HTTP request's
//! key, with the same scopes, rate limits and quotas as REST), or to a
//! gateway over its REST API (`kyro-gateway mcp-stdio`: every call carries
//! the key given on the command line).

use std::sync::Arc;

use axum::http::request::Parts;
use serde_json::Value;

use super::rest::RestClient;
use crate::auth::{
    authorize, CaptureEndpoint, ReadEndpoint, ReflectEndpoint, SearchEndpoint, WriteEndpoint,
};
use crate::episodes::{capture, retrieval, view};
use crate::error::ApiError;
use crate::extract::decode_value as decode;
use crate::state::AppState;

/// One gateway operation, with its JSON body as the REST API takes it.
#[derive(Debug, Clone)]
pub enum Operation {
    Capture {
        body: Value,
        idempotency_key: Option<String>,
    },
    Search {
        body: Value,
    },
    Reflect {
        body: Value,
    },
    ValidateFix {
        body: Value,
    },
    Get {
        id: u64,
    },
    Delete {
        id: u64,
    },
}

/// A failed tool call as a model reads it: the gateway's error code,
/// message and the argument at fault.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolFailure {
    pub code: String,
    pub message: String,
    pub field: Option<String>,
}

impl ToolFailure {
    /// A failure of ours.
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            code: "internal".to_owned(),
            message: message.into(),
            field: None,
        }
    }

    /// `{"error": {"code", "message", "field"?}}`, as the REST API answers.
    pub fn to_json(&self) -> Value {
        let mut error = serde_json::json!({"code": self.code, "message": self.message});
        if let (Some(field), Some(map)) = (&self.field, error.as_object_mut()) {
            map.insert("field".to_owned(), Value::from(field.clone()));
        }
        serde_json::json!({ "error": error })
    }

    /// The failure behind a REST error body, or a generic one for `status`.
    pub fn from_body(status: u16, body: &[u8]) -> Self {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let error = parsed.as_ref().and_then(|v| v.get("error"));
        let text = |key: &str| {
            error
                .and_then(|e| e.get(key))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Self {
            code: text("code").unwrap_or_else(|| format!("http_{status}")),
            message: text("message")
                .unwrap_or_else(|| format!("the gateway answered HTTP {status}")),
            field: text("field"),
        }
    }
}

impl From<ApiError> for ToolFailure {
    fn from(error: ApiError) -> Self {
        if let ApiError::Internal(cause) = &error {
            tracing::error!(%cause, "internal error in an MCP tool");
        }
        Self {
            code: error.code().to_owned(),
            message: error.message(),
            field: error.field().map(str::to_owned),
        }
    }
}

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
