//! What an MCP tool call asks of the gateway ([`Operation`]) and how a
//! failed one reads to a model ([`ToolFailure`]), shared by both backends.

use serde_json::Value;

use crate::error::ApiError;

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
