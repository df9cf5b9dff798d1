//! [`InstanceCore`]: what every part of an instance shares (the data
//! directory, configuration, RocksDB, the manifest counters, the namespace
//! table, the caches) and the manifest records written on its behalf. The
//! facade (`instance.rs`), tiering, the maintenance threads and snapshots all
//! work through it; it depends on none of them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crossbeam_channel::Sender;
use parking_lot::{Mutex, RwLock};
use rocksdb::WriteBatch;

use super::caches::{PointCache, QueryCache};
use super::config::InstanceConfig;
use super::error::StorageError;
use super::keys::{self, CF_META, INSTANCE_KEY};
use super::manifest::{self, InstanceRecord, NamespaceRecord, MANIFEST_VERSION};
use super::namespace::Namespace;
use super::store::Store;

/// What every part of an instance shares.
pub(crate) struct InstanceCore {
    pub(crate) dir: PathBuf,
    pub(crate) segments_dir: PathBuf,
    pub(crate) config: InstanceConfig,
    pub(crate) store: Store,
    /// The instance record's counters. Held while a manifest change is
    /// written and swapped in (sealer, optimizer, namespace create/drop,
    /// snapshot), so that those happen one at a time.
    pub(crate) manifest: Mutex<InstanceRecord>,
    /// (tenant, namespace) → namespace.
    pub(crate) namespaces: RwLock<HashMap<(String, String), Arc<Namespace>>>,
    pub(crate) query_cache: Option<QueryCache>,
    pub(crate) point_cache: Option<Arc<PointCache>>,
    /// Namespaces whose hot segment waits for the background sealer.
    pub(crate) seal_requests: Option<Sender<u32>>,
    /// Raised when the instance closes: background merges in progress give
    /// up (their partial output is discarded, their inputs stay), so that a
    /// shutdown never waits for one.
    pub(crate) stopping: AtomicBool,
}

impl InstanceCore {
    /// A fresh segment id (persisted with the next manifest change).
    pub(crate) fn allocate_segment_id(&self) -> u64 {
        let mut manifest = self.manifest.lock();
        let id = manifest.next_segment;
        manifest.next_segment += 1;
        id
    }

    pub(crate) fn put_instance_record(
        &self,
        batch: &mut WriteBatch,
        record: &InstanceRecord,
    ) -> Result<(), StorageError> {
        batch.put_cf(
            self.store.cf(CF_META),
            INSTANCE_KEY,
            manifest::encode(record)?,
        );
        Ok(())
    }

    pub(crate) fn put_namespace_record(
        &self,
        batch: &mut WriteBatch,
        namespace: &Namespace,
        segments: Vec<u64>,
    ) -> Result<(), StorageError> {
        let record = NamespaceRecord {
            version: MANIFEST_VERSION,
            tenant: namespace.tenant.clone(),
            name: namespace.name.clone(),
            segments,
        };
        batch.put_cf(
            self.store.cf(CF_META),
            keys::namespace_key(namespace.id),
            manifest::encode(&record)?,
        );
        Ok(())
    }

    pub(crate) fn all_namespaces(&self) -> Vec<Arc<Namespace>> {
        self.namespaces.read().values().cloned().collect()
    }

    pub(crate) fn namespace_by_id(&self, id: u32) -> Option<Arc<Namespace>> {
        self.namespaces
            .read()
            .values()
            .find(|n| n.id == id)
            .cloned()
    }
}
