//! A small HTTP/1.1 JSON client for the gateway (`http://` URLs): one
//! request per connection, `Connection: close`, bodies by length or
//! chunked. The gateway is on the same machine or network as the operator
//! running `kyro`; for TLS, put it behind a local proxy.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde_json::Value as Json;

use crate::error::CliError;

/// The gateway's address and key.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// `http://host:port` (a path prefix is allowed).
    pub url: String,
    /// The gateway API key (`em_live_…`).
    pub key: Option<String>,
}

impl Gateway {
    /// Sends `method path` with an optional JSON body; the JSON answer of a
    /// 2xx response (`Null` for an empty one), else the gateway's error.
    pub fn call(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&Json>,
    ) -> Result<Json, CliError> {
        let (host_port, prefix) = split_url(&self.url)?;
        let unreachable = |reason: String| CliError::Connect {
            what: "the gateway",
            url: self.url.clone(),
            reason,
        };
        let address = host_port
            .to_socket_addrs()
            .map_err(|e| unreachable(e.to_string()))?
            .next()
            .ok_or_else(|| unreachable("no address".into()))?;
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(10))
            .map_err(|e| unreachable(e.to_string()))?;
        let timeout = Some(Duration::from_secs(120));
        stream
            .set_read_timeout(timeout)
            .and_then(|_| stream.set_write_timeout(timeout))
            .map_err(|e| unreachable(e.to_string()))?;
        let body = body.map(|b| b.to_string());
        let mut head = format!(
            "{method} {prefix}{path} HTTP/1.1\r\nHost: {host_port}\r\nConnection: close\r\nAccept: application/json\r\nUser-Agent: kyro/{}\r\n",
            env!("CARGO_PKG_VERSION")
        );
        if let Some(key) = &self.key {
            head.push_str(&format!("X-API-Key: {key}\r\n"));
        }
        if let Some(body) = &body {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        } else if method == "POST" {
            head.push_str("Content-Length: 0\r\n");
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        if let Some(body) = body {
            request.extend_from_slice(body.as_bytes());
        }
        stream
            .write_all(&request)
            .map_err(|e| unreachable(e.to_string()))?;
        let mut bytes = Vec::new();
        stream
            .read_to_end(&mut bytes)
            .map_err(|e| unreachable(format!("reading the answer: {e}")))?;
        let (status, body) = parse_response(&bytes).map_err(unreachable)?;
        let json: Json = if body.iter().all(u8::is_ascii_whitespace) {
            Json::Null
        } else {
            serde_json::from_slice(&body).map_err(|e| {
                unreachable(format!("HTTP {status} with a body that is not JSON: {e}"))
            })?
        };
        if (200..300).contains(&status) {
            return Ok(json);
        }
        let error = &json["error"];
        let mut message = error["message"].as_str().unwrap_or("").to_owned();
        if let Some(field) = error["field"].as_str() {
            message = format!("{field}: {message}");
        }
        Err(CliError::Gateway {
            method,
            path: path.to_owned(),
            status,
            code: error["code"].as_str().unwrap_or("error").to_owned(),
            message,
        })
    }
}

/// `http://host:port/prefix` → (`host:port`, `/prefix` without a trailing
/// slash).
fn split_url(url: &str) -> Result<(String, String), CliError> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        CliError::usage(format!(
            "--gateway-url {url}: only http:// URLs are supported (for TLS, use a local proxy)"
        ))
    })?;
    let (host, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    if host.is_empty() {
        return Err(CliError::usage(format!("--gateway-url {url}: no host")));
    }
    let host = if host.contains(':') && !host.ends_with(']') {
        host.to_owned()
    } else {
        format!("{host}:80")
    };
    Ok((host, prefix.to_owned()))
}

/// The status and the (de-chunked) body of a raw response.
fn parse_response(bytes: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the connection closed before a complete HTTP response")?;
    let head =
        std::str::from_utf8(&bytes[..end]).map_err(|_| "a response head that is not text")?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or("no HTTP status line")?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = &bytes[end + 4..];
    if !chunked {
        return Ok((status, body.to_vec()));
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("a truncated chunked body")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).map_err(|_| "a bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| "a bad chunk size")?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok((status, out));
        }
        if rest.len() < size + 2 {
            return Err("a truncated chunked body".into());
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_and_plain_bodies_are_read() {
        let plain = b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_response(plain).unwrap(), (201, b"{}".to_vec()));
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\": 1\r\n1\r\n}\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(chunked).unwrap(),
            (200, b"{\"a\": 1}".to_vec())
        );
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
    }

    #[test]
    fn urls_split_into_address_and_prefix() {
        assert_eq!(
            split_url("http://127.0.0.1:8080").unwrap(),
            ("127.0.0.1:8080".into(), "".into())
        );
        assert_eq!(
            split_url("http://gw.local/kyro/").unwrap(),
            ("gw.local:80".into(), "/kyro".into())
        );
        assert!(split_url("https://gw.local").is_err());
    }
}
