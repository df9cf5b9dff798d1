//! `kyro-proto`: KyroDB's gRPC API (`proto/kyro/v1/kyro.proto`, package
//! `kyro.v1`) as Rust types, with the tonic client and server. The server,
//! the gateway, the benchmarks and the tests all use these.

pub mod codec;
mod unix;

pub use unix::unix_channel;

/// The `kyro.v1` package.
pub mod v1 {
    #![allow(clippy::large_enum_variant, clippy::doc_lazy_continuation)]
    tonic::include_proto!("kyro.v1");
}

/// The encoded `FileDescriptorSet` of the API, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/kyro_descriptor.bin"));

/// The path of the `.proto` file, relative to this crate's directory, for
/// clients that generate their own stubs (the README's Python walk-through).
pub const PROTO_PATH: &str = "kyro/v1/kyro.proto";
