//! Compiles `kyro/v1/kyro.proto` with protox (a protobuf compiler written in
//! Rust), so building needs no system `protoc`, and generates the tonic
//! client and server. The encoded descriptor set is kept for gRPC reflection.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "kyro/v1/kyro.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["."])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("kyro_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .codec_path("crate::codec::KyroCodec")
        .compile_fds(descriptors)?;
    Ok(())
}
