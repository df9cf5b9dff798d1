//! Snapshots: a consistent point-in-time copy of an instance (a RocksDB
//! checkpoint plus hard links to the cold segment files, taken under the
//! manifest lock so no segment change lands halfway), and restoring one into
//! a fresh data directory.

use std::fs;
use std::path::Path;

use super::error::StorageError;
use super::fs::sync_dir;
use super::instance::Instance;
use super::manifest::segment_dir;

/// Name of the marker file that makes a directory a snapshot.
const SNAPSHOT_MARKER: &str = "KYRO_SNAPSHOT";

impl Instance {
    /// Writes a consistent point-in-time copy of the instance into `target`
    /// (which must not exist): a RocksDB checkpoint plus hard links to the
    /// cold segment files. Writes continue meanwhile; segment changes wait.
    pub fn create_snapshot(&self, target: &Path) -> Result<(), StorageError> {
        if target.exists() {
            return Err(StorageError::Snapshot {
                path: target.to_path_buf(),
                reason: "already exists".into(),
            });
        }
        fs::create_dir_all(target).map_err(|e| StorageError::io(target, e))?;
        let core = &self.core;
        let manifest = core.manifest.lock();
        core.store.checkpoint(&target.join("rocksdb"))?;
        let segments = target.join("segments");
        fs::create_dir_all(&segments).map_err(|e| StorageError::io(&segments, e))?;
        for namespace in core.all_namespaces() {
            for segment in &namespace.segment_set().sealed {
                let from = segment_dir(&core.segments_dir, segment.id());
                let to = segment_dir(&segments, segment.id());
                link_or_copy_dir(&from, &to)?;
            }
        }
        drop(manifest);
        let marker = target.join(SNAPSHOT_MARKER);
        fs::write(
            &marker,
            format!(
                "kyrodb snapshot\ndim={}\nmetric={}\n",
                core.config.dim,
                core.config.metric.name()
            ),
        )
        .map_err(|e| StorageError::io(&marker, e))?;
        sync_dir(&segments)?;
        sync_dir(target)?;
        tracing::info!(target = %target.display(), "snapshot written");
        Ok(())
    }

    /// Makes `target` (absent or empty) a data directory holding the state
    /// of `snapshot`; open it with [`Instance::open`] afterwards.
    pub fn restore_snapshot(snapshot: &Path, target: &Path) -> Result<(), StorageError> {
        if !snapshot.join(SNAPSHOT_MARKER).is_file() {
            return Err(StorageError::Snapshot {
                path: snapshot.to_path_buf(),
                reason: format!("not a snapshot (no {SNAPSHOT_MARKER})"),
            });
        }
        let occupied = fs::read_dir(target).is_ok_and(|mut d| d.next().is_some());
        if occupied {
            return Err(StorageError::Snapshot {
                path: target.to_path_buf(),
                reason: "restore target is not empty".into(),
            });
        }
        fs::create_dir_all(target).map_err(|e| StorageError::io(target, e))?;
        copy_dir(&snapshot.join("rocksdb"), &target.join("rocksdb"))?;
        let segments = snapshot.join("segments");
        let target_segments = target.join("segments");
        fs::create_dir_all(&target_segments).map_err(|e| StorageError::io(&target_segments, e))?;
        for entry in fs::read_dir(&segments).map_err(|e| StorageError::io(&segments, e))? {
            let entry = entry.map_err(|e| StorageError::io(&segments, e))?;
            link_or_copy_dir(&entry.path(), &target_segments.join(entry.file_name()))?;
        }
        sync_dir(&target_segments)?;
        sync_dir(target)?;
        Ok(())
    }
}

/// Hard-links every file of `from` into a new directory `to` (copies when
/// linking is not possible, e.g. across file systems).
fn link_or_copy_dir(from: &Path, to: &Path) -> Result<(), StorageError> {
    fs::create_dir_all(to).map_err(|e| StorageError::io(to, e))?;
    for entry in fs::read_dir(from).map_err(|e| StorageError::io(from, e))? {
        let entry = entry.map_err(|e| StorageError::io(from, e))?;
        let target = to.join(entry.file_name());
        if fs::hard_link(entry.path(), &target).is_err() {
            fs::copy(entry.path(), &target).map_err(|e| StorageError::io(&target, e))?;
        }
    }
    sync_dir(to)
}

/// Copies every file of `from` into a new directory `to`.
fn copy_dir(from: &Path, to: &Path) -> Result<(), StorageError> {
    fs::create_dir_all(to).map_err(|e| StorageError::io(to, e))?;
    for entry in fs::read_dir(from).map_err(|e| StorageError::io(from, e))? {
        let entry = entry.map_err(|e| StorageError::io(from, e))?;
        let target = to.join(entry.file_name());
        fs::copy(entry.path(), &target).map_err(|e| StorageError::io(&target, e))?;
    }
    sync_dir(to)
}
