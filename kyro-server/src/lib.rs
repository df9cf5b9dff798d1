//! `kyro-server`: KyroDB's gRPC server. One process serves the configured
//! engine instances (by default `text`, 384-dim, and `image`, 512-dim), each
//! on its own port, with tenant-aware API keys, Prometheus metrics and
//! health endpoints over HTTP, load shedding and graceful shutdown.
//!
//! - [`config`]: layered configuration (defaults, TOML, env, flags).
//! - [`auth`]: API keys, scopes, tenants.
//! - [`context`]: what one instance's service and its refusal accounting share.
//! - [`service`]: the `kyro.v1.Kyro` service over one instance.
//! - [`convert`]: wire types to engine types and back.
//! - [`status`]: engine errors to gRPC statuses.
//! - [`workers`]: the pool CPU-heavy work runs on.
//! - [`telemetry`]: metrics and logging.
//! - [`http`]: `/metrics` and health over HTTP.
//! - [`server`]: assembly, startup, shutdown.

pub mod auth;
pub mod config;
pub mod context;
pub mod convert;
pub mod http;
pub mod io_spin;
pub mod refusals;
pub mod server;
pub mod service;
pub mod status;
pub mod telemetry;
pub mod workers;
