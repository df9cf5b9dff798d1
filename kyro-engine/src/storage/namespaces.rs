//! The namespaces of an [`Instance`]: lookup, creation on first write
//! (recorded in the manifest before use), listing and dropping (records,
//! id map, payloads, write log and segment files).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rocksdb::WriteBatch;

use super::error::StorageError;
use super::fs::remove_dir;
use super::hot::HotSegment;
use super::instance::Instance;
use super::keys::{self, CF_HOT, CF_IDS, CF_META, CF_PAYLOADS};
use super::manifest::segment_dir;
use super::namespace::{Namespace, PointState, SegmentSet};
use super::request::{NamespaceInfo, NamespaceRef};
use super::segment::{SegmentStats, Tier};
use crate::error::EngineError;

impl Instance {
    /// The namespace `target` names, if it exists.
    pub(super) fn namespace(
        &self,
        target: NamespaceRef<'_>,
    ) -> Result<Arc<Namespace>, StorageError> {
        target.validate()?;
        self.core
            .namespaces
            .read()
            .get(&(target.tenant.to_string(), target.namespace.to_string()))
            .cloned()
            .ok_or_else(|| StorageError::NamespaceNotFound {
                tenant: target.tenant.to_string(),
                namespace: target.namespace.to_string(),
            })
    }

    /// The namespace `target` names, created (durably, in the manifest) on
    /// first use.
    pub(super) fn namespace_or_create(
        &self,
        target: NamespaceRef<'_>,
    ) -> Result<Arc<Namespace>, StorageError> {
        match self.namespace(target) {
            Err(StorageError::NamespaceNotFound { .. }) => {}
            other => return other,
        }
        let core = &self.core;
        let mut manifest = core.manifest.lock();
        let key = (target.tenant.to_string(), target.namespace.to_string());
        if let Some(existing) = core.namespaces.read().get(&key) {
            return Ok(Arc::clone(existing));
        }
        let id = manifest.next_namespace;
        manifest.next_namespace = id.checked_add(1).ok_or(EngineError::CapacityExceeded {
            capacity: u32::MAX as usize,
        })?;
        let set = SegmentSet {
            hot: Arc::new(HotSegment::new(&core.config, 0)?),
            sealing: Vec::new(),
            sealed: Vec::new(),
        };
        let namespace = Arc::new(Namespace::new(
            id,
            key.0.clone(),
            key.1.clone(),
            set,
            PointState::default(),
            0,
            core.point_cache.clone(),
        ));
        let mut batch = WriteBatch::default();
        core.put_namespace_record(&mut batch, &namespace, Vec::new())?;
        core.put_instance_record(&mut batch, &manifest)?;
        core.store.write_durable(batch)?;
        core.namespaces.write().insert(key, Arc::clone(&namespace));
        drop(manifest);
        tracing::info!(
            tenant = target.tenant,
            namespace = target.namespace,
            id,
            "created namespace"
        );
        Ok(namespace)
    }

    /// The namespaces of `tenant` (all tenants' with `None`), sorted.
    pub fn list_namespaces(&self, tenant: Option<&str>) -> Vec<NamespaceInfo> {
        let mut infos: Vec<NamespaceInfo> = self
            .core
            .all_namespaces()
            .iter()
            .filter(|n| tenant.is_none_or(|t| n.tenant == t))
            .map(|n| namespace_info(n))
            .collect();
        infos.sort_by(|a, b| (&a.tenant, &a.namespace).cmp(&(&b.tenant, &b.namespace)));
        infos
    }

    /// Deletes a namespace and all its points; false when it did not exist.
    pub fn drop_namespace(&self, target: NamespaceRef<'_>) -> Result<bool, StorageError> {
        let namespace = match self.namespace(target) {
            Ok(namespace) => namespace,
            Err(StorageError::NamespaceNotFound { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        let core = &self.core;
        namespace.dropping.store(true, Ordering::Release);
        let _optimizer = namespace.optimize_lock.lock();
        let _sealer = namespace.seal_lock.lock();
        let _writer = namespace.writer.lock();
        let _manifest = core.manifest.lock();
        namespace.dropped.store(true, Ordering::Release);
        let store = &core.store;
        let mut batch = WriteBatch::default();
        batch.delete_cf(store.cf(CF_META), keys::namespace_key(namespace.id));
        let (start, end) = keys::namespace_range(namespace.id);
        let end: Vec<u8> = end.map_or_else(|| vec![0xff; 13], |e| e.to_vec());
        for cf in [CF_IDS, CF_PAYLOADS, CF_HOT] {
            batch.delete_range_cf(store.cf(cf), start.as_slice(), end.as_slice());
        }
        store.write_durable(batch)?;
        core.namespaces
            .write()
            .remove(&(namespace.tenant.clone(), namespace.name.clone()));
        for segment in &namespace.segment_set().sealed {
            remove_dir(&segment_dir(&core.segments_dir, segment.id()));
        }
        tracing::info!(
            tenant = target.tenant,
            namespace = target.namespace,
            "dropped namespace"
        );
        Ok(true)
    }
}

pub(super) fn namespace_info(namespace: &Namespace) -> NamespaceInfo {
    let set = namespace.segment_set();
    let stats: Vec<SegmentStats> = set.segments().map(|s| s.stats()).collect();
    let cold = || stats.iter().filter(|s| s.tier == Tier::Cold);
    NamespaceInfo {
        tenant: namespace.tenant.clone(),
        namespace: namespace.name.clone(),
        points: namespace.points.read().live.len(),
        hot_points: stats
            .iter()
            .filter(|s| s.tier == Tier::Hot)
            .map(|s| s.live as u64)
            .sum(),
        cold_segments: cold().count(),
        cold_bytes: cold().map(|s| s.file_bytes).sum(),
        cold_segment_points: cold().map(|s| s.live as u64).collect(),
    }
}
