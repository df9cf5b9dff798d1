//! `kyro-bench embed` without RocksDB: the very same code
//! (`benches/src/embed_runs.rs`), built as an example of this crate so that
//! the embedder can be measured on a machine where kyro-bench (which links
//! kyro-engine and so RocksDB) is not built.
//! `cargo run --release -p kyro-embed --example embed_bench -- --texts FILE …`

use clap::Parser;

#[path = "../../benches/src/embed_runs.rs"]
mod embed_runs;

#[derive(Parser)]
#[command(name = "embed_bench", about = "kyro-bench embed, standalone")]
struct Cli {
    #[command(flatten)]
    args: embed_runs::EmbedArgs,
}

fn main() -> anyhow::Result<()> {
    embed_runs::run_embed(Cli::parse().args)
}
