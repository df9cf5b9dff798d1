//! [`Store`]: the RocksDB database behind an instance — manifest, id maps,
//! payloads and the hot tier's write log — and the commit path that makes a
//! write durable according to the [`FsyncPolicy`].
//!
//! Every write goes to RocksDB's WAL without a sync, in one `WriteBatch`
//! (atomic). What happens next depends on the policy:
//! - `Always`: [`Store::commit`] waits until an fsync of the WAL that started
//!   after the write returned has finished. Concurrent writers share fsyncs:
//!   one of them (the leader) syncs for everybody that wrote before it started
//!   (group commit).
//! - `IntervalMs`: a background thread fsyncs the WAL on that period.
//! - `Never`: nothing; the OS flushes eventually.
//!
//! In every policy the WAL record is in the kernel before the write returns,
//! so a process crash (SIGKILL) loses nothing acknowledged.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Sender};
use parking_lot::{Condvar, Mutex};
use rocksdb::{
    checkpoint::Checkpoint, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, Options,
    WriteBatch, WriteOptions, DB,
};

use super::config::FsyncPolicy;
use super::error::StorageError;
use super::keys::COLUMN_FAMILIES;

/// Ticket of a write: its position in the order writes returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct WriteTicket(u64);

/// State of the group commit.
#[derive(Default)]
struct SyncState {
    /// Tickets handed out: writes that have returned from RocksDB.
    written: u64,
    /// Every write with a ticket up to this one is fsynced.
    synced: u64,
    /// A leader is fsyncing right now.
    syncing: bool,
}

/// Counters of the commit path, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SyncStats {
    /// WAL fsyncs performed.
    pub fsyncs: u64,
    /// Writes those fsyncs covered (> fsyncs when writers shared them).
    pub synced_writes: u64,
    /// Total seconds spent in WAL fsyncs.
    pub fsync_seconds: f64,
}

/// The RocksDB database of one instance.
pub(crate) struct Store {
    db: Arc<DB>,
    path: PathBuf,
    policy: FsyncPolicy,
    /// Guards the group-commit counters; `synced` is raised by the leader.
    /// Waiters sleep on `synced_changed`. Never held during an fsync.
    sync_state: Mutex<SyncState>,
    synced_changed: Condvar,
    stats: Mutex<SyncStats>,
    /// Stops the interval syncer when dropped.
    syncer_stop: Option<Sender<()>>,
    syncer: Option<JoinHandle<()>>,
    /// Called by the group-commit leader just before its fsync: the tests'
    /// stand-in for a slow disk (it can block until the test lets go).
    #[cfg(test)]
    pub(crate) before_fsync: Mutex<Option<FsyncHook>>,
}

/// See [`Store::before_fsync`].
#[cfg(test)]
pub(crate) type FsyncHook = Box<dyn Fn() + Send + Sync>;

impl Store {
    /// Opens (or creates) the database in `path`.
    pub(crate) fn open(path: &Path, policy: FsyncPolicy) -> Result<Self, StorageError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        // Flushes of all column families are atomic, so a checkpoint (and a
        // recovery that replays no WAL) sees every family at the same point.
        options.set_atomic_flush(true);
        options.set_compression_type(DBCompressionType::Lz4);
        options.set_keep_log_file_num(4);
        options.set_max_background_jobs(2);
        let families = COLUMN_FAMILIES.iter().map(|name| {
            let mut cf = Options::default();
            cf.set_compression_type(DBCompressionType::Lz4);
            ColumnFamilyDescriptor::new(*name, cf)
        });
        let db = DB::open_cf_descriptors(&options, path, families)
            .map_err(|e| StorageError::rocks(format!("open {}", path.display()), e))?;
        let db = Arc::new(db);
        let (syncer_stop, syncer) = match policy {
            FsyncPolicy::IntervalMs(ms) => {
                let (stop, stopped) = bounded::<()>(1);
                let db = Arc::clone(&db);
                let period = Duration::from_millis(ms);
                let handle = std::thread::Builder::new()
                    .name("kyro-wal-sync".into())
                    .spawn(move || {
                        // Ends when the sender is dropped (or sends).
                        while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                            stopped.recv_timeout(period)
                        {
                            if let Err(e) = db.flush_wal(true) {
                                tracing::error!(error = %e, "periodic WAL fsync failed");
                            }
                        }
                    })
                    .map_err(|e| StorageError::io(path, e))?;
                (Some(stop), Some(handle))
            }
            _ => (None, None),
        };
        Ok(Self {
            db,
            path: path.to_path_buf(),
            policy,
            sync_state: Mutex::new(SyncState::default()),
            synced_changed: Condvar::new(),
            stats: Mutex::new(SyncStats::default()),
            syncer_stop,
            syncer,
            #[cfg(test)]
            before_fsync: Mutex::new(None),
        })
    }

    /// The database handle.
    pub(crate) fn db(&self) -> &DB {
        &self.db
    }

    /// A column family that [`Store::open`] created.
    pub(crate) fn cf(&self, name: &str) -> &ColumnFamily {
        match self.db.cf_handle(name) {
            Some(cf) => cf,
            // Every family in COLUMN_FAMILIES is created or opened by
            // `open`, and only those names are passed here.
            None => unreachable!("column family {name} is opened with the database"),
        }
    }

    /// Writes `batch` to the WAL and memtables without waiting for an fsync;
    /// pass the ticket to [`Store::commit`] before acknowledging.
    pub(crate) fn write(&self, batch: WriteBatch) -> Result<WriteTicket, StorageError> {
        let mut options = WriteOptions::default();
        options.set_sync(false);
        self.db
            .write_opt(batch, &options)
            .map_err(|e| StorageError::rocks("write", e))?;
        let mut state = self.sync_state.lock();
        state.written += 1;
        Ok(WriteTicket(state.written))
    }

    /// Writes `batch` and fsyncs it whatever the policy: for manifest changes,
    /// which must never be lost once files depend on them.
    pub(crate) fn write_durable(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let ticket = self.write(batch)?;
        self.sync_through(ticket)
    }

    /// Makes the write with `ticket` as durable as the policy asks.
    pub(crate) fn commit(&self, ticket: WriteTicket) -> Result<(), StorageError> {
        match self.policy {
            FsyncPolicy::Always => self.sync_through(ticket),
            FsyncPolicy::IntervalMs(_) | FsyncPolicy::Never => Ok(()),
        }
    }

    /// Returns once every write up to `ticket` is fsynced: either a sync that
    /// started after it covers it, or this thread leads one.
    fn sync_through(&self, ticket: WriteTicket) -> Result<(), StorageError> {
        let mut state = self.sync_state.lock();
        loop {
            if state.synced >= ticket.0 {
                return Ok(());
            }
            if state.syncing {
                self.synced_changed.wait(&mut state);
                continue;
            }
            // Lead: everything written so far returned before this sync
            // starts, so the sync covers it.
            let target = state.written;
            let covered = target - state.synced;
            state.syncing = true;
            drop(state);
            #[cfg(test)]
            if let Some(hook) = &*self.before_fsync.lock() {
                hook();
            }
            let started = Instant::now();
            let result = self.db.flush_wal(true);
            let elapsed = started.elapsed().as_secs_f64();
            state = self.sync_state.lock();
            state.syncing = false;
            if result.is_ok() {
                state.synced = state.synced.max(target);
                let mut stats = self.stats.lock();
                stats.fsyncs += 1;
                stats.synced_writes += covered;
                stats.fsync_seconds += elapsed;
            }
            self.synced_changed.notify_all();
            result.map_err(|e| StorageError::rocks("fsync of the write-ahead log", e))?;
        }
    }

    /// Commit-path counters.
    pub(crate) fn sync_stats(&self) -> SyncStats {
        *self.stats.lock()
    }

    /// Writes a consistent RocksDB checkpoint into `target` (which must not
    /// exist), flushing memtables first.
    pub(crate) fn checkpoint(&self, target: &Path) -> Result<(), StorageError> {
        let checkpoint = Checkpoint::new(&self.db)
            .map_err(|e| StorageError::rocks("create checkpoint object", e))?;
        checkpoint
            .create_checkpoint(target)
            .map_err(|e| StorageError::rocks(format!("checkpoint to {}", target.display()), e))
    }

    /// Fsyncs the WAL (used at shutdown, whatever the policy).
    pub(crate) fn sync_now(&self) -> Result<(), StorageError> {
        self.db
            .flush_wal(true)
            .map_err(|e| StorageError::rocks(format!("fsync WAL of {}", self.path.display()), e))
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        drop(self.syncer_stop.take());
        if let Some(handle) = self.syncer.take() {
            let _ = handle.join();
        }
    }
}
