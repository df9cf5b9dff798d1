//! What each endpoint requires ([`Endpoint`]) and the check every request
//! passes: key valid (the cache, then the database), scope sufficient,
//! within the rate limit ([`authorize`], [`Authed`]). Every refusal is
//! audited.

use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::caller::{Caller, Scope};
use super::keys::{parse_key, scrypt_hash};
use crate::error::ApiError;
use crate::ratelimit::RateClass;
use crate::state::AppState;
use crate::store::{AuditEntry, AuditLog, CustomerStatus, Customers, Keys};

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
