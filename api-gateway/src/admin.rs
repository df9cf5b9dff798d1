//! The admin API's operations: customers, keys, usage, the audit log. Every
//! action is written to the audit log with the acting key and address.

use serde::{Deserialize, Serialize};

use crate::auth::{generate_key, Caller, Scope};
use crate::clock;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{
    AuditEntry, AuditLog, Customer, CustomerStatus, Customers, KeyRecord, Keys, StoreError, Tier,
    Usage, UsageMonth,
};

/// `POST /api/v1/customers`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCustomer {
    pub name: String,
    pub tier: Tier,
}

/// `PATCH /api/v1/customers/{id}`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCustomer {
    pub name: Option<String>,
    pub tier: Option<Tier>,
}

/// A customer as returned.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CustomerView {
    pub customer_id: String,
    pub name: String,
    pub tier: Tier,
    pub status: CustomerStatus,
    pub monthly_quota: Option<u64>,
    pub created_at: String,
}

impl From<Customer> for CustomerView {
    fn from(c: Customer) -> Self {
        CustomerView {
            monthly_quota: c.tier.monthly_quota(),
            customer_id: c.id,
            name: c.name,
            tier: c.tier,
            status: c.status,
            created_at: clock::rfc3339(c.created_at),
        }
    }
}

/// `POST /api/v1/customers/{id}/keys`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    pub scopes: Vec<Scope>,
    /// RFC 3339.
    pub expires_at: Option<String>,
    pub project: Option<String>,
}

/// A new key: shown once.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CreatedKey {
    pub key_id: String,
    pub api_key: String,
    pub customer_id: String,
    pub scopes: Vec<String>,
    pub project: Option<String>,
    pub expires_at: Option<String>,
}

/// A key as listed (no secret, no hash).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KeyView {
    pub key_id: String,
    pub scopes: Vec<String>,
    pub project: Option<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl From<KeyRecord> for KeyView {
    fn from(k: KeyRecord) -> Self {
        KeyView {
            key_id: k.key_id,
            scopes: k.scopes,
            project: k.project,
            created_at: clock::rfc3339(k.created_at),
            expires_at: k.expires_at.map(clock::rfc3339),
            revoked_at: k.revoked_at.map(clock::rfc3339),
        }
    }
}

/// A customer's usage.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UsageView {
    pub customer_id: String,
    pub tier: Tier,
    pub monthly_quota: Option<u64>,
    pub months: Vec<UsageMonth>,
}

/// Query of `GET /api/v1/audit`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub customer_id: Option<String>,
    /// The previous page's `next_before`.
    pub before: Option<i64>,
    /// 1..=500 (default 100).
    pub limit: Option<u32>,
}

/// A page of the audit log, newest first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntryView>,
    pub next_before: Option<i64>,
}

/// An audit entry as returned.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditEntryView {
    pub id: i64,
    pub at: String,
    pub actor: Option<String>,
    pub customer_id: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub address: Option<String>,
    pub outcome: String,
}

fn entry(
    caller: &Caller,
    customer_id: Option<&str>,
    action: &str,
    target: Option<String>,
) -> AuditEntry {
    AuditEntry {
        id: 0,
        at: clock::now(),
        actor: Some(caller.key_id.clone()),
        customer_id: customer_id.map(str::to_owned),
        action: action.to_owned(),
        target,
        address: caller.address.clone(),
        outcome: "ok".to_owned(),
    }
}

fn customer_missing(id: &str) -> ApiError {
    ApiError::NotFound(format!("customer {id} does not exist"))
}

fn check_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    let n = name.chars().count();
    if n == 0 || n > 200 {
        return Err(ApiError::validation("name", "must be 1..=200 characters"));
    }
    Ok(name.to_owned())
}

/// Creates a customer.
pub async fn create_customer(
    state: &AppState,
    caller: &Caller,
    body: CreateCustomer,
) -> Result<CustomerView, ApiError> {
    let name = check_name(&body.name)?;
    let caller = caller.clone();
    let customer = state
        .store
        .run(move |c| {
            let tx = c.transaction()?;
            let customer = Customers(&tx).create(&name, body.tier, clock::now())?;
            AuditLog(&tx).append(&entry(
                &caller,
                Some(&customer.id),
                "customer.create",
                Some(customer.id.clone()),
            ))?;
            tx.commit()?;
            Ok(customer)
        })
        .await?;
    Ok(customer.into())
}

/// Reads a customer.
pub async fn get_customer(state: &AppState, id: String) -> Result<CustomerView, ApiError> {
    let found = state
        .store
        .run(move |c| Customers(c).get(&id).map(|r| (r, id)))
        .await?;
    match found {
        (Some(customer), _) => Ok(customer.into()),
        (None, id) => Err(customer_missing(&id)),
    }
}

/// Renames a customer or changes its tier (cached keys of the customer are
/// dropped so that the new tier applies at once).
pub async fn update_customer(
    state: &AppState,
    caller: &Caller,
    id: String,
    body: UpdateCustomer,
) -> Result<CustomerView, ApiError> {
    let name = body.name.as_deref().map(check_name).transpose()?;
    let caller = caller.clone();
    let target = id.clone();
    let updated = state
        .store
        .run(move |c| {
            let tx = c.transaction()?;
            let updated = Customers(&tx).update(&id, name.as_deref(), body.tier)?;
            if updated.is_some() {
                AuditLog(&tx).append(&entry(
                    &caller,
                    Some(&id),
                    "customer.update",
                    Some(id.clone()),
                ))?;
            }
            tx.commit()?;
            Ok(updated)
        })
        .await?;
    state.keys.invalidate_customer(&target);
    updated
        .map(Into::into)
        .ok_or_else(|| customer_missing(&target))
}

/// Suspends (or re-activates) a customer: its keys fail from the very next
/// request.
pub async fn set_status(
    state: &AppState,
    caller: &Caller,
    id: String,
    status: CustomerStatus,
) -> Result<CustomerView, ApiError> {
    let caller = caller.clone();
    let target = id.clone();
    let action = match status {
        CustomerStatus::Suspended => "customer.suspend",
        CustomerStatus::Active => "customer.activate",
    };
    let found = state
        .store
        .run(move |c| {
            let tx = c.transaction()?;
            if !Customers(&tx).set_status(&id, status)? {
                return Ok(None);
            }
            AuditLog(&tx).append(&entry(&caller, Some(&id), action, Some(id.clone())))?;
            let customer = Customers(&tx).get(&id)?;
            tx.commit()?;
            Ok(customer)
        })
        .await?;
    state.keys.invalidate_customer(&target);
    found
        .map(Into::into)
        .ok_or_else(|| customer_missing(&target))
}

/// Creates a key for a customer.
pub async fn create_key(
    state: &AppState,
    caller: &Caller,
    id: String,
    body: CreateKey,
) -> Result<CreatedKey, ApiError> {
    if body.scopes.is_empty() {
        return Err(ApiError::validation(
            "scopes",
            "at least one scope (read, write, admin, gate)",
        ));
    }
    let now = clock::now();
    let expires_at = match &body.expires_at {
        None => None,
        Some(text) => {
            let at = clock::parse_rfc3339(text)
                .ok_or_else(|| ApiError::validation("expires_at", "expected an RFC 3339 time"))?;
            if at <= now {
                return Err(ApiError::validation("expires_at", "must be in the future"));
            }
            Some(at)
        }
    };
    let project = match body.project.as_deref().map(str::trim) {
        Some(p) if p.is_empty() || p.chars().count() > 200 => {
            return Err(ApiError::validation(
                "project",
                "must be 1..=200 characters",
            ))
        }
        other => other.map(str::to_owned),
    };
    let mut scopes = body.scopes.clone();
    scopes.sort_by_key(|s| s.as_str());
    scopes.dedup();
    // scrypt is slow by design: off the async threads.
    let customer_id = id.clone();
    let key = tokio::task::spawn_blocking(move || {
        generate_key(&customer_id, &scopes, project, expires_at, now)
    })
    .await
    .map_err(ApiError::internal)?;
    let record = key.record.clone();
    let caller = caller.clone();
    let exists = state
        .store
        .run(move |c| {
            let tx = c.transaction()?;
            if Customers(&tx).get(&record.customer_id)?.is_none() {
                return Ok(false);
            }
            Keys(&tx).insert(&record)?;
            AuditLog(&tx).append(&entry(
                &caller,
                Some(&record.customer_id),
                "key.create",
                Some(record.key_id.clone()),
            ))?;
            tx.commit()?;
            Ok(true)
        })
        .await?;
    if !exists {
        return Err(customer_missing(&id));
    }
    Ok(CreatedKey {
        key_id: key.record.key_id,
        api_key: key.api_key,
        customer_id: key.record.customer_id,
        scopes: key.record.scopes,
        project: key.record.project,
        expires_at: key.record.expires_at.map(clock::rfc3339),
    })
}

/// Lists a customer's keys.
pub async fn list_keys(state: &AppState, id: String) -> Result<Vec<KeyView>, ApiError> {
    let target = id.clone();
    let found = state
        .store
        .run(move |c| {
            if Customers(c).get(&id)?.is_none() {
                return Ok(None);
            }
            Ok(Some(Keys(c).of_customer(&id)?))
        })
        .await?;
    let keys = found.ok_or_else(|| customer_missing(&target))?;
    Ok(keys.into_iter().map(Into::into).collect())
}

/// Revokes a key: it fails from the very next request.
pub async fn revoke_key(state: &AppState, caller: &Caller, key_id: String) -> Result<(), ApiError> {
    let caller = caller.clone();
    let target = key_id.clone();
    let customer = state
        .store
        .run(move |c| {
            let tx = c.transaction()?;
            let customer = Keys(&tx).revoke(&key_id, clock::now())?;
            if let Some(customer) = &customer {
                AuditLog(&tx).append(&entry(
                    &caller,
                    Some(customer),
                    "key.revoke",
                    Some(key_id.clone()),
                ))?;
            }
            tx.commit()?;
            Ok::<_, StoreError>(customer)
        })
        .await?;
    state.keys.invalidate_key(&target);
    customer
        .map(|_| ())
        .ok_or_else(|| ApiError::NotFound(format!("key {target} does not exist")))
}

/// A customer's usage per month.
pub async fn usage(state: &AppState, id: String) -> Result<UsageView, ApiError> {
    let target = id.clone();
    let found = state
        .store
        .run_fresh(move |c| {
            let Some(customer) = Customers(c).get(&id)? else {
                return Ok(None);
            };
            Ok(Some((customer, Usage(c).months(&id)?)))
        })
        .await?;
    let (customer, months) = found.ok_or_else(|| customer_missing(&target))?;
    Ok(UsageView {
        customer_id: customer.id,
        tier: customer.tier,
        monthly_quota: customer.tier.monthly_quota(),
        months,
    })
}

/// A page of the audit log.
pub async fn audit(state: &AppState, query: AuditQuery) -> Result<AuditPage, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::validation("limit", "must be 1..=500"));
    }
    let entries = state
        .store
        .run(move |c| AuditLog(c).list(query.customer_id.as_deref(), query.before, limit))
        .await?;
    let next_before = (entries.len() == limit as usize)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    Ok(AuditPage {
        entries: entries
            .into_iter()
            .map(|e| AuditEntryView {
                id: e.id,
                at: clock::rfc3339(e.at),
                actor: e.actor,
                customer_id: e.customer_id,
                action: e.action,
                target: e.target,
                address: e.address,
                outcome: e.outcome,
            })
            .collect(),
        next_before,
    })
}

/// On an empty database: the operator customer and its admin key (read,
/// write, admin), whose full key is returned to be printed once.
pub fn bootstrap(store: &crate::store::Store) -> Result<Option<String>, StoreError> {
    store.run_now(|c| {
        let tx = c.transaction()?;
        if Customers(&tx).count()? > 0 {
            return Ok(None);
        }
        let now = clock::now();
        let customer = Customers(&tx).create("operator", Tier::Enterprise, now)?;
        let key = generate_key(
            &customer.id,
            &[Scope::Admin, Scope::Read, Scope::Write],
            None,
            None,
            now,
        );
        Keys(&tx).insert(&key.record)?;
        AuditLog(&tx).append(&AuditEntry {
            id: 0,
            at: now,
            actor: None,
            customer_id: Some(customer.id.clone()),
            action: "key.bootstrap".to_owned(),
            target: Some(key.record.key_id.clone()),
            address: None,
            outcome: "ok".to_owned(),
        })?;
        tx.commit()?;
        Ok(Some(key.api_key))
    })
}
