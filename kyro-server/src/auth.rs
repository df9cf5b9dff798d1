//! API keys: who a request is ([`Caller`]), what it may do ([`Scope`]), and
//! the [`KeyRing`] that tells them from the presented key.
//!
//! Keys are 256-bit random strings; only their SHA-256 is stored (a slow
//! password hash would add nothing for keys of full entropy and would cost
//! every request). Lookup compares the presented key's hash with every stored
//! hash in constant time.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;
use tonic::metadata::MetadataMap;
use tonic::Status;

use kyro_engine::storage::request::validate_name;

/// Metadata entry a `service` key names the tenant it acts for in.
pub const TENANT_HEADER: &str = "x-kyro-tenant";
/// Metadata entry that may carry the key instead of `authorization`.
pub const API_KEY_HEADER: &str = "x-kyro-api-key";
/// The prefix of generated keys.
pub const KEY_PREFIX: &str = "kyro_sk_";

/// One API key, as configured: never the key itself, only its SHA-256.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// A label for logs and metrics (never the key).
    pub name: String,
    /// The tenant whose namespaces the key reaches.
    pub tenant: String,
    /// Any of `read`, `write`, `admin`, `service`.
    pub scopes: Vec<String>,
    /// Lower-case hex SHA-256 of the key.
    pub sha256: String,
}
/// The tenant of the bootstrap admin key and of requests when auth is off.
pub const DEFAULT_TENANT: &str = "default";

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Get, search, count, scroll, list, stats.
    Read,
    /// Insert, update, delete, drop one's own namespaces.
    Write,
    /// Flush, snapshots, configuration, other tenants' namespaces.
    Admin,
    /// Act for the tenant named in `x-kyro-tenant` (the gateway's key).
    Service,
}

impl Scope {
    fn parse(name: &str) -> Option<Scope> {
        match name {
            "read" => Some(Scope::Read),
            "write" => Some(Scope::Write),
            "admin" => Some(Scope::Admin),
            "service" => Some(Scope::Service),
            _ => None,
        }
    }

    /// The scope's name as configured.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
            Scope::Service => "service",
        }
    }
}

/// One usable key.
#[derive(Debug, Clone)]
pub struct ApiKey {
    name: String,
    tenant: String,
    scopes: Vec<Scope>,
    sha256: [u8; 32],
}

impl ApiKey {
    /// Checks and parses a configured key entry.
    pub fn from_entry(entry: &KeyEntry) -> Result<ApiKey, String> {
        if entry.name.is_empty() {
            return Err("name: must not be empty".to_owned());
        }
        validate_name("tenant", &entry.tenant).map_err(|e| e.to_string())?;
        let mut scopes = Vec::new();
        for scope in &entry.scopes {
            scopes.push(Scope::parse(scope).ok_or_else(|| {
                format!("scopes: {scope:?} is not one of read, write, admin, service")
            })?);
        }
        let bytes = hex::decode(&entry.sha256)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| "sha256: must be 64 hex digits".to_owned())?;
        Ok(ApiKey {
            name: entry.name.clone(),
            tenant: entry.tenant.clone(),
            scopes,
            sha256: bytes,
        })
    }
}

/// The hex SHA-256 of a key, as stored in configuration.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A fresh random key: `kyro_sk_` and 64 hex digits.
pub fn generate_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{KEY_PREFIX}{}", hex::encode(bytes))
}

/// Who is calling, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key's label (for logs; never the key).
    pub key_name: String,
    /// The tenant the request acts for.
    pub tenant: String,
    scopes: Vec<Scope>,
}

impl Caller {
    /// A caller with every scope: requests when auth is switched off.
    pub fn unauthenticated_admin() -> Caller {
        Caller {
            key_name: "auth-disabled".to_owned(),
            tenant: DEFAULT_TENANT.to_owned(),
            scopes: vec![Scope::Read, Scope::Write, Scope::Admin, Scope::Service],
        }
    }

    /// Whether the caller has `scope`.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// `PERMISSION_DENIED` unless the caller has `scope`.
    pub fn require(&self, scope: Scope, action: &str) -> Result<(), Status> {
        if self.has(scope) {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "{action} needs the {} scope; key {:?} does not have it",
                scope.name(),
                self.key_name
            )))
        }
    }

    /// The tenant an admin-capable request names (`requested`), or the
    /// caller's own when it names none. Another tenant needs `admin`.
    pub fn tenant_for<'a>(&'a self, requested: &'a str, action: &str) -> Result<&'a str, Status> {
        if requested.is_empty() || requested == self.tenant {
            return Ok(&self.tenant);
        }
        self.require(Scope::Admin, &format!("{action} on another tenant"))?;
        Ok(requested)
    }
}

/// Why a keys file could not be used.
#[derive(Debug, Error)]
pub enum KeysFileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// The keys file's format: `[[keys]]` entries.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysFile {
    #[serde(default)]
    pub keys: Vec<KeyEntry>,
}

impl KeysFile {
    /// Reads `path`; a missing file holds no keys.
    pub fn read(path: &Path) -> Result<KeysFile, KeysFileError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(KeysFile::default()),
            Err(source) => {
                return Err(KeysFileError::Io {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        toml::from_str(&text).map_err(|e| KeysFileError::Invalid {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }

    /// Writes the file (owner-readable only), replacing it atomically.
    pub fn write(&self, path: &Path) -> Result<(), KeysFileError> {
        let io = |source| KeysFileError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let text = toml::to_string_pretty(self).map_err(|e| KeysFileError::Invalid {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let temp = path.with_extension("toml.tmp");
        std::fs::write(&temp, text).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
        std::fs::rename(&temp, path).map_err(io)
    }
}

/// The keys in force: those of the configuration plus those of the keys
/// file, swapped whole on reload so a request sees one set or the other.
#[derive(Debug)]
pub struct KeyRing {
    configured: Vec<ApiKey>,
    keys_file: PathBuf,
    current: RwLock<Arc<Vec<ApiKey>>>,
}

impl KeyRing {
    /// Loads the configured keys and the keys file.
    pub fn load(configured: &[KeyEntry], keys_file: PathBuf) -> Result<KeyRing, KeysFileError> {
        let configured = configured
            .iter()
            .map(ApiKey::from_entry)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| KeysFileError::Invalid {
                path: PathBuf::from("auth.keys"),
                reason,
            })?;
        let ring = KeyRing {
            configured,
            keys_file,
            current: RwLock::new(Arc::new(Vec::new())),
        };
        ring.reload()?;
        Ok(ring)
    }

    /// Re-reads the keys file; on error the keys in force stay.
    pub fn reload(&self) -> Result<usize, KeysFileError> {
        let file = KeysFile::read(&self.keys_file)?;
        let mut keys = self.configured.clone();
        for (i, entry) in file.keys.iter().enumerate() {
            keys.push(
                ApiKey::from_entry(entry).map_err(|reason| KeysFileError::Invalid {
                    path: self.keys_file.clone(),
                    reason: format!("keys[{i}].{reason}"),
                })?,
            );
        }
        let count = keys.len();
        *self.current.write() = Arc::new(keys);
        Ok(count)
    }

    /// How many keys are in force.
    pub fn len(&self) -> usize {
        self.current.read().len()
    }

    /// Whether no key is in force.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The keys file this ring reads.
    pub fn keys_file(&self) -> &Path {
        &self.keys_file
    }

    /// Generates an admin key, appends its hash to the keys file, reloads,
    /// and returns the key (the only time it exists in clear).
    pub fn bootstrap_admin(&self) -> Result<String, KeysFileError> {
        let key = generate_key();
        let mut file = KeysFile::read(&self.keys_file)?;
        file.keys.push(KeyEntry {
            name: "bootstrap-admin".to_owned(),
            tenant: DEFAULT_TENANT.to_owned(),
            scopes: ["read", "write", "admin", "service"]
                .map(str::to_owned)
                .to_vec(),
            sha256: hash_key(&key),
        });
        file.write(&self.keys_file)?;
        self.reload()?;
        Ok(key)
    }

    /// The caller a request's metadata identifies: the key from
    /// `authorization: Bearer …` or `x-kyro-api-key`, and for `service` keys
    /// the tenant from `x-kyro-tenant`.
    pub fn authenticate(&self, metadata: &MetadataMap) -> Result<Caller, Status> {
        let presented = presented_key(metadata)?;
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let keys = self.current.read().clone();
        // Compare against every key so timing says nothing about which
        // prefix matched or how far down the list the key is.
        let mut found: Option<&ApiKey> = None;
        for key in keys.iter() {
            if bool::from(key.sha256.ct_eq(&digest)) {
                found = Some(key);
            }
        }
        let key = found.ok_or_else(|| Status::unauthenticated("the API key is not valid"))?;
        let mut caller = Caller {
            key_name: key.name.clone(),
            tenant: key.tenant.clone(),
            scopes: key.scopes.clone(),
        };
        if let Some(value) = metadata.get(TENANT_HEADER) {
            let tenant = value
                .to_str()
                .map_err(|_| Status::invalid_argument(format!("{TENANT_HEADER}: must be ASCII")))?;
            if tenant != caller.tenant {
                caller.require(
                    Scope::Service,
                    &format!("acting for another tenant ({TENANT_HEADER})"),
                )?;
                validate_name("tenant", tenant)
                    .map_err(|e| Status::invalid_argument(format!("{TENANT_HEADER}: {e}")))?;
                caller.tenant = tenant.to_owned();
            }
        }
        Ok(caller)
    }
}

fn presented_key(metadata: &MetadataMap) -> Result<&str, Status> {
    let missing = || {
        Status::unauthenticated(
            "missing API key: send `authorization: Bearer <key>` or `x-kyro-api-key: <key>`",
        )
    };
    if let Some(value) = metadata.get("authorization") {
        let text = value
            .to_str()
            .map_err(|_| Status::unauthenticated("authorization: must be ASCII"))?;
        // RFC 6750: the scheme name is case-insensitive.
        let key = text
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, key)| key)
            .ok_or_else(|| Status::unauthenticated("authorization: expected `Bearer <key>`"))?;
        return Ok(key.trim());
    }
    match metadata.get(API_KEY_HEADER) {
        Some(value) => value
            .to_str()
            .map(str::trim)
            .map_err(|_| Status::unauthenticated(format!("{API_KEY_HEADER}: must be ASCII"))),
        None => Err(missing()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, tenant: &str, scopes: &[&str], key: &str) -> KeyEntry {
        KeyEntry {
            name: name.to_owned(),
            tenant: tenant.to_owned(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            sha256: hash_key(key),
        }
    }

    fn metadata(pairs: &[(&'static str, &str)]) -> MetadataMap {
        let mut map = MetadataMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    fn ring(dir: &Path) -> KeyRing {
        KeyRing::load(
            &[
                entry("a", "acme", &["read", "write"], "key-a"),
                entry("gw", "gateway", &["read", "write", "service"], "key-gw"),
            ],
            dir.join("keys.toml"),
        )
        .unwrap()
    }

    #[test]
    fn keys_resolve_to_their_tenant_and_scopes() {
        let dir = tempfile::tempdir().unwrap();
        let ring = ring(dir.path());
        let caller = ring
            .authenticate(&metadata(&[("authorization", "Bearer key-a")]))
            .unwrap();
        assert_eq!(caller.tenant, "acme");
        assert!(caller.has(Scope::Write) && !caller.has(Scope::Admin));
        let caller = ring
            .authenticate(&metadata(&[("x-kyro-api-key", "key-a")]))
            .unwrap();
        assert_eq!(caller.key_name, "a");
    }

    #[test]
    fn wrong_or_missing_keys_are_unauthenticated() {
        let dir = tempfile::tempdir().unwrap();
        let ring = ring(dir.path());
        for md in [
            metadata(&[]),
            metadata(&[("authorization", "Bearer nope")]),
            metadata(&[("authorization", "Basic key-a")]),
        ] {
            let err = ring.authenticate(&md).unwrap_err();
            assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
        }
    }

    #[test]
    fn only_service_keys_act_for_other_tenants() {
        let dir = tempfile::tempdir().unwrap();
        let ring = ring(dir.path());
        let caller = ring
            .authenticate(&metadata(&[
                ("authorization", "Bearer key-gw"),
                (TENANT_HEADER, "customer-7"),
            ]))
            .unwrap();
        assert_eq!(caller.tenant, "customer-7");
        let err = ring
            .authenticate(&metadata(&[
                ("authorization", "Bearer key-a"),
                (TENANT_HEADER, "customer-7"),
            ]))
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
        // Naming one's own tenant is harmless.
        assert!(ring
            .authenticate(&metadata(&[
                ("authorization", "Bearer key-a"),
                (TENANT_HEADER, "acme"),
            ]))
            .is_ok());
    }

    #[test]
    fn bootstrap_key_is_stored_hashed_and_reload_picks_up_new_keys() {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::load(&[], dir.path().join("keys.toml")).unwrap();
        assert!(ring.is_empty());
        let key = ring.bootstrap_admin().unwrap();
        assert!(key.starts_with(KEY_PREFIX) && key.len() == KEY_PREFIX.len() + 64);
        let stored = std::fs::read_to_string(dir.path().join("keys.toml")).unwrap();
        assert!(!stored.contains(&key) && stored.contains(&hash_key(&key)));
        let bearer = format!("Bearer {key}");
        let caller = ring
            .authenticate(&metadata(&[("authorization", bearer.as_str())]))
            .unwrap();
        assert!(caller.has(Scope::Admin));

        let mut file = KeysFile::read(ring.keys_file()).unwrap();
        file.keys
            .push(entry("later", "beta", &["read"], "key-later"));
        file.write(ring.keys_file()).unwrap();
        assert!(ring
            .authenticate(&metadata(&[("authorization", "Bearer key-later")]))
            .is_err());
        assert_eq!(ring.reload().unwrap(), 2);
        assert_eq!(
            ring.authenticate(&metadata(&[("authorization", "Bearer key-later")]))
                .unwrap()
                .tenant,
            "beta"
        );
    }

    #[test]
    fn admin_reaches_other_tenants_others_do_not() {
        let admin = Caller::unauthenticated_admin();
        assert_eq!(admin.tenant_for("zeta", "drop").unwrap(), "zeta");
        let reader = Caller {
            key_name: "r".to_owned(),
            tenant: "acme".to_owned(),
            scopes: vec![Scope::Read],
        };
        assert_eq!(reader.tenant_for("", "drop").unwrap(), "acme");
        assert_eq!(
            reader.tenant_for("zeta", "drop").unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
    }
}
