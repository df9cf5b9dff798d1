//! The REST client of `kyro-gateway mcp-stdio`: one HTTP/1.1 request per
//! tool call to a gateway at an `http://host:port` URL, with the key given
//! on the command line.

use std::time::Duration;

use axum::http::{header, Method, Request};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

use super::operation::{Operation, ToolFailure};

/// How long one call may take, connection included.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a gateway URL is unusable.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("{0:?}: only http://host:port URLs are supported")]
    Scheme(String),
    #[error("{0:?}: no host")]
    NoHost(String),
}

/// A gateway's REST API.
#[derive(Debug, Clone)]
pub struct RestClient {
    /// `host:port`.
    authority: String,
    /// Path prefix (empty, or `/prefix` without a trailing slash).
    base_path: String,
    key: String,
}

impl RestClient {
    /// A client of the gateway at `url` (`http://127.0.0.1:8080`) with `key`.
    pub fn new(url: &str, key: &str) -> Result<Self, UrlError> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| UrlError::Scheme(url.to_owned()))?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.is_empty() {
            return Err(UrlError::NoHost(url.to_owned()));
        }
        let authority = if authority.contains(':') && !authority.ends_with(']') {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let path = path.trim_end_matches('/');
        Ok(Self {
            authority,
            base_path: if path.is_empty() {
                String::new()
            } else {
                format!("/{path}")
            },
            key: key.to_owned(),
        })
    }

    /// Runs `operation` as its REST call.
    pub async fn call(&self, operation: Operation) -> Result<Value, ToolFailure> {
        let mut deleted = None;
        let (method, path, body, idempotency_key) = match operation {
            Operation::Capture {
                body,
                idempotency_key,
            } => (
                Method::POST,
                "/api/v1/capture".to_owned(),
                Some(body),
                idempotency_key,
            ),
            Operation::Search { body } => {
                (Method::POST, "/api/v1/search".to_owned(), Some(body), None)
            }
            Operation::Reflect { body } => {
                (Method::POST, "/api/v1/reflect".to_owned(), Some(body), None)
            }
            Operation::ValidateFix { body } => (
                Method::POST,
                "/api/v1/validate_fix".to_owned(),
                Some(body),
                None,
            ),
            Operation::Get { id } => (Method::GET, format!("/api/v1/episodes/{id}"), None, None),
            Operation::Delete { id } => {
                deleted = Some(id);
                (Method::DELETE, format!("/api/v1/episodes/{id}"), None, None)
            }
        };
        let (status, bytes) = tokio::time::timeout(
            CALL_TIMEOUT,
            self.send(method, &path, body, idempotency_key),
        )
        .await
        .map_err(|_| ToolFailure {
            code: "unavailable".to_owned(),
            message: format!(
                "the gateway did not answer within {} s",
                CALL_TIMEOUT.as_secs()
            ),
            field: None,
        })??;
        if !(200..300).contains(&status) {
            return Err(ToolFailure::from_body(status, &bytes));
        }
        if let Some(id) = deleted {
            return Ok(serde_json::json!({"episode_id": id, "deleted": true}));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| ToolFailure::internal(format!("the gateway's answer is not JSON: {e}")))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        idempotency_key: Option<String>,
    ) -> Result<(u16, Bytes), ToolFailure> {
        let unavailable = |e: &dyn std::fmt::Display| ToolFailure {
            code: "unavailable".to_owned(),
            message: format!("the gateway at {} cannot be reached: {e}", self.authority),
            field: None,
        };
        let stream = TcpStream::connect(&self.authority)
            .await
            .map_err(|e| unavailable(&e))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unavailable(&e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "gateway connection closed");
            }
        });
        let payload = match &body {
            Some(value) => {
                serde_json::to_vec(value).map_err(|e| ToolFailure::internal(e.to_string()))?
            }
            None => Vec::new(),
        };
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base_path))
            .header(header::HOST, &self.authority)
            .header("x-api-key", &self.key);
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let request = request
            .body(Full::new(Bytes::from(payload)))
            .map_err(|e| ToolFailure::internal(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| unavailable(&e))?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| unavailable(&e))?
            .to_bytes();
        Ok((status, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_host_port_and_prefix() {
        let client = RestClient::new("http://127.0.0.1:8080", "k").expect("a valid URL");
        assert_eq!(client.authority, "127.0.0.1:8080");
        assert_eq!(client.base_path, "");
        let client = RestClient::new("http://gw.local/kyro/", "k").expect("a valid URL");
        assert_eq!(client.authority, "gw.local:80");
        assert_eq!(client.base_path, "/kyro");
        assert!(matches!(
            RestClient::new("https://gw.local", "k"),
            Err(UrlError::Scheme(_))
        ));
        assert!(matches!(
            RestClient::new("http:///x", "k"),
            Err(UrlError::NoHost(_))
        ));
    }

    #[test]
    fn rest_errors_become_tool_failures_naming_the_field() {
        let body = br#"{"error": {"code": "validation_error", "message": "must be 10..=2000 characters, got 3", "field": "goal"}}"#;
        let failure = ToolFailure::from_body(422, body);
        assert_eq!(failure.code, "validation_error");
        assert_eq!(failure.field.as_deref(), Some("goal"));
        let failure = ToolFailure::from_body(502, b"<html>bad gateway</html>");
        assert_eq!(failure.code, "http_502");
        assert!(failure.field.is_none());
    }
}
