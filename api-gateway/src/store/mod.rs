//! The customer database: one SQLite file (WAL mode) with migrations
//! versioned in the code, and one repository type per table group.

mod audit;
mod customers;
mod episodes;
mod keys;
mod migrations;
mod usage;

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use rusqlite::Connection;

pub use audit::{AuditEntry, AuditLog};
pub use customers::{Customer, CustomerStatus, Customers, Tier};
pub use episodes::{EpisodeFilter, EpisodeRow, Episodes, Idempotency, IdempotencyRecord};
pub use keys::{KeyRecord, Keys};
pub use migrations::SCHEMA_VERSION;
pub use usage::{QuotaCharge, Usage, UsageMonth};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the database schema is version {found}, newer than this gateway's {supported}")]
    TooNew { found: i64, supported: i64 },
    #[error("stored JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the database task failed: {0}")]
    Task(String),
}

impl From<StoreError> for crate::error::ApiError {
    fn from(e: StoreError) -> Self {
        crate::error::ApiError::internal(e)
    }
}

/// The database. One connection behind a mutex: SQLite writes are serial
/// anyway, and holding the mutex for a whole transaction is what makes a
/// quota check-and-charge atomic. The lock is taken only inside
/// [`Store::run`] (on the blocking pool), never across an `.await`.
#[derive(Clone)]
pub struct Store {
    connection: Arc<Mutex<Connection>>,
}

impl Store {
    /// Opens (creating) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let mut connection = Connection::open(path)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        migrations::migrate(&mut connection)?;
        Ok(Store {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// Runs `work` with the connection on the blocking pool.
    pub async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || work(&mut connection.lock()))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Runs `work` with the connection on this thread (start-up, tests).
    pub fn run_now<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        work(&mut self.connection.lock())
    }

    /// Whether the database answers (readiness).
    pub async fn ping(&self) -> bool {
        self.run(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
            .await
            .is_ok()
    }
}
