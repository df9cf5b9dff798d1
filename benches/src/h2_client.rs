//! A lean gRPC client for the load generator: unary calls straight over the
//! `h2` crate, one HTTP/2 connection per client, no tower stack.
//!
//! Why not tonic's `Channel` for the timed loop: on a machine where client
//! and server share the cores, every microsecond the client spends is taken
//! from the server being measured. Tonic's client writes each unary call as
//! three HTTP/2 writes (HEADERS, then DATA, then an empty END_STREAM frame,
//! each flushed on its own: measured 2.7 `writev` per call), and each write
//! wakes the server once more. Here a call queues HEADERS and DATA (with
//! END_STREAM) before the connection task runs, so both leave in one write,
//! as C-core and Go gRPC clients send them. The wire protocol is the standard
//! one (`application/grpc`, length-prefixed protobuf, `grpc-status`
//! trailers); any gRPC server answers it.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use h2::client::SendRequest;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, TE};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Method, Request, Uri};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

/// HTTP/2 flow-control windows we grant the server: large enough that
/// window updates are rare for small unary responses.
const RECEIVE_WINDOW: u32 = 4 << 20;

/// Why a call failed.
#[derive(Debug, Error)]
pub enum CallError {
    /// The server answered with a non-OK `grpc-status`.
    #[error("{code:?}: {message}")]
    Status { code: tonic::Code, message: String },
    /// The connection or stream failed.
    #[error("HTTP/2: {0}")]
    Transport(#[from] h2::Error),
    /// The server's answer is not a well-formed gRPC response.
    #[error("malformed response: {0}")]
    Protocol(String),
}

/// Why connecting failed.
#[derive(Debug, Error)]
pub enum ConnectError {
    #[error("not an http:// address with host and port: {0}")]
    Address(String),
    #[error("connecting: {0}")]
    Io(#[from] std::io::Error),
    #[error("HTTP/2 handshake: {0}")]
    Handshake(#[from] h2::Error),
}

/// The socket path of a `unix:PATH` address.
pub fn unix_socket_path(address: &str) -> Option<&str> {
    address
        .strip_prefix("unix:")
        .filter(|path| !path.is_empty())
}

/// One HTTP/2 connection making unary gRPC calls. Clones share the
/// connection (HTTP/2 multiplexes their calls).
#[derive(Clone)]
pub struct H2GrpcClient {
    send: SendRequest<Bytes>,
    authority: Authority,
    /// The headers of every call: content type, `te`, `authorization`.
    headers: HeaderMap,
}

impl H2GrpcClient {
    /// Connects to `address` (`http://host:port`, or `unix:PATH` for a Unix
    /// socket; TLS is not supported) and sends `authorization` with every
    /// call when given. The connection is driven by a task spawned on the
    /// current runtime.
    pub async fn connect(
        address: &str,
        authorization: Option<HeaderValue>,
    ) -> Result<H2GrpcClient, ConnectError> {
        if let Some(path) = unix_socket_path(address) {
            let stream = UnixStream::connect(path).await?;
            return Self::handshake(stream, Authority::from_static("localhost"), authorization)
                .await;
        }
        let uri: Uri = address
            .parse()
            .map_err(|_| ConnectError::Address(address.to_owned()))?;
        let authority = match (uri.scheme(), uri.authority()) {
            (Some(scheme), Some(authority)) if *scheme == Scheme::HTTP => authority.clone(),
            _ => return Err(ConnectError::Address(address.to_owned())),
        };
        let port = authority
            .port_u16()
            .ok_or_else(|| ConnectError::Address(address.to_owned()))?;
        let tcp = TcpStream::connect((authority.host(), port)).await?;
        tcp.set_nodelay(true)?;
        Self::handshake(tcp, authority, authorization).await
    }

    /// The HTTP/2 handshake over a connected stream.
    async fn handshake<T>(
        io: T,
        authority: Authority,
        authorization: Option<HeaderValue>,
    ) -> Result<H2GrpcClient, ConnectError>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (send, connection) = h2::client::Builder::new()
            .initial_window_size(RECEIVE_WINDOW)
            .initial_connection_window_size(RECEIVE_WINDOW)
            .handshake(io)
            .await?;
        tokio::spawn(async move {
            // Ends when every client clone is dropped or the server goes;
            // calls in flight see the error themselves.
            let _ = connection.await;
        });
        let mut headers = HeaderMap::with_capacity(3);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(TE, HeaderValue::from_static("trailers"));
        if let Some(key) = authorization {
            headers.insert(AUTHORIZATION, key);
        }
        Ok(H2GrpcClient {
            send,
            authority,
            headers,
        })
    }

    /// Calls the unary method at `path` (`/package.Service/Method`).
    pub async fn unary<Req, Resp>(
        &mut self,
        path: &'static str,
        message: &Req,
    ) -> Result<Resp, CallError>
    where
        Req: prost::Message,
        Resp: prost::Message + Default,
    {
        self.unary_framed(path, FramedMessage::new(message)).await
    }

    /// Calls the unary method at `path` with a message framed beforehand
    /// (the load generator frames each query once, outside the timed loop,
    /// and sends it as often as it likes: cloning one is a reference-count
    /// increment).
    pub async fn unary_framed<Resp>(
        &mut self,
        path: &'static str,
        message: FramedMessage,
    ) -> Result<Resp, CallError>
    where
        Resp: prost::Message + Default,
    {
        let uri = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(self.authority.clone())
            .path_and_query(PathAndQuery::from_static(path))
            .build()
            .map_err(|e| CallError::Protocol(format!("request URI: {e}")))?;
        let mut request = Request::new(());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        *request.headers_mut() = self.headers.clone();

        let mut send = self.send.clone().ready().await?;
        let (response, mut body_out) = send.send_request(request, false)?;
        body_out.send_data(message.0, true)?;

        let (head, mut body) = response.await?.into_parts();
        if head.status != http::StatusCode::OK {
            return Err(CallError::Protocol(format!("HTTP status {}", head.status)));
        }
        // A trailers-only response (an error, usually) carries the status in
        // its headers and no body.
        if let Some(status) = grpc_status(&head.headers)? {
            return Err(status);
        }
        let mut received = BytesMut::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk?;
            let _ = body.flow_control().release_capacity(chunk.len());
            received.extend_from_slice(&chunk);
        }
        match body.trailers().await? {
            Some(trailers) => {
                if let Some(status) = grpc_status(&trailers)? {
                    return Err(status);
                }
            }
            None => return Err(CallError::Protocol("no grpc-status trailer".to_owned())),
        }
        unframe(received.freeze())
    }
}

/// A request message encoded with gRPC's length prefix (uncompressed),
/// ready to send.
#[derive(Debug, Clone)]
pub struct FramedMessage(Bytes);

impl FramedMessage {
    pub fn new(message: &impl prost::Message) -> FramedMessage {
        FramedMessage(frame(message))
    }
}

/// `message` with gRPC's length prefix (uncompressed).
fn frame(message: &impl prost::Message) -> Bytes {
    let length = message.encoded_len();
    let mut buffer = BytesMut::with_capacity(5 + length);
    buffer.put_u8(0);
    buffer.put_u32(length as u32);
    // Cannot fail: the buffer was sized from `encoded_len`.
    let _ = message.encode(&mut buffer);
    buffer.freeze()
}

/// The one length-prefixed message of a unary response.
fn unframe<Resp: prost::Message + Default>(mut body: Bytes) -> Result<Resp, CallError> {
    if body.len() < 5 {
        return Err(CallError::Protocol(format!(
            "{} bytes of body, less than a message header",
            body.len()
        )));
    }
    if body.get_u8() != 0 {
        return Err(CallError::Protocol(
            "compressed response (none was asked for)".to_owned(),
        ));
    }
    let length = body.get_u32() as usize;
    if body.len() != length {
        return Err(CallError::Protocol(format!(
            "message of {length} bytes announced, {} received",
            body.len()
        )));
    }
    Resp::decode(body).map_err(|e| CallError::Protocol(format!("decoding: {e}")))
}

/// The error in `headers`' `grpc-status`, `None` when OK or absent.
fn grpc_status(headers: &HeaderMap) -> Result<Option<CallError>, CallError> {
    let Some(value) = headers.get("grpc-status") else {
        return Ok(None);
    };
    let code: i32 = value
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| CallError::Protocol(format!("grpc-status {value:?}")))?;
    if code == 0 {
        return Ok(None);
    }
    // Shown as sent (percent-encoded where the server encoded it).
    let message = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok(Some(CallError::Status {
        code: tonic::Code::from_i32(code),
        message,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kyro_proto::v1 as pb;

    #[test]
    fn framed_messages_unframe_to_themselves() {
        let request = pb::GetRequest {
            namespace: "episodes".to_owned(),
            doc_id: 42,
            with_vector: true,
            with_payload: Some(false),
        };
        let framed = frame(&request);
        assert_eq!(framed[0], 0);
        assert_eq!(
            u32::from_be_bytes([framed[1], framed[2], framed[3], framed[4]]) as usize,
            framed.len() - 5
        );
        let back: pb::GetRequest = unframe(framed).unwrap();
        assert_eq!(back, request);
    }

    #[test]
    fn truncated_or_compressed_bodies_are_refused() {
        let framed = frame(&pb::GetRequest::default());
        assert!(matches!(
            unframe::<pb::GetRequest>(framed.slice(..3)),
            Err(CallError::Protocol(_))
        ));
        let mut long = BytesMut::from(&frame(&pb::FlushRequest::default())[..]);
        long.put_u8(7);
        assert!(matches!(
            unframe::<pb::FlushRequest>(long.freeze()),
            Err(CallError::Protocol(_))
        ));
        let mut compressed = BytesMut::from(&framed[..]);
        compressed[0] = 1;
        assert!(matches!(
            unframe::<pb::GetRequest>(compressed.freeze()),
            Err(CallError::Protocol(_))
        ));
    }

    #[test]
    fn grpc_status_reads_code_and_message() {
        let mut headers = HeaderMap::new();
        assert!(grpc_status(&headers).unwrap().is_none());
        headers.insert("grpc-status", HeaderValue::from_static("0"));
        assert!(grpc_status(&headers).unwrap().is_none());
        headers.insert("grpc-status", HeaderValue::from_static("5"));
        headers.insert(
            "grpc-message",
            HeaderValue::from_static("no such namespace"),
        );
        match grpc_status(&headers).unwrap() {
            Some(CallError::Status { code, message }) => {
                assert_eq!(code, tonic::Code::NotFound);
                assert_eq!(message, "no such namespace");
            }
            other => panic!("expected a status, got {other:?}"),
        }
        headers.insert("grpc-status", HeaderValue::from_static("nope"));
        assert!(grpc_status(&headers).is_err());
    }
}
