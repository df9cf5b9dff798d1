//! [`StorageError`]: what a storage instance can refuse or fail at.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use crate::error::EngineError;
use crate::segment::SegmentError;

/// Errors of the storage layer. [`StorageError::Invalid`] is the caller's
/// fault (bad input); the others are state or environment.
#[derive(Debug, Error)]
pub enum StorageError {
    /// A request field is invalid; the inner error names it.
    #[error(transparent)]
    Invalid(#[from] EngineError),
    /// The tenant has no namespace of that name.
    #[error("namespace {tenant}/{namespace} does not exist")]
    NamespaceNotFound { tenant: String, namespace: String },
    /// No point has that doc id in the namespace.
    #[error("doc_id {doc_id} does not exist in namespace {namespace}")]
    DocNotFound { namespace: String, doc_id: u64 },
    /// RocksDB failed.
    #[error("rocksdb: {context}: {source}")]
    Rocks {
        context: String,
        #[source]
        source: rocksdb::Error,
    },
    /// A segment file could not be written or read (the error names it).
    #[error(transparent)]
    Segment(#[from] SegmentError),
    /// A file system operation failed on `path`.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A stored record could not be decoded.
    #[error("corrupt {what}: {reason}")]
    Corrupt { what: String, reason: String },
    /// The data directory was made for another dimension or metric.
    #[error("{path}: the instance stores {found}, the configuration asks for {expected}")]
    ConfigMismatch {
        path: PathBuf,
        found: String,
        expected: String,
    },
    /// The snapshot target is not usable.
    #[error("{path}: {reason}")]
    Snapshot { path: PathBuf, reason: String },
}

impl StorageError {
    pub(crate) fn rocks(context: impl Into<String>, source: rocksdb::Error) -> Self {
        StorageError::Rocks {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        StorageError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(what: impl Into<String>, reason: impl Into<String>) -> Self {
        StorageError::Corrupt {
            what: what.into(),
            reason: reason.into(),
        }
    }
}
