//! The customer database: one SQLite file (WAL mode) with migrations
//! versioned in the code, and one repository type per table group.

mod audit;
mod body;
mod customers;
mod episodes;
mod keys;
mod migrations;
mod tallies;
mod usage;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::{mpsc, Arc};
use std::time::Instant;

use parking_lot::Mutex;
use rusqlite::Connection;

pub use audit::{AuditEntry, AuditLog};
pub use body::{BodySummary, StoredBody};
pub use customers::{Customer, CustomerStatus, Customers, Tier};
pub use episodes::{EpisodeFilter, EpisodeRow, Episodes, Idempotency, IdempotencyRecord};
pub use keys::{KeyRecord, Keys};
pub use migrations::SCHEMA_VERSION;
pub use tallies::FLUSH_AFTER;
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

/// The most memory SQLite's page cache of the connection may take
/// (64 MiB): the episodes a ranking reads stay in memory (see
/// `docs/gateway.md`, "The database").
const PAGE_CACHE_KIB: i64 = 64 * 1024;

/// A piece of work for the database thread.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The database. One connection, used by one thread of its own
/// (`kyro-sqlite`) that runs the jobs [`Store::run`] queues, one after the
/// other: SQLite writes are serial anyway, and running a whole transaction
/// as one job is what makes a quota check-and-charge atomic. (Before, each
/// call took a thread of tokio's blocking pool, which then waited for the
/// connection's mutex: under load a hundred threads took turns, and the
/// waking and switching cost about as much CPU as the queries.) The mutex
/// stays for [`Store::run_now`] (start-up, tests), uncontended otherwise.
///
/// Beside it, the query counters not yet written (see `tallies`): each
/// trip to the database first writes them if the oldest has waited
/// [`FLUSH_AFTER`]. The thread stops when the last clone is dropped.
#[derive(Clone)]
pub struct Store {
    connection: Arc<Mutex<Connection>>,
    tallies: Arc<Mutex<tallies::Tallies>>,
    jobs: mpsc::Sender<Job>,
}

impl Store {
    /// Opens (creating) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let mut connection = Connection::open(path)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        // SQLite's default page cache is 2 MiB: with a few thousand
        // episodes, ranking's row reads missed it and went to the file
        // (`pread` and a copy per page). A negative size is in KiB, taken
        // as pages are used.
        connection.pragma_update(None, "cache_size", -PAGE_CACHE_KIB)?;
        // Room for every statement the gateway prepares with
        // `prepare_cached` (rusqlite keeps 16 by default; beyond that
        // statements were parsed again on every request).
        connection.set_prepared_statement_cache_capacity(64);
        migrations::migrate(&mut connection)?;
        let connection = Arc::new(Mutex::new(connection));
        let (jobs, queue) = mpsc::channel::<Job>();
        let worker = connection.clone();
        std::thread::Builder::new()
            .name("kyro-sqlite".into())
            .spawn(move || run_jobs(&worker, &queue))
            .map_err(|e| StoreError::Task(format!("starting the database thread: {e}")))?;
        Ok(Store {
            connection,
            tallies: Arc::default(),
            jobs,
        })
    }

    /// Runs `work` with the connection on the database thread (after writing
    /// the pending query counters, when they are due).
    pub async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.run_with(false, work).await
    }

    /// Like [`Store::run`], after writing every pending query counter: for
    /// reads that show them (an episode's retrievals, the usage).
    pub async fn run_fresh<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.run_with(true, work).await
    }

    async fn run_with<T, F>(&self, all_tallies: bool, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let tallies = self.tallies.clone();
        let job: Job = Box::new(move |connection| {
            write_tallies(&tallies, connection, all_tallies);
            // The caller may have gone (a dropped request): nobody to tell.
            let _ = reply.send(work(connection));
        });
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Task("the database thread has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Task("a database job panicked".into()))?
    }

    /// Counts a query of `customer_id` in `month` (`reflect` or a search)
    /// and a retrieval of each of `returned`; written with a later trip to
    /// the database (at most [`FLUSH_AFTER`] later, see [`Store::flush_tallies`]).
    pub fn count_query(&self, customer_id: &str, month: &str, reflect: bool, returned: &[u64]) {
        self.tallies
            .lock()
            .add(customer_id, month, reflect, returned);
    }

    /// Writes the pending query counters if they are due (a timer calls it,
    /// so that they are written when no request comes), or all of them.
    pub async fn flush_tallies(&self, all: bool) -> Result<(), StoreError> {
        let due = {
            let tallies = self.tallies.lock();
            !tallies.is_empty() && (all || tallies.is_due(Instant::now()))
        };
        if due {
            self.run_with(all, |_| Ok(())).await?;
        }
        Ok(())
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

/// The database thread: runs queued jobs in order until every [`Store`] is
/// dropped. A job that panics is dropped with its reply (its caller gets
/// [`StoreError::Task`]); the thread goes on with the next.
fn run_jobs(connection: &Mutex<Connection>, queue: &mpsc::Receiver<Job>) {
    while let Ok(job) = queue.recv() {
        let mut connection = connection.lock();
        if catch_unwind(AssertUnwindSafe(|| job(&mut connection))).is_err() {
            tracing::error!("a database job panicked");
        }
    }
}

/// Writes the pending counters (all, or only when due) with the connection
/// held; a failed write keeps them for the next trip.
fn write_tallies(tallies: &Mutex<tallies::Tallies>, connection: &mut Connection, all: bool) {
    let pending = {
        let mut tallies = tallies.lock();
        if tallies.is_empty() || !(all || tallies.is_due(Instant::now())) {
            return;
        }
        std::mem::take(&mut *tallies)
    };
    if let Err(e) = pending.write(connection) {
        tracing::warn!(error = %e, "writing the query counters failed; kept for the next try");
        tallies.lock().absorb(pending);
    }
}
