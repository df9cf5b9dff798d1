//! The Model Context Protocol face of the gateway, for AI coding assistants:
//! six tools (`record_failure`, `search_failures`, `check_action`,
//! `record_outcome`, `get_episode`, `forget_episode`) over two transports.
//!
//! - Streamable HTTP at `/mcp` on the gateway itself (stateless, JSON
//!   answers): each call is authenticated from the request's key
//!   (`X-API-Key` or `Authorization: Bearer`) with the same scopes, rate
//!   limits and quotas as the REST routes.
//! - stdio (`kyro-gateway mcp-stdio --url … --key …`) for assistants that
//!   launch tools as processes: a bridge that turns each call into one REST
//!   call to a running gateway.

mod backend;
mod operation;
mod rest;
mod tools;
mod transports;

pub use backend::Backend;
pub use operation::{Operation, ToolFailure};
pub use rest::{RestClient, UrlError};
pub use tools::KyroTools;
pub use transports::{router, serve_stdio, StdioError};
