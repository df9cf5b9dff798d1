//! A keep-alive HTTP/1.1 connection to the gateway (hyper's low-level
//! client: one request at a time per connection, no pool).

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One connection.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

/// A response: status and body.
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
}

impl Connection {
    /// Connects to `host` (`address:port`).
    pub async fn open(host: &str) -> Result<Connection> {
        let stream = TcpStream::connect(host)
            .await
            .with_context(|| format!("connecting to {host}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP/1.1 handshake")?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Connection {
            sender,
            host: host.to_owned(),
        })
    }

    /// Sends one request and reads the whole answer.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Bytes>,
    ) -> Result<Reply> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.host);
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        if body.is_some() {
            request = request.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = request.body(Full::new(body.unwrap_or_default()))?;
        self.sender.ready().await.context("connection closed")?;
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Reply { status, body })
    }

    /// A JSON POST; the parsed answer, which must have `want` status.
    pub async fn post_json(
        &mut self,
        path: &str,
        key: &str,
        body: &serde_json::Value,
        want: u16,
    ) -> Result<serde_json::Value> {
        let reply = self
            .call(
                Method::POST,
                path,
                Some(key),
                Some(Bytes::from(serde_json::to_vec(body)?)),
            )
            .await?;
        if reply.status != want {
            bail!(
                "POST {path}: status {} (wanted {want}): {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            );
        }
        Ok(serde_json::from_slice(&reply.body)?)
    }
}
