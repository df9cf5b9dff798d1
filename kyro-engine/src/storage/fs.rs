//! File-system helpers of the storage engine.

use std::fs;
use std::path::Path;

use super::error::StorageError;

/// Fsyncs a directory, so that renames and creations in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io(dir, e))
}

/// Removes a directory, logging (not failing) when it cannot: a leftover is
/// an orphan that the next open removes.
pub(crate) fn remove_dir(dir: &Path) {
    if let Err(e) = fs::remove_dir_all(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(dir = %dir.display(), error = %e, "could not remove segment directory");
        }
    }
}
