//! `api-gateway`: KyroDB's multi-tenant REST service for AI coding tools.
//! Clients record failure episodes and ask, before acting, whether
//! something similar failed before. It talks to kyro-server over gRPC like
//! any other client (each customer is a kyro-server tenant), keeps its
//! customer database in SQLite, and embeds text in-process.
//!
//! What it is not: a storage engine (vectors live in kyro-server) or an
//! embedding library (that is the embedder's crate).

pub mod admin;
pub mod admin_console;
pub mod admin_page;
pub mod api_schema;
pub mod app;
pub mod auth;
pub mod clock;
pub mod config;
pub mod embed;
pub mod engine;
pub mod episodes;
pub mod error;
pub mod extract;
pub mod mcp;
pub mod openapi;
pub mod ratelimit;
pub mod redact;
pub mod route_latency;
pub mod routes;
pub mod server;
pub mod signature;
pub mod state;
pub mod store;
pub mod telemetry;
