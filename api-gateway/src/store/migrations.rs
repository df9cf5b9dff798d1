//! Schema migrations, versioned in the code. `PRAGMA user_version` holds the
//! version applied; each start applies the missing ones in one transaction
//! and refuses a database newer than this code.

use rusqlite::Connection;

use super::StoreError;

/// Migration `i` (0-based) takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: customers, keys, usage, idempotency, audit, episodes.
    r#"
    CREATE TABLE customers (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        tier TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'active',
        created_at INTEGER NOT NULL,
        -- the next episode id (episode ids are per customer, dense, from 1)
        next_episode_id INTEGER NOT NULL DEFAULT 1
    );
    CREATE TABLE api_keys (
        key_id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL REFERENCES customers(id),
        salt BLOB NOT NULL,
        hash BLOB NOT NULL,
        scopes TEXT NOT NULL,
        project TEXT,
        expires_at INTEGER,
        created_at INTEGER NOT NULL,
        revoked_at INTEGER
    );
    CREATE INDEX api_keys_customer ON api_keys(customer_id);
    CREATE TABLE usage (
        customer_id TEXT NOT NULL REFERENCES customers(id),
        month TEXT NOT NULL,
        captures INTEGER NOT NULL DEFAULT 0,
        searches INTEGER NOT NULL DEFAULT 0,
        reflects INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (customer_id, month)
    );
    CREATE TABLE idempotency_keys (
        customer_id TEXT NOT NULL,
        key TEXT NOT NULL,
        body_sha256 TEXT NOT NULL,
        status INTEGER,
        response TEXT,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (customer_id, key)
    );
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        actor TEXT,
        customer_id TEXT,
        action TEXT NOT NULL,
        target TEXT,
        address TEXT,
        outcome TEXT NOT NULL
    );
    CREATE TABLE episodes (
        customer_id TEXT NOT NULL REFERENCES customers(id),
        id INTEGER NOT NULL,
        -- 'pending' while the engine write is in flight, then 'live'
        state TEXT NOT NULL,
        project TEXT,
        branch TEXT,
        error_class TEXT NOT NULL,
        tools TEXT NOT NULL,
        tags TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        body TEXT NOT NULL,
        has_image INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        last_seen_at INTEGER NOT NULL,
        occurrences INTEGER NOT NULL DEFAULT 1,
        retrievals INTEGER NOT NULL DEFAULT 0,
        fix_successes INTEGER NOT NULL DEFAULT 0,
        fix_failures INTEGER NOT NULL DEFAULT 0,
        -- the usage month the capture was charged to (refunded on rollback)
        charged_month TEXT NOT NULL,
        PRIMARY KEY (customer_id, id)
    );
    CREATE INDEX episodes_fingerprint ON episodes(customer_id, fingerprint);
    "#,
    // 2: the fingerprint index also orders by id. The lookup of a capture's
    // fingerprint asks for the oldest match (`ORDER BY id LIMIT 1`); with
    // (customer_id, fingerprint) only, SQLite walked the customer's whole
    // primary key in id order instead, testing every episode's fingerprint:
    // a capture's cost grew with the customer's episodes.
    r#"
    DROP INDEX episodes_fingerprint;
    CREATE INDEX episodes_fingerprint ON episodes(customer_id, fingerprint, id);
    "#,
];

/// The schema version this code writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Applies the missing migrations.
pub fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    let found: i64 = connection.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    let tx = connection.transaction()?;
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version as i64 + 1)?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrating_twice_is_a_no_op_and_newer_schemas_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.db");
        let mut connection = Connection::open(&path).unwrap();
        migrate(&mut connection).unwrap();
        migrate(&mut connection).unwrap();
        let version: i64 = connection
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        connection
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        assert!(matches!(
            migrate(&mut connection),
            Err(StoreError::TooNew { .. })
        ));
    }
}
