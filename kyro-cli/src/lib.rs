//! `kyro`, KyroDB's command-line tool: moves points between files and a
//! namespace (fvecs, npy, JSON Lines, Parquet), takes and restores
//! snapshots, shows stats, searches, and manages the gateway's API keys.
//!
//! It is a client like any other: kyro-server over gRPC (`kyro-proto`),
//! the REST gateway over HTTP/1.1. It never links the engine.
//! `docs/cli.md` describes every command.

pub mod checkpoint;
pub mod cli;
pub mod client;
pub mod commands;
pub mod error;
pub mod filter;
pub mod formats;
pub mod http;
pub mod output;
pub mod payload;
