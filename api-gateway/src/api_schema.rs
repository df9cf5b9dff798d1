//! Pieces of the OpenAPI description that the handlers and the request
//! types name in their own annotations: the error response groups every
//! route shares and the hand-written schemas. A leaf module: `openapi.rs`
//! assembles the document from the handlers, which import these.

use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type};

use crate::error::ErrorBody;

/// Errors of a request with a JSON body.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // a documentation type: never constructed
pub enum BodyErrors {
    /// Not JSON, not UTF-8, or a body the route cannot parse.
    #[response(status = 400)]
    BadRequest(#[to_schema] ErrorBody),
    /// Larger than `limits.max_body_bytes` (the real body size is checked).
    #[response(status = 413)]
    PayloadTooLarge(#[to_schema] ErrorBody),
    /// A field breaks a documented rule; `field` names it.
    #[response(status = 422)]
    Validation(#[to_schema] ErrorBody),
}

/// Errors of any call with a key.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // a documentation type: never constructed
pub enum CallErrors {
    /// No key, or an unknown, revoked or expired one.
    #[response(status = 401)]
    Unauthenticated(#[to_schema] ErrorBody),
    /// The key lacks the scope, is limited to another project, or the
    /// customer is suspended.
    #[response(status = 403)]
    Forbidden(#[to_schema] ErrorBody),
    /// A rate limit (with `Retry-After`) or the monthly quota.
    #[response(status = 429)]
    TooManyRequests(#[to_schema] ErrorBody),
    /// kyro-server or the model cannot be reached.
    #[response(status = 503)]
    Unavailable(#[to_schema] ErrorBody),
}

/// The schema of a key → value field sent as an object
/// (`{"python": "3.11"}`) or as a list of `key=value` strings.
pub fn key_values() -> Schema {
    Schema::OneOf(
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .additional_properties(Some(ObjectBuilder::new()))
                    .description(Some("key → value")),
            )
            .item(
                ArrayBuilder::new()
                    .items(ObjectBuilder::new().schema_type(Type::String))
                    .description(Some("`key=value` strings")),
            )
            .build(),
    )
}
