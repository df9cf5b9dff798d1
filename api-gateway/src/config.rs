//! The gateway's configuration: built-in defaults, then a TOML file, then
//! `KYRO_GATEWAY__SECTION__KEY` environment variables, then command-line
//! flags, each overriding the one before (the same layering as
//! kyro-server's). `kyro-gateway --print-config` prints the result.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The prefix of environment overrides: `KYRO_GATEWAY__ENGINE__TIMEOUT_MS=500`
/// sets `engine.timeout_ms`.
pub const ENV_PREFIX: &str = "KYRO_GATEWAY__";

/// Why a configuration could not be loaded; every variant names the setting
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

/// Every setting of the gateway.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// HTTP listen address (`host:port`; port 0 picks a free one).
    pub listen: String,
    /// The folder of the customer database (`gateway.db`).
    pub data_dir: PathBuf,
    pub engine: EngineSettings,
    pub model: ModelSettings,
    pub limits: LimitSettings,
    pub rate_limits: RateLimitSettings,
    pub cors: CorsSettings,
    pub mcp: McpSettings,
    pub log: LogSettings,
}

/// How the gateway reaches kyro-server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSettings {
    /// The text instance (384-dim): `http://host:port`.
    pub text_url: String,
    /// The image instance (512-dim).
    pub image_url: String,
    /// The gateway's kyro-server key (scopes `read, write, service`). Also
    /// read from `KYRO_GATEWAY_SERVICE_KEY`. Never printed.
    pub service_key: String,
    /// Deadline of each engine call, milliseconds.
    pub timeout_ms: u64,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            text_url: "http://127.0.0.1:50051".to_owned(),
            image_url: "http://127.0.0.1:50052".to_owned(),
            service_key: String::new(),
            timeout_ms: 5_000,
        }
    }
}

/// The embedding model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSettings {
    /// The all-MiniLM-L6-v2 folder; default `KYRO_MODEL_DIR` or
    /// `$HOME/.cache/kyrodb/models/all-MiniLM-L6-v2`.
    pub dir: Option<PathBuf>,
    /// Inference threads (0: one per core).
    pub threads: usize,
    /// Precision of the encoder's matrix products: `auto` (int8 where the
    /// CPU has AVX-512 VNNI, else f32), `int8` or `f32` (the reference
    /// vectors exactly). See docs/benchmarks.md, "Text embeddings".
    pub precision: kyro_embed::Precision,
    /// Embeddings of recent texts kept in memory, keyed by the exact text
    /// (≈ 1.8 KiB each with a short text; 0 turns the cache off). A
    /// stored failure and its queries are embedded in two layouts (the
    /// goal alone for search, goal + action + tool for reflect and capture),
    /// so 50,000 holds both for 25,000 recurring failures (≈ 90 MiB).
    pub cache_texts: u64,
}

impl Default for ModelSettings {
    fn default() -> ModelSettings {
        ModelSettings {
            dir: None,
            threads: 0,
            precision: kyro_embed::Precision::Auto,
            cache_texts: 50_000,
        }
    }
}

impl ModelSettings {
    /// The model folder to load.
    pub fn model_dir(&self) -> PathBuf {
        if let Some(dir) = &self.dir {
            return dir.clone();
        }
        if let Some(dir) = std::env::var_os("KYRO_MODEL_DIR") {
            return PathBuf::from(dir);
        }
        let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
        PathBuf::from(home).join(".cache/kyrodb/models/all-MiniLM-L6-v2")
    }
}

/// Request limits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// The largest request body, bytes (a 5 MB screenshot in base64 is
    /// about 6.7 MB); beyond it: 413.
    pub max_body_bytes: usize,
    /// Deadline of a whole request, milliseconds.
    pub request_timeout_ms: u64,
    /// Failed authentications one address may make per minute before its
    /// requests are refused with 429.
    pub failed_auth_per_minute: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 8 << 20,
            request_timeout_ms: 30_000,
            failed_auth_per_minute: 20,
        }
    }
}

/// Requests per minute per customer and endpoint class, for one tier.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TierRates {
    pub capture_per_minute: u32,
    pub search_per_minute: u32,
    pub reflect_per_minute: u32,
    /// Reads and deletes of episodes, validate_fix, skills, embeddings.
    pub other_per_minute: u32,
    pub admin_per_minute: u32,
}

impl Default for TierRates {
    fn default() -> Self {
        TierRates::scaled(1)
    }
}

impl TierRates {
    /// The free tier's rates times `factor`.
    pub const fn scaled(factor: u32) -> Self {
        Self {
            capture_per_minute: 100 * factor,
            search_per_minute: 500 * factor,
            reflect_per_minute: 500 * factor,
            other_per_minute: 500 * factor,
            admin_per_minute: 50 * factor,
        }
    }
}

/// Rate limits per tier (documented defaults: PRO 5x and ENTERPRISE 20x
/// the FREE rates).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSettings {
    pub free: TierRates,
    pub pro: TierRates,
    pub enterprise: TierRates,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            free: TierRates::scaled(1),
            pro: TierRates::scaled(5),
            enterprise: TierRates::scaled(20),
        }
    }
}

/// Cross-origin requests: off unless origins are listed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CorsSettings {
    /// Origins allowed to call the API from a browser (`https://app.example`).
    pub allow_origins: Vec<String>,
}

/// The MCP endpoint at `/mcp` (streamable HTTP).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct McpSettings {
    /// `Host` header values `/mcp` answers (`host` or `host:port`), against
    /// DNS rebinding; add the gateway's public name when it serves beyond
    /// this machine. Empty: any host.
    pub allowed_hosts: Vec<String>,
    /// Browser origins allowed to call `/mcp` (`https://app.example`).
    /// Empty: requests with an `Origin` header are not checked.
    pub allowed_origins: Vec<String>,
}

impl Default for McpSettings {
    fn default() -> Self {
        Self {
            allowed_hosts: vec![
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
                "::1".to_owned(),
            ],
            allowed_origins: Vec::new(),
        }
    }
}

/// Logging: `format` is `text` or `json`; `level` an `EnvFilter` directive
/// (`RUST_LOG` wins when set).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub format: String,
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: "text".to_owned(),
            level: "info".to_owned(),
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            data_dir: PathBuf::from("kyro-data/gateway"),
            engine: EngineSettings::default(),
            model: ModelSettings::default(),
            limits: LimitSettings::default(),
            rate_limits: RateLimitSettings::default(),
            cors: CorsSettings::default(),
            mcp: McpSettings::default(),
            log: LogSettings::default(),
        }
    }
}

impl GatewayConfig {
    /// Layers the defaults, `file`, the environment (`KYRO_GATEWAY__…`
    /// variables in `env`) and `overrides` (`dotted.key=value`), then
    /// validates the result.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &[(String, String)],
    ) -> Result<Self, ConfigError> {
        let mut tree =
            toml::Value::try_from(GatewayConfig::default()).map_err(|e| ConfigError::Parse {
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
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (name, value) in env {
            if name == "KYRO_GATEWAY_SERVICE_KEY" {
                pairs.push(("engine.service_key".to_owned(), value));
            } else if let Some(path) = name.strip_prefix(ENV_PREFIX) {
                pairs.push((path.replace("__", ".").to_ascii_lowercase(), value));
            }
        }
        pairs.sort();
        for (key, value) in pairs.iter().chain(overrides) {
            set_path(&mut tree, key, value)?;
        }
        let config: GatewayConfig =
            tree.try_into()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    origin: "configuration".to_owned(),
                    message: e.to_string(),
                })?;
        config.validate()?;
        Ok(config)
    }

    /// The configuration as TOML, the service key redacted.
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        if !shown.engine.service_key.is_empty() {
            shown.engine.service_key = "<redacted>".to_owned();
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    /// The customer database file.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("gateway.db")
    }

    /// The parsed listen address.
    pub fn listen_address(&self) -> Result<SocketAddr, ConfigError> {
        parse_address("listen", &self.listen)
    }

    /// Checks every setting, naming the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen_address()?;
        for (key, url) in [
            ("engine.text_url", &self.engine.text_url),
            ("engine.image_url", &self.engine.image_url),
        ] {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid(key, format!("{url:?} is not an http(s):// URL")));
            }
        }
        if self.engine.timeout_ms == 0 {
            return Err(invalid("engine.timeout_ms", "must be at least 1"));
        }
        if self.limits.max_body_bytes < 1024 {
            return Err(invalid("limits.max_body_bytes", "must be at least 1024"));
        }
        if self.limits.failed_auth_per_minute == 0 {
            return Err(invalid(
                "limits.failed_auth_per_minute",
                "must be at least 1",
            ));
        }
        for (tier, rates) in [
            ("free", &self.rate_limits.free),
            ("pro", &self.rate_limits.pro),
            ("enterprise", &self.rate_limits.enterprise),
        ] {
            for (name, value) in [
                ("capture_per_minute", rates.capture_per_minute),
                ("search_per_minute", rates.search_per_minute),
                ("reflect_per_minute", rates.reflect_per_minute),
                ("other_per_minute", rates.other_per_minute),
                ("admin_per_minute", rates.admin_per_minute),
            ] {
                if value == 0 {
                    return Err(invalid(
                        format!("rate_limits.{tier}.{name}"),
                        "must be at least 1",
                    ));
                }
            }
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(invalid("log.format", "must be text or json"));
        }
        Ok(())
    }
}

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
/// one and as a string otherwise; a string setting keeps strings that look
/// like numbers.
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
    fn layers_override_in_order_and_name_bad_settings() {
        let env = vec![
            (
                "KYRO_GATEWAY__ENGINE__TIMEOUT_MS".to_owned(),
                "750".to_owned(),
            ),
            (
                "KYRO_GATEWAY__LISTEN".to_owned(),
                "127.0.0.1:9000".to_owned(),
            ),
            (
                "KYRO_GATEWAY_SERVICE_KEY".to_owned(),
                "kyro_sk_x".to_owned(),
            ),
            ("UNRELATED".to_owned(), "1".to_owned()),
        ];
        let flags = vec![("listen".to_owned(), "127.0.0.1:9001".to_owned())];
        let config = GatewayConfig::load(None, env, &flags).unwrap();
        assert_eq!(config.engine.timeout_ms, 750);
        assert_eq!(config.listen, "127.0.0.1:9001");
        assert_eq!(config.engine.service_key, "kyro_sk_x");
        assert!(!config.to_toml().contains("kyro_sk_x"));

        let bad = vec![(
            "rate_limits.free.capture_per_minute".to_owned(),
            "0".to_owned(),
        )];
        let error = GatewayConfig::load(None, Vec::new(), &bad).unwrap_err();
        assert!(error
            .to_string()
            .starts_with("rate_limits.free.capture_per_minute"));
        let unknown = vec![("engine.nope".to_owned(), "1".to_owned())];
        let error = GatewayConfig::load(None, Vec::new(), &unknown).unwrap_err();
        assert!(error.to_string().contains("nope"), "{error}");
    }

    #[test]
    fn the_embedder_precision_is_auto_by_default_and_checked() {
        let config = GatewayConfig::load(None, Vec::new(), &[]).unwrap();
        assert_eq!(config.model.precision, kyro_embed::Precision::Auto);
        let env = vec![(
            "KYRO_GATEWAY__MODEL__PRECISION".to_owned(),
            "f32".to_owned(),
        )];
        let config = GatewayConfig::load(None, env, &[]).unwrap();
        assert_eq!(config.model.precision, kyro_embed::Precision::F32);
        let bad = vec![("model.precision".to_owned(), "fp16".to_owned())];
        let error = GatewayConfig::load(None, Vec::new(), &bad).unwrap_err();
        assert!(error.to_string().contains("model.precision"), "{error}");
    }
}
