//! Request extractors whose rejections are [`ApiError`]s: a JSON body that
//! names the field at fault, and query strings.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::{field_of, ApiError};
use crate::state::AppState;

/// A JSON body. Malformed JSON is a 400; a body of the wrong shape (missing
/// field, wrong type, unknown field) a 422 naming the field's path
/// (`tool_chain[2]`); a body over the limit a 413.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T> FromRequest<AppState> for ApiJson<T>
where
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge {
                    limit: state.config.limits.max_body_bytes,
                }
            } else {
                ApiError::BadRequest {
                    message: e.body_text(),
                    field: None,
                }
            }
        })?;
        decode(&bytes).map(ApiJson)
    }
}

/// Decodes `bytes` as `T`, naming the field at fault.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Syntax first, so that a truncated body is a 400 and not a 422.
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        let message = if e.is_eof() && bytes.iter().all(u8::is_ascii_whitespace) {
            "the body is empty; expected a JSON object".to_owned()
        } else {
            format!("malformed JSON: {e}")
        };
        ApiError::BadRequest {
            message,
            field: None,
        }
    })?;
    decode_value(value)
}

/// Decodes an already parsed JSON `value` as `T`, naming the field at fault
/// (a 422).
pub fn decode_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        let field = if path == "." || path.is_empty() {
            field_of(&message).unwrap_or_else(|| "body".to_owned())
        } else if let (true, Some(name)) =
            (message.starts_with("missing field"), field_of(&message))
        {
            // A missing field's path is its parent's.
            format!("{path}.{name}")
        } else {
            path
        };
        ApiError::Validation { field, message }
    })
}

/// A query string; a bad one is a 422 naming the parameter.
#[derive(Debug, Clone, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(value) = Query::<T>::from_request_parts(parts, state).await?;
        Ok(ApiQuery(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        goal: String,
        tools: Vec<String>,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        k: u32,
    }

    fn field(body: &str) -> (u16, Option<String>) {
        match decode::<Body>(body.as_bytes()) {
            Ok(_) => (200, None),
            Err(e) => (
                e.status().as_u16(),
                match e {
                    ApiError::Validation { field, .. } => Some(field),
                    _ => None,
                },
            ),
        }
    }

    #[test]
    fn shape_errors_name_the_field_and_syntax_errors_are_400() {
        assert_eq!(field(r#"{"tools": []}"#), (422, Some("goal".into())));
        assert_eq!(
            field(r#"{"goal": 5, "tools": []}"#),
            (422, Some("goal".into()))
        );
        assert_eq!(
            field(r#"{"goal": "x", "tools": ["a", 3]}"#),
            (422, Some("tools[1]".into()))
        );
        assert_eq!(
            field(r#"{"goal": "x", "tools": [], "inner": {}}"#),
            (422, Some("inner.k".into()))
        );
        assert_eq!(
            field(r#"{"goal": "x", "tools": [], "extra": 1}"#),
            (422, Some("extra".into()))
        );
        assert_eq!(field(r#"{"goal": "x", "#), (400, None));
        assert_eq!(field(""), (400, None));
        assert_eq!(field(r#"{"goal": "x", "tools": []}"#), (200, None));
    }
}
