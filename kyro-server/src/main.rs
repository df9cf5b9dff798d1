//! The `kyro-server` binary: parse flags, load the configuration, serve
//! until SIGTERM/SIGINT (graceful) while SIGHUP reloads the keys file.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kyro_server::auth::KeyEntry;
use kyro_server::auth::{generate_key, hash_key, KeysFile};
use kyro_server::config::ServerConfig;
use kyro_server::{server, telemetry};

/// mimalloc instead of glibc's allocator: request handling allocates and
/// frees many small buffers across threads (measured in docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// KyroDB's gRPC server. Settings come from built-in defaults, then the
/// TOML file, then `KYRO__SECTION__KEY` environment variables, then flags.
#[derive(Debug, Parser)]
#[command(name = "kyro-server", version)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, env = "KYRO_CONFIG")]
    config: Option<PathBuf>,
    /// Root data directory (`data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// An instance's gRPC address: `NAME=HOST:PORT` (repeatable).
    #[arg(long = "listen", value_name = "NAME=ADDR")]
    listen: Vec<String>,
    /// The HTTP address of `/metrics` and health (`http.listen`).
    #[arg(long)]
    http_listen: Option<String>,
    /// Log lines as JSON (`log.format = "json"`).
    #[arg(long)]
    log_json: bool,
    /// Any setting: `dotted.key=value` (repeatable), e.g.
    /// `--set instances.text.fsync=always`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Print the effective configuration and exit.
    #[arg(long)]
    print_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manage API keys in the keys file (a running server picks changes up
    /// on SIGHUP).
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Restore an instance's data directory from a snapshot (server
    /// stopped; the instance's directory must be absent or empty — move the
    /// old one aside first).
    Restore {
        /// The instance to restore (`text`, `image`, …).
        #[arg(long)]
        instance: String,
        /// The snapshot directory (from CreateSnapshot).
        #[arg(long)]
        from: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum KeysAction {
    /// Create a key, store its hash, print the key once.
    Create {
        /// The tenant whose namespaces the key reaches.
        #[arg(long)]
        tenant: String,
        /// Comma-separated scopes: read, write, admin, service.
        #[arg(long, value_delimiter = ',', default_value = "read,write")]
        scopes: Vec<String>,
        /// A label for logs (default: `<tenant>-<n>`).
        #[arg(long)]
        name: Option<String>,
    },
    /// List the keys in the keys file (names, tenants, scopes; no secrets).
    List,
}

fn split_pair(flag: &str, pair: &str) -> Result<(String, String), String> {
    pair.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .ok_or_else(|| format!("{flag} {pair:?}: expected KEY=VALUE"))
}

fn overrides(cli: &Cli) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    if let Some(dir) = &cli.data_dir {
        pairs.push(("data_dir".to_owned(), dir.display().to_string()));
    }
    for listen in &cli.listen {
        let (name, address) = split_pair("--listen", listen)?;
        pairs.push((format!("instances.{name}.listen"), address));
    }
    if let Some(address) = &cli.http_listen {
        pairs.push(("http.listen".to_owned(), address.clone()));
    }
    if cli.log_json {
        pairs.push(("log.format".to_owned(), "json".to_owned()));
    }
    for set in &cli.set {
        pairs.push(split_pair("--set", set)?);
    }
    Ok(pairs)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match overrides(&cli)
        .map_err(anyhow::Error::msg)
        .and_then(|pairs| {
            ServerConfig::load(cli.config.as_deref(), std::env::vars(), &pairs).map_err(Into::into)
        }) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("kyro-server: configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.print_config {
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }
    let result = match cli.command {
        Some(Command::Keys { action }) => manage_keys(&config, action),
        Some(Command::Restore { instance, from }) => restore(&config, &instance, &from),
        None => serve(config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kyro-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn manage_keys(config: &ServerConfig, action: KeysAction) -> anyhow::Result<()> {
    let path = config.keys_file();
    let mut file = KeysFile::read(&path)?;
    match action {
        KeysAction::Create {
            tenant,
            scopes,
            name,
        } => {
            let key = generate_key();
            let name = name.unwrap_or_else(|| format!("{tenant}-{}", file.keys.len() + 1));
            let entry = KeyEntry {
                name,
                tenant,
                scopes,
                sha256: hash_key(&key),
            };
            kyro_server::auth::ApiKey::from_entry(&entry).map_err(anyhow::Error::msg)?;
            file.keys.push(entry);
            file.write(&path)?;
            println!("{key}");
            eprintln!(
                "kyro-server: key stored (hash only) in {}; send SIGHUP to a running server to load it",
                path.display()
            );
        }
        KeysAction::List => {
            for key in &file.keys {
                println!(
                    "{}\ttenant={}\tscopes={}",
                    key.name,
                    key.tenant,
                    key.scopes.join(",")
                );
            }
        }
    }
    Ok(())
}

fn restore(config: &ServerConfig, instance: &str, from: &std::path::Path) -> anyhow::Result<()> {
    let settings = config.instances.get(instance).ok_or_else(|| {
        anyhow::anyhow!("--instance: no instance named {instance:?} is configured")
    })?;
    let target = config.instance_dir(instance, settings);
    kyro_engine::storage::Instance::restore_snapshot(from, &target)?;
    println!("restored {} into {}", from.display(), target.display());
    Ok(())
}

fn serve(config: ServerConfig) -> anyhow::Result<()> {
    telemetry::init_tracing(&config.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.limits.effective_io_threads())
        .enable_all()
        .thread_name("kyro-io")
        .build()?;
    let auth_enabled = config.auth.enabled;
    let served = runtime.block_on(async move {
        let signals = StopSignals::listen()?;
        let started = server::start(config).await?;
        // Machine-readable lines on stdout (tests and scripts read them);
        // logs go to stderr.
        let mut out = std::io::stdout().lock();
        if let Some(key) = &started.bootstrap_key {
            writeln!(out, "admin key (shown once, stored hashed): {key}")?;
        }
        if !auth_enabled {
            writeln!(
                out,
                "WARNING: authentication is DISABLED (auth.enabled = false): anyone who can reach the ports is an admin. Local development only."
            )?;
        }
        for (name, address) in &started.grpc_addresses {
            writeln!(out, "listening: {name} grpc {address}")?;
        }
        for (name, socket) in &started.unix_sockets {
            writeln!(out, "listening: {name} grpc unix:{}", socket.display())?;
        }
        writeln!(out, "listening: http {}", started.http_address)?;
        writeln!(out, "ready")?;
        out.flush()?;
        drop(out);
        tracing::info!("ready");
        signals.wait(&started).await?;
        tracing::info!("shutting down: draining in-flight calls");
        started.shutdown().await?;
        tracing::info!("stopped");
        Ok(())
    });
    // Whatever still runs on the runtime (a call that outlived the drain)
    // must not hold the exit past the shutdown budget.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    served
}

/// The signals that stop the server or reload its keys. SIGHUP is listened
/// to from before the `ready` line, so that a script that sends it once it
/// reads `ready` never meets the default action (terminate); SIGTERM and
/// SIGINT keep their default during start-up (a stop mid-recovery is as
/// safe as a crash, and does not wait for the recovery to finish).
#[cfg(unix)]
struct StopSignals {
    hangup: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl StopSignals {
    fn listen() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// Until SIGTERM or SIGINT; SIGHUP reloads the keys file.
    async fn wait(mut self, started: &server::StartedServer) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        loop {
            tokio::select! {
                _ = terminate.recv() => return Ok(()),
                _ = interrupt.recv() => return Ok(()),
                _ = self.hangup.recv() => match started.reload_keys() {
                    Ok(count) => tracing::info!(keys = count, "keys reloaded"),
                    Err(e) => tracing::error!(error = %e, "keys reload failed; the previous keys stay in force"),
                },
            }
        }
    }
}

#[cfg(not(unix))]
struct StopSignals;

#[cfg(not(unix))]
impl StopSignals {
    fn listen() -> std::io::Result<Self> {
        Ok(Self)
    }

    /// Until Ctrl-C.
    async fn wait(self, _started: &server::StartedServer) -> std::io::Result<()> {
        tokio::signal::ctrl_c().await
    }
}
