//! API keys: `em_live_{key id}_{secret}`, stored as scrypt hashes with a
//! per-key salt, looked up by key id and compared in constant time; a
//! 5-minute cache of validated keys, invalidated at once on revoke, suspend
//! or expiry; and the [`Authed`] extractor that turns a request's key into a
//! [`Caller`] after checking scope and rate limit.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use parking_lot::Mutex;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::ratelimit::RateClass;
use crate::state::AppState;
use crate::store::{AuditEntry, AuditLog, Customer, CustomerStatus, Customers, KeyRecord, Keys};

/// Every key starts with this.
pub const KEY_PREFIX: &str = "em_live_";
/// How long a validated key is trusted without asking the database.
pub const CACHE_TTL: Duration = Duration::from_secs(300);
/// scrypt cost: N = 2^14, r = 8, p = 1 (16 MiB, the interactive-login
/// recommendation), 32-byte output.
const SCRYPT_LOG_N: u8 = 14;

/// What a key may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read episodes, search, reflect, skills, embeddings.
    Read,
    /// Capture, delete, validate_fix.
    Write,
    /// The admin API.
    Admin,
    /// Only search and reflect (agents that must not write).
    Gate,
}

impl Scope {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
            Scope::Gate => "gate",
        }
    }

    /// Parses a stored or requested scope name.
    pub fn parse(name: &str) -> Option<Scope> {
        match name {
            "read" => Some(Scope::Read),
            "write" => Some(Scope::Write),
            "admin" => Some(Scope::Admin),
            "gate" => Some(Scope::Gate),
            _ => None,
        }
    }
}

/// A request's authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: String,
    pub customer: Customer,
    pub scopes: Vec<Scope>,
    /// A key limited to one project sees and writes only that project.
    pub project: Option<String>,
    /// The client's address (for the audit log).
    pub address: Option<String>,
}

impl Caller {
    /// Whether the key has `scope`.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// A freshly generated key: the full key (shown once) and its record.
pub struct NewKey {
    pub api_key: String,
    pub record: KeyRecord,
}

/// Generates a key for `customer_id`; only its salt and hash are kept.
pub fn generate_key(
    customer_id: &str,
    scopes: &[Scope],
    project: Option<String>,
    expires_at: Option<i64>,
    now: i64,
) -> NewKey {
    let mut rng = rand::rng();
    let mut id = [0u8; 8];
    let mut secret = [0u8; 24];
    let mut salt = [0u8; 16];
    rng.fill_bytes(&mut id);
    rng.fill_bytes(&mut secret);
    rng.fill_bytes(&mut salt);
    let key_id = hex::encode(id);
    let secret = hex::encode(secret);
    let api_key = format!("{KEY_PREFIX}{key_id}_{secret}");
    let hash = scrypt_hash(secret.as_bytes(), &salt);
    NewKey {
        api_key,
        record: KeyRecord {
            key_id,
            customer_id: customer_id.to_owned(),
            salt: salt.to_vec(),
            hash,
            scopes: scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            project,
            expires_at,
            created_at: now,
            revoked_at: None,
        },
    }
}

fn scrypt_hash(secret: &[u8], salt: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 32];
    // The parameters are constants within scrypt's bounds, and the output
    // length is valid: neither call can fail.
    if let Ok(params) = scrypt::Params::new(SCRYPT_LOG_N, 8, 1, 32) {
        let _ = scrypt::scrypt(secret, salt, &params, &mut out);
    }
    out
}

/// Splits `em_live_{key id}_{secret}`.
pub fn parse_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hexish = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hexish(id, 16) && hexish(secret, 48)).then_some((id, secret))
}

struct CachedKey {
    /// SHA-256 of the whole key: a cache hit still proves the secret.
    digest: [u8; 32],
    caller: Caller,
    expires_at: Option<i64>,
    cached_at: Instant,
}

/// Validated keys by key id. The mutex guards the map only (no I/O under
/// it); entries are removed at once when their key is revoked or their
/// customer suspended or changed, and an entry past its key's expiry is
/// refused on the next request.
#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<String, CachedKey>>,
}

impl KeyCache {
    /// Forgets one key.
    pub fn invalidate_key(&self, key_id: &str) {
        self.entries.lock().remove(key_id);
    }

    /// Forgets every key of a customer.
    pub fn invalidate_customer(&self, customer_id: &str) {
        self.entries
            .lock()
            .retain(|_, entry| entry.caller.customer.id != customer_id);
    }

    fn lookup(&self, key_id: &str, digest: &[u8; 32], now: i64) -> Option<Caller> {
        let mut entries = self.entries.lock();
        let entry = entries.get(key_id)?;
        let fresh =
            entry.cached_at.elapsed() < CACHE_TTL && entry.expires_at.is_none_or(|at| now < at);
        if !fresh {
            entries.remove(key_id);
            return None;
        }
        bool::from(entry.digest.ct_eq(digest)).then(|| entry.caller.clone())
    }

    fn insert(&self, caller: &Caller, digest: [u8; 32], expires_at: Option<i64>) {
        self.entries.lock().insert(
            caller.key_id.clone(),
            CachedKey {
                digest,
                caller: caller.clone(),
                expires_at,
                cached_at: Instant::now(),
            },
        );
    }
}

/// Why a key was refused (for the audit log and the response).
#[derive(Debug)]
enum Refusal {
    Unauthenticated(&'static str),
    Forbidden(String),
}

/// Checks `key` against the cache, then the database.
async fn authenticate(state: &AppState, key: &str) -> Result<Caller, Refusal> {
    let (key_id, secret) = parse_key(key).ok_or(Refusal::Unauthenticated("malformed API key"))?;
    let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
    let now = crate::clock::now();
    if let Some(caller) = state.keys.lookup(key_id, &digest, now) {
        metrics::counter!("gateway_key_cache_total", "result" => "hit").increment(1);
        return Ok(caller);
    }
    metrics::counter!("gateway_key_cache_total", "result" => "miss").increment(1);
    let key_id = key_id.to_owned();
    let secret = secret.to_owned();
    let found = state
        .store
        .run(move |c| {
            let Some(record) = Keys(c).get(&key_id)? else {
                return Ok(None);
            };
            let customer = Customers(c).get(&record.customer_id)?;
            Ok(Some((record, customer)))
        })
        .await
        .map_err(|_| Refusal::Unauthenticated("the key could not be checked"))?;
    let Some((record, Some(customer))) = found else {
        return Err(Refusal::Unauthenticated("unknown API key"));
    };
    // scrypt is deliberately slow: run it off the async threads.
    let salt = record.salt.clone();
    let computed = tokio::task::spawn_blocking(move || scrypt_hash(secret.as_bytes(), &salt))
        .await
        .map_err(|_| Refusal::Unauthenticated("the key could not be checked"))?;
    if !bool::from(computed.ct_eq(&record.hash)) {
        return Err(Refusal::Unauthenticated("unknown API key"));
    }
    if record.revoked_at.is_some() {
        return Err(Refusal::Unauthenticated("the API key was revoked"));
    }
    if record.expires_at.is_some_and(|at| now >= at) {
        return Err(Refusal::Unauthenticated("the API key has expired"));
    }
    if customer.status == CustomerStatus::Suspended {
        return Err(Refusal::Forbidden(format!(
            "customer {} is suspended",
            customer.id
        )));
    }
    let caller = Caller {
        key_id: record.key_id.clone(),
        customer,
        scopes: record
            .scopes
            .iter()
            .filter_map(|s| Scope::parse(s))
            .collect(),
        project: record.project.clone(),
        address: None,
    };
    state.keys.insert(&caller, digest, record.expires_at);
    Ok(caller)
}

/// The key a request carries: `X-API-Key`, or `Authorization: Bearer`.
fn presented_key(parts: &Parts) -> Option<&str> {
    if let Some(value) = parts.headers.get("x-api-key") {
        return value.to_str().ok().map(str::trim);
    }
    let value = parts
        .headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// An endpoint's requirements: which scopes reach it and its rate class.
pub trait Endpoint {
    /// The name in the audit log and in errors.
    const NAME: &'static str;
    /// Its rate-limit class.
    const CLASS: RateClass;
    /// Whether a key with `scopes` may call it.
    fn allows(scopes: &[Scope]) -> bool;
}

macro_rules! endpoint {
    ($(#[$doc:meta])* $name:ident, $label:literal, $class:expr, [$($scope:ident),*]) => {
        $(#[$doc])*
        pub struct $name;
        impl Endpoint for $name {
            const NAME: &'static str = $label;
            const CLASS: RateClass = $class;
            fn allows(scopes: &[Scope]) -> bool {
                [$(Scope::$scope),*].iter().any(|s| scopes.contains(s))
            }
        }
    };
}

endpoint!(
    /// `POST /api/v1/capture`.
    CaptureEndpoint, "capture", RateClass::Capture, [Write]);
endpoint!(
    /// `POST /api/v1/search`.
    SearchEndpoint, "search", RateClass::Search, [Read, Gate]);
endpoint!(
    /// `POST /api/v1/reflect`.
    ReflectEndpoint, "reflect", RateClass::Reflect, [Read, Gate]);
endpoint!(
    /// Reading episodes and skills, embeddings.
    ReadEndpoint, "read", RateClass::Other, [Read]);
endpoint!(
    /// Deleting episodes, validate_fix.
    WriteEndpoint, "write", RateClass::Other, [Write]);
endpoint!(
    /// The admin API.
    AdminEndpoint, "admin", RateClass::Admin, [Admin]);

/// The authenticated caller of endpoint `E`: key valid, scope sufficient,
/// within the rate limit. Every refusal is audited.
pub struct Authed<E>(pub Caller, pub PhantomData<E>);

fn client_address(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip())
}

impl<E: Endpoint + Send + Sync> FromRequestParts<AppState> for Authed<E> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authorize::<E>(parts, state)
            .await
            .map(|caller| Authed(caller, PhantomData))
    }
}

/// The caller of endpoint `E` behind a request's headers: key valid, scope
/// sufficient, within the rate limit. Every refusal is audited. The REST
/// routes reach it through [`Authed`], the MCP tools directly.
pub async fn authorize<E: Endpoint>(parts: &Parts, state: &AppState) -> Result<Caller, ApiError> {
    let ip = client_address(parts);
    let address = ip.map(|ip| ip.to_string());
    if let Some(ip) = ip {
        state.limits.check_auth_failures(ip)?;
    }
    let refusal = match presented_key(parts) {
        None => Refusal::Unauthenticated("missing API key (X-API-Key or Authorization: Bearer)"),
        Some(key) => match authenticate(state, key).await {
            Ok(mut caller) => {
                caller.address = address.clone();
                if !E::allows(&caller.scopes) {
                    let error =
                        ApiError::Forbidden(format!("this key lacks the scope {} needs", E::NAME));
                    audit_denied(state, Some(&caller), address, E::NAME, "forbidden").await;
                    return Err(error);
                }
                if let Err(error) = state.limits.check(&caller.customer, E::CLASS) {
                    audit_denied(state, Some(&caller), address, E::NAME, "rate_limited").await;
                    return Err(error);
                }
                tracing::Span::current().record("customer", caller.customer.id.as_str());
                return Ok(caller);
            }
            Err(refusal) => refusal,
        },
    };
    let (error, outcome) = match refusal {
        Refusal::Unauthenticated(message) => {
            if let Some(ip) = ip {
                state.limits.record_auth_failure(ip);
            }
            (
                ApiError::Unauthenticated(message.to_owned()),
                "unauthenticated",
            )
        }
        Refusal::Forbidden(message) => (ApiError::Forbidden(message), "forbidden"),
    };
    audit_denied(state, None, address, E::NAME, outcome).await;
    Err(error)
}

/// Records a denied request.
async fn audit_denied(
    state: &AppState,
    caller: Option<&Caller>,
    address: Option<String>,
    endpoint: &'static str,
    outcome: &'static str,
) {
    let entry = AuditEntry {
        id: 0,
        at: crate::clock::now(),
        actor: caller.map(|c| c.key_id.clone()),
        customer_id: caller.map(|c| c.customer.id.clone()),
        action: "request.denied".to_owned(),
        target: Some(endpoint.to_owned()),
        address,
        outcome: outcome.to_owned(),
    };
    if let Err(e) = state.store.run(move |c| AuditLog(c).append(&entry)).await {
        tracing::warn!(error = %e, "audit log write failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_documented_shape_and_verify_only_with_their_secret() {
        let key = generate_key("cus_1", &[Scope::Read], None, None, 0);
        let (id, secret) = parse_key(&key.api_key).expect("a well-formed key");
        assert_eq!(id, key.record.key_id);
        assert!(key.api_key.starts_with("em_live_"));
        assert_eq!(
            scrypt_hash(secret.as_bytes(), &key.record.salt),
            key.record.hash
        );
        let mut wrong = secret.to_owned().into_bytes();
        wrong[0] = if wrong[0] == b'a' { b'b' } else { b'a' };
        assert_ne!(scrypt_hash(&wrong, &key.record.salt), key.record.hash);
        // Two keys never share a salt, so equal secrets would not share a hash.
        let other = generate_key("cus_1", &[Scope::Read], None, None, 0);
        assert_ne!(other.record.salt, key.record.salt);
        assert!(parse_key("em_live_zz_yy").is_none());
        assert!(parse_key("sk-abc").is_none());
    }
}
