//! Requests that tonic refuses before their handler runs: a message that
//! does not decode (INVALID_ARGUMENT, see `kyro_proto::codec`) or one over
//! `limits.max_message_bytes`. [`Accounted`] wraps an instance's service so
//! that these are counted in `kyro_requests_total{code}` and logged inside an
//! `rpc` span like every request a handler refuses, and so that an oversized
//! message is answered RESOURCE_EXHAUSTED (what gRPC clients expect; tonic
//! says OUT_OF_RANGE).
//!
//! The wrapper puts a [`HandlerRan`] flag in each request's extensions; the
//! handler raises it (and does its own accounting), so a response whose flag
//! is still down was refused before any handler saw it.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderValue, Request, Response};
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::Code;

use crate::context::InstanceContext;
use crate::telemetry::rpc_span;
use crate::telemetry::Rpc;

/// Raised by the handler of a request (see the module documentation).
#[derive(Clone, Default)]
pub struct HandlerRan(Arc<AtomicBool>);

impl HandlerRan {
    /// Marks the request as seen (and accounted for) by its handler.
    pub fn mark(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn ran(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// An instance's Kyro service with the accounting described above.
#[derive(Clone)]
pub struct Accounted<S> {
    inner: S,
    context: Arc<InstanceContext>,
}

impl<S> Accounted<S> {
    /// Wraps `inner`, the Kyro service of the instance `context` describes.
    pub fn new(inner: S, context: Arc<InstanceContext>) -> Self {
        Self { inner, context }
    }
}

impl<S: NamedService> NamedService for Accounted<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> tower::Service<Request<Body>> for Accounted<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let started = Instant::now();
        let rpc = rpc_of_path(request.uri().path());
        let ran = HandlerRan::default();
        request.extensions_mut().insert(ran.clone());
        let response = self.inner.call(request);
        let context = Arc::clone(&self.context);
        Box::pin(async move {
            let mut response = response.await?;
            if let (false, Some(rpc)) = (ran.ran(), rpc) {
                account_refusal(&context, rpc, &mut response, started);
            }
            Ok(response)
        })
    }
}

/// The RPC a request path names (`/kyro.v1.Kyro/Search`), if any.
fn rpc_of_path(path: &str) -> Option<Rpc> {
    let method = path.strip_prefix("/kyro.v1.Kyro/")?;
    Rpc::ALL.into_iter().find(|rpc| rpc.name() == method)
}

/// Counts and logs a response made before the handler ran, first turning
/// tonic's OUT_OF_RANGE for an oversized message into RESOURCE_EXHAUSTED.
fn account_refusal(
    context: &InstanceContext,
    rpc: Rpc,
    response: &mut Response<Body>,
    started: Instant,
) {
    let headers = response.headers_mut();
    let Some(status) = headers.get("grpc-status") else {
        return;
    };
    let mut code = Code::from_bytes(status.as_bytes());
    if code == Code::Ok {
        return;
    }
    let message = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .map(percent_decode)
        .unwrap_or_default();
    if code == Code::OutOfRange && is_oversized_message(&message) {
        code = Code::ResourceExhausted;
        headers.insert("grpc-status", HeaderValue::from(code as i32));
    }
    context.metrics.record(rpc, code, started.elapsed());
    rpc_span(&context.name, rpc, "", None).in_scope(|| {
        tracing::debug!(code = ?code, message = %message, "refused before the handler");
    });
}

/// Whether `message` is tonic's refusal of a message over the size limit.
pub fn is_oversized_message(message: &str) -> bool {
    message.contains("message length too large")
}

/// Decodes the percent-encoding of a `grpc-message` header.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_rpc() {
        assert_eq!(rpc_of_path("/kyro.v1.Kyro/Search"), Some(Rpc::Search));
        assert_eq!(
            rpc_of_path("/kyro.v1.Kyro/BulkInsert"),
            Some(Rpc::BulkInsert)
        );
        assert_eq!(rpc_of_path("/kyro.v1.Kyro/Nope"), None);
        assert_eq!(rpc_of_path("/grpc.health.v1.Health/Check"), None);
    }

    #[test]
    fn grpc_messages_are_percent_decoded() {
        assert_eq!(percent_decode("a%20b%25c"), "a b%c");
        assert_eq!(percent_decode("bad%zz%"), "bad%zz%");
    }

    #[test]
    fn the_decoder_names_the_engine_filter_depth() {
        assert_eq!(
            kyro_proto::codec::MAX_FILTER_DEPTH,
            kyro_engine::payload::MAX_FILTER_DEPTH
        );
    }
}
