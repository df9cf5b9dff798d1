//! Library half of `kyro-bench`: dataset IO, synthetic data, exact ground
//! truth, statistics, the JSON result schema, plotting, the cache
//! benchmark's traces and replay, and the load generator's workload and lean
//! gRPC client. The binary in `main.rs` wires these into
//! subcommands; keeping them in a library makes them unit-testable and
//! reusable from other benches.

pub mod cache_replay;
pub mod dataset;
pub mod groundtruth;
pub mod h2_client;
pub mod load;
pub mod plot;
pub mod report;
pub mod stats;
pub mod synthetic;
pub mod traces;
