//! The `audit_log` table: who did what, from which address — every admin
//! and key action and every denied request.

use rusqlite::{params, Connection};
use serde::Serialize;

use super::StoreError;

/// One audit entry.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: i64,
    pub at: i64,
    /// The key id that acted (`None`: unauthenticated).
    pub actor: Option<String>,
    pub customer_id: Option<String>,
    /// `customer.create`, `key.revoke`, `request.denied`, …
    pub action: String,
    pub target: Option<String>,
    pub address: Option<String>,
    /// `ok`, or why it was denied (`unauthenticated`, `forbidden`, `rate_limited`, …).
    pub outcome: String,
}

/// Repository of the audit log.
pub struct AuditLog<'c>(pub &'c Connection);

impl AuditLog<'_> {
    /// Appends an entry (`id` is assigned).
    pub fn append(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT INTO audit_log (at, actor, customer_id, action, target, address, outcome)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                entry.at,
                entry.actor,
                entry.customer_id,
                entry.action,
                entry.target,
                entry.address,
                entry.outcome
            ],
        )?;
        Ok(())
    }

    /// Entries newest first, before id `before` (exclusive) when given,
    /// optionally of one customer.
    pub fn list(
        &self,
        customer_id: Option<&str>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let mut statement = self.0.prepare(
            "SELECT id, at, actor, customer_id, action, target, address, outcome FROM audit_log
             WHERE (?1 IS NULL OR customer_id = ?1) AND (?2 IS NULL OR id < ?2)
             ORDER BY id DESC LIMIT ?3",
        )?;
        let rows = statement.query_map(params![customer_id, before, limit], |r| {
            Ok(AuditEntry {
                id: r.get(0)?,
                at: r.get(1)?,
                actor: r.get(2)?,
                customer_id: r.get(3)?,
                action: r.get(4)?,
                target: r.get(5)?,
                address: r.get(6)?,
                outcome: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
