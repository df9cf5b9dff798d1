//! The command line: global flags and one subcommand per task.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::formats::Format;

/// kyro: import, export, snapshot, inspect and search a KyroDB server from
/// a terminal or a script.
#[derive(Debug, Parser)]
#[command(name = "kyro", version)]
pub struct Cli {
    /// The kyro-server instance to talk to (one port per instance).
    #[arg(
        long,
        global = true,
        env = "KYRO_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub url: String,
    /// The kyro-server API key.
    #[arg(long, global = true, env = "KYRO_API_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// The tenant a `service` key acts for (sent as `x-kyro-tenant`).
    #[arg(long, global = true, env = "KYRO_TENANT")]
    pub tenant: Option<String>,
    /// The REST gateway (`kyro search --text`, `kyro keys`).
    #[arg(
        long,
        global = true,
        env = "KYRO_GATEWAY_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub gateway_url: String,
    /// The gateway API key (`em_live_…`); defaults to --key.
    #[arg(long, global = true, env = "KYRO_GATEWAY_KEY", hide_env_values = true)]
    pub gateway_key: Option<String>,
    /// Print one JSON document on stdout (for scripts) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress bars and no notes on stderr.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load points from a file into a namespace (BulkInsert, resumable).
    Import(ImportArgs),
    /// Write a namespace's points to a file (Scroll).
    Export(ExportArgs),
    /// Create, list and restore snapshots.
    Snapshot {
        #[command(subcommand)]
        action: SnapshotAction,
    },
    /// The instance's sizes and caches, and the namespaces the key sees.
    Stats(StatsArgs),
    /// The nearest points to a vector from a file, or to a text embedded
    /// by the gateway.
    Search(SearchArgs),
    /// Gateway API keys (admin key): list, create, revoke.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
}

/// `kyro import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The namespace to load into (created by its first write).
    pub namespace: String,
    /// The input file.
    #[arg(long, short)]
    pub input: PathBuf,
    /// The input's format (default: from the extension: .fvecs, .npy,
    /// .jsonl/.ndjson, .parquet).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// For fvecs/npy: a JSON Lines file with `{"id", "payload"}` per row.
    #[arg(long)]
    pub meta: Option<PathBuf>,
    /// Points per BulkInsert call (each acknowledged call is checkpointed).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: u32,
    /// The id of a record without one is its position plus this.
    #[arg(long, default_value_t = 0)]
    pub id_start: u64,
    /// Continue an import that stopped, after its last acknowledged batch.
    #[arg(long)]
    pub resume: bool,
    /// The checkpoint file (default: `<input>.kyro-import`).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Retries of a batch refused with UNAVAILABLE or RESOURCE_EXHAUSTED
    /// (with backoff) before giving up.
    #[arg(long, default_value_t = 3)]
    pub retries: u32,
}

/// `kyro export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The namespace to export.
    pub namespace: String,
    /// The output file (written as `<output>.partial`, renamed when complete).
    #[arg(long, short)]
    pub output: PathBuf,
    /// The output's format (default: from the extension).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// For fvecs/npy: also write ids and payloads, one JSON line per row.
    #[arg(long)]
    pub meta: Option<PathBuf>,
    /// Only points whose payload matches (JSON, as in docs/api.md).
    #[arg(long)]
    pub filter: Option<String>,
    /// Points per Scroll page.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub page_size: u32,
}

/// `kyro snapshot …`.
#[derive(Debug, Subcommand)]
pub enum SnapshotAction {
    /// Ask the server for a snapshot of the instance (CreateSnapshot, admin).
    Create {
        /// The snapshot's name (default: a timestamped one).
        name: Option<String>,
    },
    /// List the snapshots in a data directory (on the server's machine).
    List(SnapshotDirArgs),
    /// Restore an instance from a snapshot (server stopped; runs
    /// `kyro-server restore`).
    Restore {
        /// A snapshot name (in `<data-dir>/snapshots/<instance>/`) or path.
        snapshot: String,
        #[command(flatten)]
        dir: SnapshotDirArgs,
        /// The instance's data directory when it is not
        /// `<data-dir>/<instance>` (`instances.<name>.data_dir`).
        #[arg(long)]
        instance_dir: Option<PathBuf>,
        /// The server's configuration file, passed to `kyro-server restore`.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The kyro-server binary (default: KYRO_SERVER_BIN, else next to
        /// `kyro`, else on PATH).
        #[arg(long)]
        server_bin: Option<PathBuf>,
        /// Restore even though something answers at --url.
        #[arg(long)]
        skip_server_check: bool,
    },
}

/// Where snapshots live on disk.
#[derive(Debug, Args)]
pub struct SnapshotDirArgs {
    /// The server's data directory.
    #[arg(long, env = "KYRO_DATA_DIR", default_value = "kyro-data")]
    pub data_dir: PathBuf,
    /// The instance.
    #[arg(long, default_value = "text")]
    pub instance: String,
}

/// `kyro stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Every tenant's namespaces (admin key).
    #[arg(long)]
    pub all_tenants: bool,
}

/// `kyro search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// The namespace to search.
    pub namespace: String,
    /// A file holding the query vector: .fvecs, .npy, .jsonl (a point
    /// line) or .json (an array, or an object with "vector").
    #[arg(long, conflicts_with_all = ["text", "vector"])]
    pub query: Option<PathBuf>,
    /// Which row (fvecs/npy, from 0) or record (jsonl, from 0) of --query.
    #[arg(long, default_value_t = 0)]
    pub row: u64,
    /// The query vector itself, as a JSON array.
    #[arg(long, conflicts_with = "text")]
    pub vector: Option<String>,
    /// A text to embed through the gateway's /api/v1/embeddings.
    #[arg(long)]
    pub text: Option<String>,
    /// Results wanted.
    #[arg(long, short, default_value_t = 10)]
    pub k: u32,
    /// Search breadth (0: the instance default).
    #[arg(long, default_value_t = 0)]
    pub ef: u32,
    /// Only points whose payload matches (JSON, as in docs/api.md).
    #[arg(long)]
    pub filter: Option<String>,
    /// Drop hits scoring below this.
    #[arg(long)]
    pub min_score: Option<f32>,
    /// Return the hits' vectors too.
    #[arg(long)]
    pub with_vector: bool,
}

/// `kyro keys …` (the gateway's admin API).
#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// A customer's keys.
    List {
        /// The customer (`cus_…`).
        #[arg(long)]
        customer: String,
    },
    /// A new key for a customer; the key is printed once.
    Create {
        /// The customer (`cus_…`).
        #[arg(long)]
        customer: String,
        /// Comma-separated scopes: read, write, admin, gate.
        #[arg(long, value_delimiter = ',', default_value = "read,write")]
        scopes: Vec<String>,
        /// Limit the key to one project.
        #[arg(long)]
        project: Option<String>,
        /// Expiry (RFC 3339).
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// Revoke a key: it fails from the next request on.
    Revoke {
        /// The key id (the `key_id` of list/create).
        key_id: String,
    },
}
