//! The server's configuration: built-in defaults, then a TOML file, then
//! `KYRO__SECTION__KEY` environment variables, then command-line flags, each
//! overriding the one before. [`ServerConfig::load`] does the layering;
//! `kyro-server --print-config` prints the result.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kyro_engine::storage::{FsyncPolicy, InstanceConfig, OptimizerConfig, PlannerConfig};
use kyro_engine::{HnswParams, Metric, Quantization};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::auth::{ApiKey, KeyEntry};
use crate::workers::available_cores;

/// The prefix of environment overrides: `KYRO__LIMITS__MAX_CONCURRENT_REQUESTS=64`
/// sets `limits.max_concurrent_requests`.
pub const ENV_PREFIX: &str = "KYRO__";

/// Why a configuration could not be loaded. Every variant names the setting
/// or file at fault.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

/// The whole server's settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Root of all data: each instance keeps `<data_dir>/<name>` unless it
    /// sets its own `data_dir`; keys and snapshots live here too.
    pub data_dir: PathBuf,
    /// The engine instances, by name; each listens on its own gRPC address.
    pub instances: BTreeMap<String, InstanceSettings>,
    pub http: HttpSettings,
    pub auth: AuthSettings,
    pub limits: LimitSettings,
    pub tls: TlsSettings,
    pub log: LogSettings,
}

/// The longest Unix socket path (`sun_path` holds 108 bytes with the NUL).
const MAX_UNIX_SOCKET_PATH: usize = 107;

/// One engine instance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct InstanceSettings {
    /// gRPC listen address (`host:port`; port 0 picks a free one).
    pub listen: String,
    /// Also serve the instance on this Unix socket (optional; the same
    /// service, keys and TLS settings as `listen`). For clients on the same
    /// machine, such as the gateway: no TCP stack between them. A stale
    /// socket file left by an earlier run is replaced; the file is removed at
    /// shutdown. Access is also governed by the file's permissions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen_unix: Option<PathBuf>,
    /// Vector dimension (fixed once the data directory exists).
    pub dim: usize,
    /// `cosine`, `dot` or `l2` (fixed once the data directory exists).
    #[serde(with = "as_text")]
    pub metric: Metric,
    /// Data directory; default `<data_dir>/<instance name>`.
    pub data_dir: Option<PathBuf>,
    /// WAL durability: `always`, `never` or `interval_ms=N`.
    #[serde(with = "as_text")]
    pub fsync: FsyncPolicy,
    /// HNSW: neighbours per node.
    pub hnsw_m: usize,
    /// HNSW: candidate list while building.
    pub hnsw_ef_construction: usize,
    /// Search breadth when a request leaves `ef` at 0.
    pub default_ef: usize,
    /// Points a namespace's hot tier holds before it is sealed to disk.
    pub hot_max_points: usize,
    /// Cold segment traversal vectors: `i8` or `none` (always rescored in f32).
    #[serde(with = "as_text")]
    pub cold_quantization: Quantization,
    /// Byte budget of the query-result cache (0 disables it).
    pub query_cache_bytes: u64,
    /// Byte budget of the point cache (0 disables it).
    pub point_cache_bytes: u64,
    /// How often the background optimizer looks for segments to merge
    /// (milliseconds).
    pub optimizer_interval_ms: u64,
    /// Merge cold segments of one size tier once there are this many (a
    /// tier spans a factor of this number in live points).
    pub merge_min_segments: usize,
    /// Cold segments with fewer live points than this take part in merges.
    pub small_segment_points: usize,
    /// A cold segment with at least this fraction of its points deleted is
    /// rewritten without them.
    pub rewrite_deleted_fraction: f64,
    /// Threads a merge or a rewrite builds its graph with (at least 1; more
    /// takes cores from searches while it runs).
    pub optimizer_build_threads: usize,
    /// Planner: a namespace with fewer live points than this is always
    /// searched exactly (recall 1.0).
    pub exact_namespace_points: usize,
    /// Planner: a filter matching at most this many points is answered by
    /// an exact scan of the matches instead of a graph traversal.
    pub exact_filter_matches: usize,
    /// Planner: a filter matching less than this fraction of the namespace
    /// is scanned exactly too.
    pub exact_filter_selectivity: f64,
}

impl InstanceSettings {
    fn with(listen: &str, dim: usize) -> Self {
        let engine = InstanceConfig::new(dim, Metric::Cosine);
        Self {
            listen: listen.to_owned(),
            listen_unix: None,
            dim,
            metric: Metric::Cosine,
            data_dir: None,
            fsync: engine.fsync,
            hnsw_m: engine.hnsw.m,
            hnsw_ef_construction: engine.hnsw.ef_construction,
            default_ef: engine.default_ef,
            hot_max_points: engine.hot_max_points,
            cold_quantization: engine.cold_quantization,
            query_cache_bytes: engine.cache.query_cache_bytes,
            point_cache_bytes: engine.cache.point_cache_bytes,
            optimizer_interval_ms: engine.optimizer.interval.as_millis() as u64,
            merge_min_segments: engine.optimizer.merge_min_segments,
            small_segment_points: engine.optimizer.small_segment_points,
            rewrite_deleted_fraction: engine.optimizer.rewrite_deleted_fraction,
            optimizer_build_threads: engine.optimizer.build_threads,
            exact_namespace_points: engine.planner.exact_namespace_points,
            exact_filter_matches: engine.planner.exact_filter_matches,
            exact_filter_selectivity: engine.planner.exact_filter_selectivity,
        }
    }
}

impl Default for InstanceSettings {
    fn default() -> Self {
        Self::with("127.0.0.1:0", 384)
    }
}

/// The HTTP listener: `/metrics`, `/health/live`, `/health/ready`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    pub listen: String,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9090".to_owned(),
        }
    }
}

/// API keys.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// `false` lets every request in as an admin of tenant `default`: for
    /// local development only; the server warns loudly at start.
    pub enabled: bool,
    /// Keys given in the configuration itself (hashes only).
    pub keys: Vec<KeyEntry>,
    /// A TOML file of `[[keys]]` entries, re-read on SIGHUP. Default
    /// `<data_dir>/keys.toml`; the bootstrap admin key is written there.
    pub keys_file: Option<PathBuf>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            keys: Vec::new(),
            keys_file: None,
        }
    }
}

/// Request limits and the worker pool.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// Requests in flight per instance; more are refused with
    /// RESOURCE_EXHAUSTED rather than queued.
    pub max_concurrent_requests: usize,
    /// Largest gRPC message, either direction.
    pub max_message_bytes: usize,
    /// Deadline applied when a client sends none (milliseconds; 0 = none).
    pub default_timeout_ms: u64,
    /// Threads of the pool that runs searches, writes and flushes (0 = one per core).
    pub worker_threads: usize,
    /// Microseconds an idle worker keeps polling the queue (yielding its
    /// core between polls) before it sleeps; 0 sleeps at once.
    pub worker_spin_us: u64,
    /// Microseconds the I/O runtime keeps polling (yielding its core
    /// between polls) after a request starts or finishes, before it sleeps
    /// in `epoll_wait`; 0 sleeps at once. See [`crate::io_spin`].
    pub io_spin_us: u64,
    /// Threads of the async runtime that moves bytes (0 = one per four
    /// cores, at least one: see [`LimitSettings::effective_io_threads`]).
    pub io_threads: usize,
    /// Most searches in one BatchSearch.
    pub max_batch_searches: usize,
}

impl LimitSettings {
    /// `io_spin_us` as a duration.
    pub fn io_spin(&self) -> Duration {
        Duration::from_micros(self.io_spin_us)
    }

    /// `worker_spin_us` as a duration.
    pub fn worker_spin(&self) -> Duration {
        Duration::from_micros(self.worker_spin_us)
    }

    /// The I/O threads to start: `io_threads`, or when 0 one per four cores
    /// (at least one). Moving a search's bytes costs about a fifth of the
    /// search itself; a second I/O thread on two cores only adds wake-ups
    /// between the runtime's threads (measured in docs/benchmarks.md).
    pub fn effective_io_threads(&self) -> usize {
        if self.io_threads > 0 {
            return self.io_threads;
        }
        (available_cores() / 4).max(1)
    }
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            max_concurrent_requests: 256,
            max_message_bytes: 64 << 20,
            default_timeout_ms: 30_000,
            worker_threads: 0,
            // Polling is off by default: it wins a few points only on a
            // machine that runs nothing else, and gives cores away to any
            // other work on a shared one (docs/operations.md).
            worker_spin_us: 0,
            io_spin_us: 0,
            io_threads: 0,
            max_batch_searches: 256,
        }
    }
}

/// TLS for the gRPC listeners. Both `cert` and `key` (PEM) turn it on;
/// `client_ca` additionally requires client certificates signed by it (mTLS).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub client_ca: Option<PathBuf>,
}

/// Logging: `format` is `text` or `json`; `level` an `EnvFilter` directive
/// (`RUST_LOG` wins when set).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, with the current span.
    Json,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        let mut instances = BTreeMap::new();
        instances.insert(
            "text".to_owned(),
            InstanceSettings::with("127.0.0.1:50051", 384),
        );
        instances.insert(
            "image".to_owned(),
            InstanceSettings::with("127.0.0.1:50052", 512),
        );
        Self {
            data_dir: PathBuf::from("kyro-data"),
            instances,
            http: HttpSettings::default(),
            auth: AuthSettings::default(),
            limits: LimitSettings::default(),
            tls: TlsSettings::default(),
            log: LogSettings::default(),
        }
    }
}

impl ServerConfig {
    /// Layers the defaults, `file` (when given), the environment
    /// (`KYRO__…` variables in `env`) and `overrides` (`dotted.key=value`
    /// pairs from the command line), then validates the result.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &[(String, String)],
    ) -> Result<Self, ConfigError> {
        let mut tree =
            toml::Value::try_from(ServerConfig::default()).map_err(|e| ConfigError::Parse {
                origin: "defaults".to_owned(),
                message: e.to_string(),
            })?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            let from_file: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Parse {
                origin: path.display().to_string(),
                message: e.to_string(),
            })?;
            merge(&mut tree, toml::Value::Table(from_file));
        }
        let mut env_pairs: Vec<(String, String)> = env
            .into_iter()
            .filter_map(|(name, value)| {
                let path = name.strip_prefix(ENV_PREFIX)?;
                Some((
                    path.split("__")
                        .collect::<Vec<_>>()
                        .join(".")
                        .to_ascii_lowercase(),
                    value,
                ))
            })
            .collect();
        env_pairs.sort();
        for (key, value) in env_pairs.iter().chain(overrides) {
            set_path(&mut tree, key, value)?;
        }
        // The path of a value that does not fit its setting (a metric that
        // does not exist, a number as text) names the setting in the error.
        let config: ServerConfig = serde_path_to_error::deserialize(tree).map_err(|e| {
            let key = e.path().to_string();
            invalid(key, e.into_inner().to_string())
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The configuration as TOML (key hashes are left out: they are secrets
    /// in the sense that they identify keys).
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        for key in &mut shown.auth.keys {
            key.sha256 = "<redacted>".to_owned();
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    /// The keys file: configured, or `<data_dir>/keys.toml`.
    pub fn keys_file(&self) -> PathBuf {
        self.auth
            .keys_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("keys.toml"))
    }

    /// Where snapshots are written: `<data_dir>/snapshots/<instance>/<name>`.
    pub fn snapshot_dir(&self, instance: &str) -> PathBuf {
        self.data_dir.join("snapshots").join(instance)
    }

    /// The data directory of `instance`.
    pub fn instance_dir(&self, name: &str, settings: &InstanceSettings) -> PathBuf {
        settings
            .data_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join(name))
    }

    /// The deadline applied to requests that carry none.
    pub fn default_timeout(&self) -> Option<Duration> {
        (self.limits.default_timeout_ms > 0)
            .then(|| Duration::from_millis(self.limits.default_timeout_ms))
    }

    /// Checks every setting, naming the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.instances.is_empty() {
            return Err(invalid("instances", "at least one instance is required"));
        }
        let mut addresses = BTreeMap::new();
        let mut sockets = BTreeMap::new();
        for (name, settings) in &self.instances {
            if !valid_name(name) {
                return Err(invalid(
                    format!("instances.{name}"),
                    "instance names are 1..=64 bytes of [A-Za-z0-9_-]",
                ));
            }
            settings.engine_config(name)?;
            let address = parse_address(&format!("instances.{name}.listen"), &settings.listen)?;
            if address.port() != 0 {
                if let Some(other) = addresses.insert(address, name) {
                    return Err(invalid(
                        format!("instances.{name}.listen"),
                        format!("{address} is also instance {other}'s address"),
                    ));
                }
            }
            if let Some(socket) = &settings.listen_unix {
                let key = format!("instances.{name}.listen_unix");
                let length = socket.as_os_str().len();
                if length == 0 || length > MAX_UNIX_SOCKET_PATH {
                    return Err(invalid(
                        key,
                        format!("a socket path is 1..={MAX_UNIX_SOCKET_PATH} bytes"),
                    ));
                }
                if let Some(other) = sockets.insert(socket, name) {
                    return Err(invalid(
                        key,
                        format!("{} is also instance {other}'s socket", socket.display()),
                    ));
                }
            }
        }
        parse_address("http.listen", &self.http.listen)?;
        for (i, key) in self.auth.keys.iter().enumerate() {
            ApiKey::from_entry(key).map_err(|reason| invalid(format!("auth.keys[{i}]"), reason))?;
        }
        let limits = &self.limits;
        if limits.max_concurrent_requests == 0 {
            return Err(invalid(
                "limits.max_concurrent_requests",
                "must be at least 1",
            ));
        }
        if limits.max_message_bytes < 1024 {
            return Err(invalid("limits.max_message_bytes", "must be at least 1024"));
        }
        if limits.io_spin_us > 10_000 {
            return Err(invalid("limits.io_spin_us", "must be at most 10000"));
        }
        if limits.max_batch_searches == 0 {
            return Err(invalid("limits.max_batch_searches", "must be at least 1"));
        }
        match (&self.tls.cert, &self.tls.key) {
            (Some(_), None) => return Err(invalid("tls.key", "tls.cert is set without tls.key")),
            (None, Some(_)) => return Err(invalid("tls.cert", "tls.key is set without tls.cert")),
            (None, None) if self.tls.client_ca.is_some() => {
                return Err(invalid("tls.client_ca", "mTLS needs tls.cert and tls.key"))
            }
            _ => {}
        }
        Ok(())
    }

    /// The parsed listen address of `instance`.
    pub fn listen_address(&self, name: &str) -> Result<SocketAddr, ConfigError> {
        let settings = self
            .instances
            .get(name)
            .ok_or_else(|| invalid(format!("instances.{name}"), "no such instance"))?;
        parse_address(&format!("instances.{name}.listen"), &settings.listen)
    }

    /// The parsed HTTP listen address.
    pub fn http_address(&self) -> Result<SocketAddr, ConfigError> {
        parse_address("http.listen", &self.http.listen)
    }
}

impl InstanceSettings {
    /// The engine configuration these settings describe.
    pub fn engine_config(&self, name: &str) -> Result<InstanceConfig, ConfigError> {
        let mut config = InstanceConfig::new(self.dim, self.metric);
        config.fsync = self.fsync;
        config.cold_quantization = self.cold_quantization;
        config.hnsw = HnswParams {
            m: self.hnsw_m,
            ef_construction: self.hnsw_ef_construction,
            ..HnswParams::default()
        };
        config.default_ef = self.default_ef;
        config.hot_max_points = self.hot_max_points;
        config.cache.query_cache_bytes = self.query_cache_bytes;
        config.cache.point_cache_bytes = self.point_cache_bytes;
        config.optimizer = OptimizerConfig {
            interval: std::time::Duration::from_millis(self.optimizer_interval_ms),
            merge_min_segments: self.merge_min_segments,
            small_segment_points: self.small_segment_points,
            rewrite_deleted_fraction: self.rewrite_deleted_fraction,
            build_threads: self.optimizer_build_threads,
            ..config.optimizer
        };
        config.planner = PlannerConfig {
            exact_namespace_points: self.exact_namespace_points,
            exact_filter_matches: self.exact_filter_matches,
            exact_filter_selectivity: self.exact_filter_selectivity,
        };
        config
            .validate()
            .map_err(|e| invalid(format!("instances.{name}"), e.to_string()))?;
        Ok(config)
    }
}

/// (De)serialises a setting through its `Display`/`FromStr` text, so that
/// the file says `fsync = "interval_ms=100"` and the program holds a
/// [`FsyncPolicy`]; a bad value is refused with the parser's message.
mod as_text {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{de, Deserialize, Deserializer, Serializer};

    pub fn serialize<T: Display, S: Serializer>(
        value: &T,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub fn deserialize<'de, T, D>(deserializer: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `ip:port`, or `host:port` resolved now (`localhost:50051`).
fn parse_address(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    if let Ok(address) = value.parse() {
        return Ok(address);
    }
    std::net::ToSocketAddrs::to_socket_addrs(value)
        .ok()
        .and_then(|mut addresses| addresses.next())
        .ok_or_else(|| invalid(key, format!("{value:?} is not host:port")))
}

/// Overlays `top` onto `base`, table by table.
fn merge(base: &mut toml::Value, top: toml::Value) {
    match (base, top) {
        (toml::Value::Table(base), toml::Value::Table(top)) => {
            for (key, value) in top {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, top) => *base = top,
    }
}

/// Sets the dotted `key` to `raw`, read as a TOML value when it parses as
/// one (`64`, `true`, `["read"]`) and as a string otherwise. Missing tables
/// are created (so `instances.audio.dim=768` adds an instance).
fn set_path(tree: &mut toml::Value, key: &str, raw: &str) -> Result<(), ConfigError> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(invalid(key, "empty path segment"));
    }
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()));
    let mut node = tree;
    for part in &parts[..parts.len() - 1] {
        let table = node
            .as_table_mut()
            .ok_or_else(|| invalid(key, format!("{part} is inside a value that is not a table")))?;
        node = table
            .entry((*part).to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    }
    let table = node
        .as_table_mut()
        .ok_or_else(|| invalid(key, "parent is not a table"))?;
    let last = parts[parts.len() - 1].to_owned();
    // A string setting keeps strings that happen to look like numbers.
    let value = match (table.get(&last), value) {
        (Some(toml::Value::String(_)), v) if !v.is_str() => toml::Value::String(raw.to_owned()),
        (_, v) => v,
    };
    table.insert(last, value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_threads_are_as_set_or_one_per_four_cores() {
        let mut limits = LimitSettings {
            io_threads: 3,
            ..LimitSettings::default()
        };
        assert_eq!(limits.effective_io_threads(), 3);
        limits.io_threads = 0;
        assert_eq!(
            limits.effective_io_threads(),
            (available_cores() / 4).max(1)
        );
        assert!(limits.effective_io_threads() >= 1);
    }

    #[test]
    fn defaults_describe_the_two_instances() {
        let config = ServerConfig::load(None, [], &[]).unwrap();
        assert_eq!(config.instances["text"].dim, 384);
        assert_eq!(config.instances["image"].dim, 512);
        assert_eq!(config.listen_address("text").unwrap().port(), 50051);
        assert_eq!(config.listen_address("image").unwrap().port(), 50052);
        assert!(config.auth.enabled);
    }

    #[test]
    fn file_then_env_then_flags_override_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kyro.toml");
        std::fs::write(
            &file,
            "data_dir = \"/srv/kyro\"\n[limits]\nmax_concurrent_requests = 8\n[instances.text]\nfsync = \"always\"\n",
        )
        .unwrap();
        let env = vec![
            (
                "KYRO__LIMITS__MAX_CONCURRENT_REQUESTS".to_owned(),
                "16".to_owned(),
            ),
            (
                "KYRO__INSTANCES__TEXT__DEFAULT_EF".to_owned(),
                "80".to_owned(),
            ),
            ("UNRELATED".to_owned(), "x".to_owned()),
        ];
        let flags = vec![("instances.text.default_ef".to_owned(), "96".to_owned())];
        let config = ServerConfig::load(Some(&file), env, &flags).unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/srv/kyro"));
        assert_eq!(config.limits.max_concurrent_requests, 16);
        assert_eq!(config.instances["text"].fsync, FsyncPolicy::Always);
        assert_eq!(config.instances["text"].default_ef, 96);
        assert_eq!(
            config.instances["image"].dim, 512,
            "untouched instance keeps defaults"
        );
    }

    #[test]
    fn bad_settings_are_named() {
        let long_path = "s".repeat(200);
        let cases = [
            (
                "instances.text.metric",
                "manhattan",
                "instances.text.metric",
            ),
            ("instances.text.fsync", "sometimes", "instances.text.fsync"),
            (
                "instances.image.listen",
                "nowhere",
                "instances.image.listen",
            ),
            (
                "limits.max_concurrent_requests",
                "0",
                "limits.max_concurrent_requests",
            ),
            ("limits.io_spin_us", "20000", "limits.io_spin_us"),
            (
                "instances.text.listen_unix",
                long_path.as_str(),
                "instances.text.listen_unix",
            ),
            ("log.format", "xml", "log.format"),
        ];
        for (key, value, named) in cases {
            let err = ServerConfig::load(None, [], &[(key.to_owned(), value.to_owned())])
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(named), "{key}={value}: {err}");
        }
        let err = ServerConfig::load(None, [], &[("limits.no_such".to_owned(), "1".to_owned())])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no_such"), "{err}");
    }

    #[test]
    fn same_port_twice_is_refused() {
        let err = ServerConfig::load(
            None,
            [],
            &[(
                "instances.image.listen".to_owned(),
                "127.0.0.1:50051".to_owned(),
            )],
        )
        .unwrap_err();
        assert!(err.to_string().contains("also instance"), "{err}");
    }

    #[test]
    fn one_socket_path_for_two_instances_is_refused() {
        let flags = [
            ("instances.text.listen_unix", "/tmp/kyro.sock"),
            ("instances.image.listen_unix", "/tmp/kyro.sock"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let err = ServerConfig::load(None, [], &flags)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("instances.text.listen_unix") && err.contains("also instance image"),
            "{err}"
        );
    }

    #[test]
    fn printed_config_parses_back_and_hides_key_hashes() {
        let mut config = ServerConfig::default();
        config.auth.keys.push(KeyEntry {
            name: "ops".to_owned(),
            tenant: "acme".to_owned(),
            scopes: vec!["admin".to_owned()],
            sha256: "ab".repeat(32),
        });
        let text = config.to_toml();
        assert!(!text.contains(&"ab".repeat(32)));
        let back: ServerConfig = toml::from_str(&text).unwrap();
        assert_eq!(back.instances, config.instances);
    }
}
