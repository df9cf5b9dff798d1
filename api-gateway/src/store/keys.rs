//! The `api_keys` table: key ids, salts and scrypt hashes (never keys).

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use super::StoreError;

/// One key as stored.
#[derive(Debug, Clone, Serialize)]
pub struct KeyRecord {
    pub key_id: String,
    pub customer_id: String,
    #[serde(skip)]
    pub salt: Vec<u8>,
    #[serde(skip)]
    pub hash: Vec<u8>,
    pub scopes: Vec<String>,
    pub project: Option<String>,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl KeyRecord {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<KeyRecord> {
        let scopes: String = row.get(4)?;
        Ok(KeyRecord {
            key_id: row.get(0)?,
            customer_id: row.get(1)?,
            salt: row.get(2)?,
            hash: row.get(3)?,
            scopes: scopes
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            project: row.get(5)?,
            expires_at: row.get(6)?,
            created_at: row.get(7)?,
            revoked_at: row.get(8)?,
        })
    }
}

const COLUMNS: &str =
    "key_id, customer_id, salt, hash, scopes, project, expires_at, created_at, revoked_at";

/// Repository of API keys.
pub struct Keys<'c>(pub &'c Connection);

impl Keys<'_> {
    /// Stores a key's record.
    pub fn insert(&self, key: &KeyRecord) -> Result<(), StoreError> {
        self.0.execute(
            &format!(
                "INSERT INTO api_keys ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            ),
            params![
                key.key_id,
                key.customer_id,
                key.salt,
                key.hash,
                key.scopes.join(","),
                key.project,
                key.expires_at,
                key.created_at,
                key.revoked_at
            ],
        )?;
        Ok(())
    }

    /// The key with this id.
    pub fn get(&self, key_id: &str) -> Result<Option<KeyRecord>, StoreError> {
        Ok(self
            .0
            .query_row(
                &format!("SELECT {COLUMNS} FROM api_keys WHERE key_id = ?1"),
                [key_id],
                KeyRecord::from_row,
            )
            .optional()?)
    }

    /// A customer's keys, oldest first.
    pub fn of_customer(&self, customer_id: &str) -> Result<Vec<KeyRecord>, StoreError> {
        let mut statement = self.0.prepare(&format!(
            "SELECT {COLUMNS} FROM api_keys WHERE customer_id = ?1 ORDER BY created_at, key_id"
        ))?;
        let rows = statement.query_map([customer_id], KeyRecord::from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Marks the key revoked; the customer it belonged to, or `None` when
    /// there is no such key.
    pub fn revoke(&self, key_id: &str, now: i64) -> Result<Option<String>, StoreError> {
        Ok(self
            .0
            .query_row(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE key_id = ?1 RETURNING customer_id",
                params![key_id, now],
                |r| r.get(0),
            )
            .optional()?)
    }
}
