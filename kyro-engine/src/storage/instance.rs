//! [`Instance`]: one storage instance — a data directory holding the
//! namespaces of vectors of one dimension and metric — with recovery at open
//! and the public read/write API. What it shares with tiering and the
//! maintenance threads is in `core.rs`; the threads in `maintenance.rs`;
//! namespace lookup, creation, listing and dropping in `namespaces.rs`.
//!
//! Data directory:
//! ```text
//! <dir>/rocksdb/           manifest, id maps, payloads, hot-tier write log
//! <dir>/segments/<id>/     one cold segment (see docs/storage.md)
//! ```

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_channel::unbounded;
use parking_lot::{Mutex, RwLock};
use roaring::RoaringBitmap;
use rocksdb::WriteBatch;

use super::caches::{response_weight, QueryKey};
use super::config::InstanceConfig;
use super::core::InstanceCore;
use super::error::StorageError;
use super::keys::{CF_META, INSTANCE_KEY};
use super::maintenance::{start_background, Background};
use super::manifest::{self, InstanceRecord, MANIFEST_VERSION};
use super::namespace::{Namespace, SegmentSet};
use super::recovery::{read_namespace_records, recover_namespace, remove_orphan_segments};
use super::request::{
    NamespaceRef, PayloadUpdate, PointRecord, PointWrite, ScrollPage, SearchRequest,
    SearchResponse, MAX_SCROLL_LIMIT,
};
use super::search::{prepare_search, read_point_parts, search};
use super::store::{Store, SyncStats};
use super::tiering::{self, OptimizeReport};
use crate::cache::{AdaptiveCache, CacheStats};
use crate::error::EngineError;
use crate::payload::{Filter, Payload};

/// Counters of an instance, for `Stats` and `/metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceStats {
    /// Namespaces.
    pub namespaces: usize,
    /// Live points over all namespaces.
    pub points: u64,
    /// Points in hot segments (including those being sealed).
    pub hot_points: u64,
    /// Cold segments.
    pub cold_segments: usize,
    /// Bytes of cold segment files.
    pub cold_bytes: u64,
    /// Approximate bytes of the hot segments in memory.
    pub hot_bytes: u64,
    /// Query-result cache counters.
    pub query_cache: CacheStats,
    /// Point cache counters.
    pub point_cache: CacheStats,
    /// Write-ahead-log fsync counters.
    pub sync: SyncStats,
    /// Live points that a graph search cannot reach in the segment holding
    /// them (see `HnswIndex::unreachable_ids`). Always 0 for a sound
    /// instance; anything else is a bug worth an alert.
    pub unreachable_points: u64,
}

/// A storage instance. Cheap to share behind an `Arc`; every method takes
/// `&self` and may be called from any number of threads.
pub struct Instance {
    pub(super) core: Arc<InstanceCore>,
    background: Mutex<Option<Background>>,
}

impl Instance {
    /// Opens the instance in `dir`, creating it when empty. Recovery: the
    /// manifest is read, cold segments are mapped (and verified), id maps,
    /// payload indexes and hot segments are rebuilt from RocksDB. No cold
    /// graph is rebuilt.
    pub fn open(dir: &Path, config: InstanceConfig) -> Result<Self, StorageError> {
        config.validate()?;
        let segments_dir = dir.join("segments");
        fs::create_dir_all(&segments_dir).map_err(|e| StorageError::io(&segments_dir, e))?;
        let store = Store::open(&dir.join("rocksdb"), config.fsync)?;

        let record = match store
            .db()
            .get_cf(store.cf(CF_META), INSTANCE_KEY)
            .map_err(|e| StorageError::rocks("read instance record", e))?
        {
            Some(bytes) => {
                let record: InstanceRecord = manifest::decode("instance record", &bytes)?;
                if record.version != MANIFEST_VERSION {
                    return Err(StorageError::corrupt(
                        "instance record",
                        format!(
                            "version {} (this build reads {MANIFEST_VERSION})",
                            record.version
                        ),
                    ));
                }
                let expected = format!("{}-d {}", config.dim, config.metric.name());
                let found = format!("{}-d {}", record.dim, record.metric);
                if found != expected {
                    return Err(StorageError::ConfigMismatch {
                        path: dir.to_path_buf(),
                        found,
                        expected,
                    });
                }
                record
            }
            None => {
                let record = InstanceRecord::new(config.dim, config.metric);
                let mut batch = WriteBatch::default();
                batch.put_cf(store.cf(CF_META), INSTANCE_KEY, manifest::encode(&record)?);
                store.write_durable(batch)?;
                record
            }
        };

        let query_cache = (config.cache.query_cache_bytes > 0)
            .then(|| AdaptiveCache::new(config.cache.query_cache_bytes));
        let point_cache = (config.cache.point_cache_bytes > 0)
            .then(|| Arc::new(AdaptiveCache::new(config.cache.point_cache_bytes)));

        let mut namespaces = HashMap::new();
        let mut referenced = Vec::new();
        for (id, ns_record) in read_namespace_records(&store)? {
            referenced.extend(ns_record.segments.iter().copied());
            let namespace = recover_namespace(
                &store,
                &config,
                &segments_dir,
                id,
                ns_record,
                point_cache.clone(),
            )?;
            namespaces.insert(
                (namespace.tenant.clone(), namespace.name.clone()),
                Arc::new(namespace),
            );
        }
        remove_orphan_segments(&segments_dir, &referenced)?;

        let (seal_sender, seal_receiver) = unbounded();
        let background_on = config.optimizer.background;
        let core = Arc::new(InstanceCore {
            dir: dir.to_path_buf(),
            segments_dir,
            config,
            store,
            manifest: Mutex::new(record),
            namespaces: RwLock::new(namespaces),
            query_cache,
            point_cache,
            seal_requests: background_on.then_some(seal_sender),
            stopping: AtomicBool::new(false),
        });
        let background = if background_on {
            Some(start_background(Arc::clone(&core), seal_receiver)?)
        } else {
            None
        };
        Ok(Self {
            core,
            background: Mutex::new(background),
        })
    }

    /// The instance's configuration.
    pub fn config(&self) -> &InstanceConfig {
        &self.core.config
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.core.dir
    }

    /// Inserts or replaces points (creating the namespace on first write).
    /// Each item is validated on its own: the answer has one entry per item,
    /// an error for the refused ones; the accepted ones are written in one
    /// atomic batch, durable per the fsync policy, and searchable when this
    /// returns.
    pub fn upsert(
        &self,
        target: NamespaceRef<'_>,
        items: Vec<PointWrite>,
    ) -> Result<Vec<Result<(), EngineError>>, StorageError> {
        let namespace = self.namespace_or_create(target)?;
        let (answers, outcome) = namespace.upsert(&self.core.store, &self.core.config, items)?;
        let full = outcome.full_hot.as_ref();
        if full.is_some() && namespace.rotate_hot(&self.core.config, full)? {
            match &self.core.seal_requests {
                Some(requests) => {
                    // The receiver lives as long as the background thread;
                    // if it is gone the next flush seals instead.
                    let _ = requests.send(namespace.id);
                }
                None => {
                    tiering::seal_pending(&self.core, &namespace)?;
                }
            }
        }
        Ok(answers)
    }

    /// Inserts or replaces one point; an invalid point is an error.
    pub fn insert(&self, target: NamespaceRef<'_>, point: PointWrite) -> Result<(), StorageError> {
        let mut answers = self.upsert(target, vec![point])?;
        match answers.pop() {
            Some(Err(e)) => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// The points with the given doc ids (`None` for those that do not exist).
    pub fn get(
        &self,
        target: NamespaceRef<'_>,
        doc_ids: &[u64],
        with_vector: bool,
        with_payload: bool,
    ) -> Result<Vec<Option<PointRecord>>, StorageError> {
        let namespace = self.namespace(target)?;
        let store = &self.core.store;
        let _points = namespace.points.read();
        let set = namespace.segment_set();
        let mut records = Vec::with_capacity(doc_ids.len());
        for &doc_id in doc_ids {
            let Some(point) = namespace.point_of(store, doc_id)? else {
                records.push(None);
                continue;
            };
            records.push(Some(self.point_record(
                &namespace,
                &set,
                (doc_id, point),
                with_vector,
                with_payload,
            )?));
        }
        Ok(records)
    }

    /// The record of live `(doc_id, point)`, with what was asked for. The
    /// caller holds the namespace's point-state read lock.
    fn point_record(
        &self,
        namespace: &Namespace,
        set: &SegmentSet,
        (doc_id, point): (u64, u32),
        with_vector: bool,
        with_payload: bool,
    ) -> Result<PointRecord, StorageError> {
        let (payload, vector) = read_point_parts(
            &self.core.store,
            namespace,
            set,
            self.core.point_cache.as_deref(),
            point,
            with_payload,
        )?;
        Ok(PointRecord {
            doc_id,
            vector: if with_vector { vector } else { None },
            payload: with_payload.then_some(payload),
        })
    }

    /// Merges into or replaces the payload of `doc_id`.
    pub fn update_payload(
        &self,
        target: NamespaceRef<'_>,
        doc_id: u64,
        payload: Payload,
        mode: PayloadUpdate,
    ) -> Result<(), StorageError> {
        let namespace = self.namespace(target)?;
        namespace.update_payload(&self.core.store, doc_id, payload, mode)?;
        Ok(())
    }

    /// Deletes the given docs; returns how many existed.
    pub fn delete(&self, target: NamespaceRef<'_>, doc_ids: &[u64]) -> Result<usize, StorageError> {
        let namespace = self.namespace(target)?;
        Ok(namespace.delete(&self.core.store, doc_ids)?.affected)
    }

    /// Deletes every point whose payload matches `filter`; returns how many.
    pub fn delete_by_filter(
        &self,
        target: NamespaceRef<'_>,
        filter: &Filter,
    ) -> Result<usize, StorageError> {
        let namespace = self.namespace(target)?;
        Ok(namespace
            .delete_by_filter(&self.core.store, filter)?
            .affected)
    }

    /// The nearest points to `request.vector`, best first.
    pub fn search(
        &self,
        target: NamespaceRef<'_>,
        request: &SearchRequest<'_>,
    ) -> Result<SearchResponse, StorageError> {
        let prepared = prepare_search(&self.core.config, request)?;
        let namespace = self.namespace(target)?;
        let key = self.core.query_cache.as_ref().map(|_| QueryKey {
            namespace: namespace.id,
            generation: namespace.generation(),
            k: request.k,
            ef: prepared.ef,
            min_score: request.min_score.map(f32::to_bits),
            with_payload: request.with_payload,
            with_vector: request.with_vector,
            filter: prepared.filter_key.clone(),
            query: request.vector.iter().map(|x| x.to_bits()).collect(),
        });
        if let (Some(cache), Some(key)) = (&self.core.query_cache, &key) {
            if let Some(hit) = cache.get(key) {
                let mut response = (*hit).clone();
                response.cached = true;
                return Ok(response);
            }
        }
        let response = search(
            &self.core.store,
            &self.core.config,
            &namespace,
            self.core.point_cache.as_deref(),
            &prepared,
        )?;
        if let (Some(cache), Some(key)) = (&self.core.query_cache, key) {
            let weight = response_weight(&key, &response);
            cache.insert(key, Arc::new(response.clone()), weight);
        }
        Ok(response)
    }

    /// Live points of the namespace, or those matching `filter`.
    pub fn count(
        &self,
        target: NamespaceRef<'_>,
        filter: Option<&Filter>,
    ) -> Result<u64, StorageError> {
        self.namespace(target)?.count(filter)
    }

    /// Lists points in ascending doc id order, `limit` at a time, starting
    /// after doc id `after`, keeping those matching `filter`.
    pub fn scroll(
        &self,
        target: NamespaceRef<'_>,
        filter: Option<&Filter>,
        after: Option<u64>,
        limit: usize,
        with_vector: bool,
        with_payload: bool,
    ) -> Result<ScrollPage, StorageError> {
        if limit == 0 || limit > MAX_SCROLL_LIMIT {
            return Err(EngineError::InvalidParameter {
                field: "limit",
                reason: format!("must be in 1..={MAX_SCROLL_LIMIT}, got {limit}"),
            }
            .into());
        }
        if let Some(filter) = filter {
            filter.validate()?;
        }
        let namespace = self.namespace(target)?;
        let store = &self.core.store;
        let start = match after {
            None => 0,
            Some(u64::MAX) => {
                return Ok(ScrollPage {
                    points: Vec::new(),
                    next_after: None,
                })
            }
            Some(after) => after + 1,
        };
        let points = namespace.points.read();
        // Through the namespace's filter-result cache: the pages of one
        // scroll share a filter, and evaluate it once while nothing changes.
        let allowed: Option<Arc<RoaringBitmap>> =
            filter.map(|f| namespace.matching(&points, f, &f.encode()));
        let universe = allowed.as_deref().unwrap_or(&points.live);
        let set = namespace.segment_set();
        let mut page = Vec::new();
        let mut next_after = None;
        for entry in namespace.ids().scan_from(store, start) {
            let (doc_id, point) = entry?;
            if !universe.contains(point) {
                continue;
            }
            if page.len() == limit {
                next_after = page.last().map(|r: &PointRecord| r.doc_id);
                break;
            }
            page.push(self.point_record(
                &namespace,
                &set,
                (doc_id, point),
                with_vector,
                with_payload,
            )?);
        }
        Ok(ScrollPage {
            points: page,
            next_after,
        })
    }

    /// Seals the hot tier of `target` (of every namespace with `None`) into
    /// cold segments now; returns how many segments were written.
    pub fn flush(&self, target: Option<NamespaceRef<'_>>) -> Result<usize, StorageError> {
        let namespaces = match target {
            Some(target) => vec![self.namespace(target)?],
            None => self.core.all_namespaces(),
        };
        let mut sealed = 0;
        for namespace in namespaces {
            namespace.rotate_hot(&self.core.config, None)?;
            sealed += tiering::seal_pending(&self.core, &namespace)?;
        }
        Ok(sealed)
    }

    /// Runs the optimizer on `target` now. With `force`, every cold segment
    /// is merged into one and deleted points are dropped.
    pub fn optimize(
        &self,
        target: NamespaceRef<'_>,
        force: bool,
    ) -> Result<OptimizeReport, StorageError> {
        let namespace = self.namespace(target)?;
        tiering::optimize(&self.core, &namespace, force)
    }

    /// Counters over the whole instance.
    pub fn stats(&self) -> InstanceStats {
        let infos = self.list_namespaces(None);
        let hot_bytes = self
            .core
            .all_namespaces()
            .iter()
            .map(|n| {
                let set = n.segment_set();
                set.segments().map(|s| s.stats().memory_bytes).sum::<u64>()
            })
            .sum();
        InstanceStats {
            namespaces: infos.len(),
            points: infos.iter().map(|i| i.points).sum(),
            hot_points: infos.iter().map(|i| i.hot_points).sum(),
            cold_segments: infos.iter().map(|i| i.cold_segments).sum(),
            cold_bytes: infos.iter().map(|i| i.cold_bytes).sum(),
            hot_bytes,
            query_cache: self
                .core
                .query_cache
                .as_ref()
                .map(AdaptiveCache::stats)
                .unwrap_or_default(),
            point_cache: self
                .core
                .point_cache
                .as_ref()
                .map(|c| c.stats())
                .unwrap_or_default(),
            sync: self.core.store.sync_stats(),
            unreachable_points: self
                .core
                .all_namespaces()
                .iter()
                .map(|n| n.unreachable_points())
                .sum(),
        }
    }

    /// Stops the background threads and fsyncs the write log. Dropping the
    /// instance does the same; this reports errors.
    pub fn close(self) -> Result<(), StorageError> {
        self.stop_and_sync()
    }

    /// What [`Instance::close`] does, through a shared reference: for a
    /// server whose shutdown budget ran out while a call still holds the
    /// instance. A merge in progress is cancelled (its inputs stay); writes
    /// that come later are still accepted and logged, and are durable per
    /// the fsync policy.
    pub fn stop_and_sync(&self) -> Result<(), StorageError> {
        self.stop_background();
        self.core.store.sync_now()
    }

    fn stop_background(&self) {
        self.core.stopping.store(true, Ordering::Release);
        if let Some(background) = self.background.lock().take() {
            background.stop();
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.stop_background();
        if let Err(e) = self.core.store.sync_now() {
            tracing::error!(error = %e, "final WAL fsync failed");
        }
    }
}
