//! The `kyro-gateway` binary: flags, configuration, serve until SIGTERM or
//! SIGINT (graceful).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use api_gateway::config::GatewayConfig;
use api_gateway::{server, telemetry};
use clap::Parser;

/// mimalloc instead of glibc's allocator, as in kyro-server: under load
/// glibc's `malloc`/`free` were a third of the runtime threads' CPU
/// (docs/benchmarks.md, "REST gateway load").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for this process. mimalloc asks for
/// them on its memory; each time it returned a stretch to the OS and used
/// it again, the kernel faulted in and zeroed a whole 2 MiB page, about 5 %
/// of the gateway's CPU under the REST load, gone with this (see
/// docs/benchmarks.md, "Pages the gateway zeroed for nothing").
/// kyro-server is left as it is: its in-memory graphs may gain from huge
/// pages, which is not measured.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE takes an integer flag and no pointer;
        // it only changes how the kernel backs this process's memory.
        let result = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if result != 0 {
            eprintln!(
                "kyro-gateway: could not turn transparent huge pages off: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// KyroDB's REST gateway. Settings come from built-in defaults, then the
/// TOML file, then `KYRO_GATEWAY__SECTION__KEY` environment variables, then
/// flags.
#[derive(Debug, Parser)]
#[command(name = "kyro-gateway", version)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, env = "KYRO_GATEWAY_CONFIG")]
    config: Option<PathBuf>,
    /// The folder of the customer database (`data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// HTTP listen address (`listen`).
    #[arg(long)]
    listen: Option<String>,
    /// kyro-server's text instance (`engine.text_url`).
    #[arg(long)]
    engine_text: Option<String>,
    /// kyro-server's image instance (`engine.image_url`).
    #[arg(long)]
    engine_image: Option<String>,
    /// The embedding model folder (`model.dir`).
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// Log lines as JSON (`log.format = "json"`).
    #[arg(long)]
    log_json: bool,
    /// Any setting: `dotted.key=value` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Print the effective configuration and exit.
    #[arg(long)]
    print_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Serve the MCP tools on stdin/stdout (for assistants that launch
    /// tools as processes), each call going to a running gateway's REST
    /// API with the given key. Logs go to stderr.
    McpStdio {
        /// The gateway's URL.
        #[arg(
            long,
            env = "KYRO_GATEWAY_URL",
            default_value = "http://127.0.0.1:8080"
        )]
        url: String,
        /// An `em_live_…` key of the customer whose memory the tools use.
        #[arg(long, env = "KYRO_API_KEY", hide_env_values = true)]
        key: String,
    },
}

fn overrides(cli: &Cli) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut put = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            pairs.push((key.to_owned(), value));
        }
    };
    put(
        "data_dir",
        cli.data_dir.as_ref().map(|d| d.display().to_string()),
    );
    put("listen", cli.listen.clone());
    put("engine.text_url", cli.engine_text.clone());
    put("engine.image_url", cli.engine_image.clone());
    put(
        "model.dir",
        cli.model_dir.as_ref().map(|d| d.display().to_string()),
    );
    if cli.log_json {
        put("log.format", Some("json".to_owned()));
    }
    for set in &cli.set {
        let (key, value) = set
            .split_once('=')
            .ok_or_else(|| format!("--set {set:?}: expected KEY=VALUE"))?;
        pairs.push((key.trim().to_owned(), value.trim().to_owned()));
    }
    Ok(pairs)
}

fn main() -> ExitCode {
    disable_transparent_huge_pages();
    let cli = Cli::parse();
    if let Some(Command::McpStdio { url, key }) = &cli.command {
        return mcp_stdio(url, key);
    }
    let config = match overrides(&cli)
        .map_err(anyhow::Error::msg)
        .and_then(|pairs| {
            GatewayConfig::load(cli.config.as_deref(), std::env::vars(), &pairs).map_err(Into::into)
        }) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("kyro-gateway: configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.print_config {
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }
    telemetry::init_tracing(&config.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("kyro-gateway")
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("kyro-gateway: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kyro-gateway: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn mcp_stdio(url: &str, key: &str) -> ExitCode {
    telemetry::init_tracing(&api_gateway::config::LogSettings {
        format: "text".to_owned(),
        level: "warn".to_owned(),
    });
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("kyro-gateway mcp-stdio: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(api_gateway::mcp::serve_stdio(url, key)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kyro-gateway mcp-stdio: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: GatewayConfig) -> anyhow::Result<()> {
    let metrics = telemetry::install_recorder().ok();
    let started = server::start(config, metrics).await?;
    // Machine-readable lines on stdout (tests and scripts read them); logs
    // go to stderr.
    {
        let mut out = std::io::stdout().lock();
        if let Some(key) = &started.bootstrap_key {
            writeln!(out, "admin key (shown once, stored hashed): {key}")?;
        }
        writeln!(out, "listening: http {}", started.address)?;
        writeln!(out, "ready")?;
        out.flush()?;
    }
    started.serve(server::shutdown_signal()).await
}
