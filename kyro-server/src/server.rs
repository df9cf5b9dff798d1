//! Putting the server together: open the instances, bind every listener,
//! serve until told to stop, then drain and close.
//!
//! [`start`] returns once every listener is bound (port 0 resolves to a real
//! port first), so a caller can print addresses and keys before traffic
//! arrives; [`StartedServer::shutdown`] is the graceful stop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use kyro_engine::storage::Instance;
use kyro_proto::v1::kyro_server::KyroServer;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tonic_health::server::HealthReporter;

use crate::auth::{KeyRing, KeysFileError};
use crate::config::ServerConfig;
use crate::context::InstanceContext;
use crate::http::{self, HttpState};
use crate::refusals::Accounted;
use crate::service::KyroService;
use crate::telemetry;
use crate::workers::WorkerPool;

/// The whole graceful stop — drain, WAL sync, close — ends within this
/// (docs/operations.md promises it).
const SHUTDOWN_BUDGET: Duration = Duration::from_secs(30);

/// Kept from the budget for closing the instances after the drain: stopping
/// the background threads (a merge in progress is cancelled, a seal is
/// bounded by the hot tier's size) and the final WAL fsync.
const CLOSE_RESERVE: Duration = Duration::from_secs(5);

/// A running server.
pub struct StartedServer {
    /// Each instance's name and bound gRPC address, in configuration order.
    pub grpc_addresses: Vec<(String, SocketAddr)>,
    /// The Unix sockets instances also listen on (`listen_unix`).
    pub unix_sockets: Vec<(String, PathBuf)>,
    /// The bound HTTP address.
    pub http_address: SocketAddr,
    /// The admin key generated at this start (first start with no keys).
    pub bootstrap_key: Option<String>,
    keys: Arc<KeyRing>,
    /// Stops the gRPC listeners (graceful: in-flight calls finish).
    stop: watch::Sender<bool>,
    /// Stops the HTTP listener, after the gRPC drain: probes keep getting
    /// answers (503 from `/health/ready`) while calls drain.
    stop_http: watch::Sender<bool>,
    grpc_tasks: Vec<JoinHandle<Result<(), tonic::transport::Error>>>,
    http_task: JoinHandle<std::io::Result<()>>,
    health: Vec<HealthReporter>,
    http_state: Arc<HttpState>,
}

/// The process-wide recorder's handle, installed by the first server started
/// in this process (servers started at once in one process, as tests do,
/// share it; the install runs once even when they race).
fn metrics_handle() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();
    HANDLE
        .get_or_init(|| telemetry::install_recorder().map_err(|e| e.to_string()))
        .clone()
        .map_err(|e| anyhow::anyhow!("installing the metrics recorder: {e}"))
}

fn tls_config(config: &ServerConfig) -> anyhow::Result<Option<ServerTlsConfig>> {
    let (Some(cert), Some(key)) = (&config.tls.cert, &config.tls.key) else {
        return Ok(None);
    };
    let read = |path: &std::path::Path, what: &str| {
        std::fs::read(path).with_context(|| format!("tls.{what}: reading {}", path.display()))
    };
    let mut tls =
        ServerTlsConfig::new().identity(Identity::from_pem(read(cert, "cert")?, read(key, "key")?));
    if let Some(ca) = &config.tls.client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(read(ca, "client_ca")?));
    }
    Ok(Some(tls))
}

/// Reflection over the Kyro and health services (grpcurl and other tools
/// ask either protocol version).
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(kyro_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}

/// Opens the instances and binds and starts every listener.
pub async fn start(config: ServerConfig) -> anyhow::Result<StartedServer> {
    let metrics = metrics_handle()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("data_dir: creating {}", config.data_dir.display()))?;

    let keys = Arc::new(
        KeyRing::load(&config.auth.keys, config.keys_file()).context("auth: loading keys")?,
    );
    let mut bootstrap_key = None;
    if config.auth.enabled {
        if keys.is_empty() {
            bootstrap_key = Some(
                keys.bootstrap_admin()
                    .context("auth: writing the bootstrap key")?,
            );
            tracing::warn!(keys_file = %keys.keys_file().display(), "no API keys were configured: generated an admin key (printed once on stdout)");
        }
    } else {
        tracing::warn!("AUTHENTICATION IS DISABLED (auth.enabled = false): every request is an admin of tenant \"default\". Use this for local development only.");
    }

    let workers = Arc::new(
        WorkerPool::new(config.limits.worker_threads, config.limits.worker_spin())
            .context("starting the worker pool")?,
    );
    let config_toml = Arc::new(config.to_toml());
    let io_spin = crate::io_spin::IoSpin::new(config.limits.io_spin());
    tokio::spawn(io_spin.clone().run());
    let tls = tls_config(&config)?;

    let mut opened = Vec::new();
    for (name, settings) in &config.instances {
        let engine_config = settings.engine_config(name)?;
        let dir = config.instance_dir(name, settings);
        let open_dir = dir.clone();
        let instance =
            tokio::task::spawn_blocking(move || Instance::open(&open_dir, engine_config))
                .await
                .context("opening an instance")?
                .with_context(|| format!("instances.{name}: opening {}", dir.display()))?;
        tracing::info!(instance = %name, dir = %dir.display(), dim = settings.dim, metric = %settings.metric, "instance open");
        opened.push((name.clone(), Arc::new(instance)));
    }

    let (stop, stopped) = watch::channel(false);
    let (stop_http, http_stopped) = watch::channel(false);
    let mut grpc_addresses = Vec::new();
    let mut unix_sockets = Vec::new();
    let mut grpc_tasks = Vec::new();
    let mut health = Vec::new();
    // Reflection describes the same services on every port: build it once.
    let reflection_v1 = reflection()
        .build_v1()
        .context("building gRPC reflection")?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .context("building gRPC reflection")?;
    for (name, instance) in &opened {
        let address = config.listen_address(name)?;
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("instances.{name}.listen: binding {address}"))?;
        let bound = listener.local_addr()?;
        let context = Arc::new(InstanceContext {
            name: name.clone(),
            instance: instance.clone(),
            keys: keys.clone(),
            auth_enabled: config.auth.enabled,
            workers: workers.clone(),
            metrics: telemetry::RequestMetrics::new(name),
            limiter: Arc::new(Semaphore::new(config.limits.max_concurrent_requests)),
            max_concurrent_requests: config.limits.max_concurrent_requests,
            default_timeout: config.default_timeout(),
            max_batch_searches: config.limits.max_batch_searches,
            snapshot_dir: config.snapshot_dir(name),
            config_toml: config_toml.clone(),
            io_spin: io_spin.clone(),
        });
        let (reporter, health_service) = tonic_health::server::health_reporter();
        reporter.set_serving::<KyroServer<KyroService>>().await;
        let kyro = KyroServer::new(KyroService::new(context.clone()))
            .max_decoding_message_size(config.limits.max_message_bytes)
            .max_encoding_message_size(config.limits.max_message_bytes);
        let kyro = Accounted::new(kyro, context);
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = &tls {
            builder = builder
                .tls_config(tls.clone())
                .context("tls: configuring the gRPC listeners")?;
        }
        let router = builder
            .add_service(health_service)
            .add_service(reflection_v1.clone())
            .add_service(reflection_v1alpha.clone())
            .add_service(kyro);
        if let Some(socket) = config
            .instances
            .get(name)
            .and_then(|s| s.listen_unix.as_ref())
        {
            let listener = bind_unix(socket).with_context(|| {
                format!("instances.{name}.listen_unix: binding {}", socket.display())
            })?;
            grpc_tasks.push(tokio::spawn(router.clone().serve_with_incoming_shutdown(
                UnixListenerStream::new(listener),
                stop_requested(stopped.clone()),
            )));
            unix_sockets.push((name.clone(), socket.clone()));
        }
        // Our own listener (bound above, so port 0 resolves before we
        // report it): tonic's `tcp_nodelay` only covers listeners it binds,
        // so set it here. Without it, Nagle plus delayed ACKs stall small
        // responses by 40 ms.
        let incoming = TcpIncoming::from(listener)
            .with_nodelay(Some(true))
            .with_keepalive(Some(Duration::from_secs(60)));
        grpc_tasks.push(tokio::spawn(router.serve_with_incoming_shutdown(
            incoming,
            stop_requested(stopped.clone()),
        )));
        health.push(reporter);
        grpc_addresses.push((name.clone(), bound));
    }

    let http_state = Arc::new(HttpState {
        metrics,
        instances: opened,
        ready: false.into(),
    });
    let http_address = config.http_address()?;
    let http_listener = TcpListener::bind(http_address)
        .await
        .with_context(|| format!("http.listen: binding {http_address}"))?;
    let http_bound = http_listener.local_addr()?;
    let http_server = axum::serve(http_listener, http::router(http_state.clone()))
        .with_graceful_shutdown(stop_requested(http_stopped));
    let http_task = tokio::spawn(async move { http_server.await });
    http_state.ready.store(true, Ordering::Release);
    Ok(StartedServer {
        grpc_addresses,
        unix_sockets,
        http_address: http_bound,
        bootstrap_key,
        keys,
        stop,
        stop_http,
        grpc_tasks,
        http_task,
        health,
        http_state,
    })
}

impl StartedServer {
    /// Re-reads the keys file (SIGHUP).
    pub fn reload_keys(&self) -> Result<usize, KeysFileError> {
        self.keys.reload()
    }

    /// Stops accepting, lets in-flight calls finish, then syncs and closes
    /// every instance, all within [`SHUTDOWN_BUDGET`]. `/health/ready`
    /// answers 503 from the first moment until the HTTP listener stops,
    /// after the drain.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let began = tokio::time::Instant::now();
        let drain_deadline = began + SHUTDOWN_BUDGET - CLOSE_RESERVE;
        self.http_state.ready.store(false, Ordering::Release);
        for reporter in &self.health {
            reporter.set_not_serving::<KyroServer<KyroService>>().await;
            // "" is the whole server's status.
            reporter
                .set_service_status("", tonic_health::ServingStatus::NotServing)
                .await;
        }
        let _ = self.stop.send(true);
        let drain = async {
            for task in self.grpc_tasks {
                match task.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "a gRPC listener failed"),
                    Err(e) => tracing::error!(error = %e, "a gRPC listener task failed"),
                }
            }
        };
        if tokio::time::timeout_at(drain_deadline, drain)
            .await
            .is_err()
        {
            tracing::warn!(
                "in-flight calls did not finish within {:?}; closing anyway",
                SHUTDOWN_BUDGET - CLOSE_RESERVE
            );
        }
        for (name, socket) in &self.unix_sockets {
            if let Err(e) = std::fs::remove_file(socket) {
                tracing::warn!(instance = %name, socket = %socket.display(), error = %e, "could not remove the Unix socket");
            }
        }
        let _ = self.stop_http.send(true);
        match tokio::time::timeout(Duration::from_secs(1), self.http_task).await {
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "the HTTP listener failed"),
            Ok(Err(e)) => tracing::error!(error = %e, "the HTTP listener task failed"),
            _ => {}
        }
        let instances: Vec<(String, Arc<Instance>)> = match Arc::try_unwrap(self.http_state) {
            Ok(state) => state.instances,
            Err(shared) => shared.instances.clone(),
        };
        let close_deadline = (began + SHUTDOWN_BUDGET - Duration::from_secs(1)).into_std();
        tokio::task::spawn_blocking(move || close_instances(instances, close_deadline))
            .await
            .context("closing instances")?
    }
}

/// Resolves once [`StartedServer::shutdown`] asks the listeners to stop (or
/// the sender is gone).
async fn stop_requested(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// Binds a Unix socket at `path`, replacing a socket file an earlier run
/// left behind (never any other kind of file).
fn bind_unix(path: &Path) -> anyhow::Result<UnixListener> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            std::fs::remove_file(path).context("removing the stale socket")?
        }
        Ok(_) => anyhow::bail!("the path exists and is not a socket"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).context("inspecting the path"),
    }
    Ok(UnixListener::bind(path)?)
}

/// Waits (until `deadline`) for work still running on the pool for a call
/// whose client went away, then closes each instance.
fn close_instances(
    instances: Vec<(String, Arc<Instance>)>,
    deadline: std::time::Instant,
) -> anyhow::Result<()> {
    let mut failed = None;
    for (name, mut instance) in instances {
        let owned = loop {
            match Arc::try_unwrap(instance) {
                Ok(owned) => break Ok(owned),
                Err(shared) if std::time::Instant::now() < deadline => {
                    instance = shared;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(shared) => break Err(shared),
            }
        };
        let result = match owned {
            Ok(instance) => instance.close(),
            // Work still holds it after the wait: stop its background work
            // and sync what it logged; its later writes are in RocksDB's log
            // (durable per the fsync policy).
            Err(instance) => {
                tracing::warn!(instance = %name, "still in use at the shutdown deadline");
                instance.stop_and_sync()
            }
        };
        match result {
            Ok(()) => tracing::info!(instance = %name, "instance closed"),
            Err(e) => {
                tracing::error!(instance = %name, error = %e, "closing the instance failed");
                failed = Some(anyhow::anyhow!("instance {name}: {e}"));
            }
        }
    }
    failed.map_or(Ok(()), Err)
}
