//! [`Namespace`]: one tenant's collection of points — its hot segment, the
//! segments being sealed, its cold segments, the set of live points and the
//! payload index — and the write path that keeps RocksDB and memory in step.
//!
//! # Locks
//! Taken in this order, never the other way round:
//! 1. `writer` — serialises the namespace's writes: point-id assignment and
//!    read-modify-write of id maps and payloads. Held while the batch is
//!    written to RocksDB (unsynced) and applied to memory, released before
//!    the HNSW insert and before the fsync (upserts, deletes and payload
//!    updates alike), so concurrent writers share both.
//! 2. a hot segment's writer gate (shared) — from batch assignment until the
//!    HNSW inserts are done; the sealer takes it exclusively.
//! 3. `points` — the live set and payload index. Written by writers (under
//!    1) and by the sealer when it publishes; read by searches and reads.
//! 4. `segments` — swapped by the sealer and optimizer; readers clone the
//!    `Arc` and let go at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use roaring::RoaringBitmap;
use rocksdb::WriteBatch;

use super::caches::PointCache;
use super::config::InstanceConfig;
use super::error::StorageError;
use super::hot::HotSegment;
use super::id_map::IdMap;
use super::keys::{self, CF_HOT, CF_PAYLOADS};
use super::request::{PayloadUpdate, PointWrite, MAX_BATCH_POINTS};
use super::sealed::SealedSegment;
use super::segment::{Segment, Tier};
use super::store::{Store, WriteTicket};
use crate::error::EngineError;
use crate::payload::{Filter, Payload, PayloadIndex};

/// The segments a namespace is made of at one moment.
pub(crate) struct SegmentSet {
    /// Takes new writes.
    pub(crate) hot: Arc<HotSegment>,
    /// Full hot segments waiting to be (or being) written out; still searched.
    pub(crate) sealing: Vec<Arc<HotSegment>>,
    /// Cold segments, oldest first.
    pub(crate) sealed: Vec<Arc<SealedSegment>>,
}

impl SegmentSet {
    /// Every hot segment, the writable one first.
    pub(crate) fn hot_segments(&self) -> impl Iterator<Item = &Arc<HotSegment>> {
        std::iter::once(&self.hot).chain(self.sealing.iter())
    }

    /// Every segment, whatever its tier: the hot ones (writable first),
    /// then the cold ones, oldest first.
    pub(crate) fn segments(&self) -> impl Iterator<Item = &dyn Segment> {
        self.hot_segments()
            .map(|hot| hot.as_ref() as &dyn Segment)
            .chain(self.sealed.iter().map(|s| s.as_ref() as &dyn Segment))
    }

    /// Marks `point` deleted in whichever segment holds it.
    fn mark_deleted(&self, point: u32) {
        let _ = self.segments().any(|segment| segment.mark_deleted(point));
    }

    /// The doc id of `point`, wherever it is.
    pub(crate) fn doc_of(&self, point: u32) -> Option<u64> {
        self.segments().find_map(|segment| segment.doc_of(point))
    }

    /// The stored vector of live `point`, and whether it came from the cold
    /// tier.
    pub(crate) fn vector_of(&self, point: u32) -> Option<(Vec<f32>, bool)> {
        self.segments().find_map(|segment| {
            segment
                .vector_of(point)
                .map(|vector| (vector, segment.tier() == Tier::Cold))
        })
    }
}

/// Which points are live, and their payloads indexed.
#[derive(Default)]
pub(crate) struct PointState {
    pub(crate) live: RoaringBitmap,
    pub(crate) payloads: PayloadIndex,
}

/// Writer-side state, guarded by `Namespace::writer`.
pub(crate) struct WriterState {
    /// Next point id to hand out.
    pub(crate) next_point: u32,
}

/// One namespace of an instance.
pub(crate) struct Namespace {
    pub(crate) id: u32,
    pub(crate) tenant: String,
    pub(crate) name: String,
    pub(crate) writer: Mutex<WriterState>,
    pub(crate) segments: RwLock<Arc<SegmentSet>>,
    pub(crate) points: RwLock<PointState>,
    /// Raised by every write after its effects are visible and before it is
    /// acknowledged; part of every query-cache key, so a cached answer from
    /// before a write is never served after it.
    pub(crate) generation: AtomicU64,
    /// Held by the sealer while it writes out hot segments, so that one
    /// seals at a time. Sealing never waits for a merge: the two publish
    /// through the instance's manifest lock, each computing the new segment
    /// set from the current one.
    pub(crate) seal_lock: Mutex<()>,
    /// Held by the optimizer while it merges or rewrites cold segments, so
    /// that one does it at a time. Taken before `seal_lock` by whoever needs
    /// both (dropping the namespace).
    pub(crate) optimize_lock: Mutex<()>,
    /// Raised when a drop of the namespace starts: a merge in progress gives
    /// up instead of making the drop wait for it.
    pub(crate) dropping: AtomicBool,
    /// Set when the namespace is dropped; writers then refuse.
    pub(crate) dropped: AtomicBool,
    /// The last few filters evaluated, with the generation they were
    /// evaluated at: repeated filters (a tenant's tag, a time window) skip
    /// the bitmap algebra. Read and filled under the `points` read lock.
    filter_results: Mutex<Vec<FilterResult>>,
    /// The instance's cache of cold points; entries of this namespace are
    /// invalidated under the `points` write lock.
    point_cache: Option<Arc<PointCache>>,
    /// Payloads read from RocksDB (for answers and for unindexing).
    pub(crate) payload_reads: AtomicU64,
}

/// Filter results kept per namespace.
const FILTER_RESULTS: usize = 8;

/// A filter's matching live points at one generation.
struct FilterResult {
    generation: u64,
    filter: Vec<u8>,
    points: Arc<RoaringBitmap>,
}

/// What a write changed, for the caller's caches.
#[derive(Default)]
pub(crate) struct WriteOutcome {
    /// Point ids whose cached copies are now stale.
    pub(crate) stale_points: Vec<u32>,
    /// The hot segment the write went to, when that write filled it: it
    /// should be rotated out and sealed. Naming the segment (not just "the
    /// hot one is full") matters: writers that finish after a rotation must
    /// not rotate the fresh, nearly empty segment that replaced it.
    pub(crate) full_hot: Option<Arc<HotSegment>>,
    /// How many items the write affected.
    pub(crate) affected: usize,
}

impl Namespace {
    /// A namespace in the given state.
    pub(crate) fn new(
        id: u32,
        tenant: String,
        name: String,
        set: SegmentSet,
        points: PointState,
        next_point: u32,
        point_cache: Option<Arc<PointCache>>,
    ) -> Self {
        Self {
            id,
            tenant,
            name,
            writer: Mutex::new(WriterState { next_point }),
            segments: RwLock::new(Arc::new(set)),
            points: RwLock::new(points),
            generation: AtomicU64::new(0),
            seal_lock: Mutex::new(()),
            optimize_lock: Mutex::new(()),
            dropping: AtomicBool::new(false),
            dropped: AtomicBool::new(false),
            filter_results: Mutex::new(Vec::new()),
            point_cache,
            payload_reads: AtomicU64::new(0),
        }
    }

    /// The live points matching `filter`. The caller holds the `points` read
    /// lock (`state`), so the generation read here matches the state.
    /// `key` is the filter's canonical encoding ([`Filter::encode`]), which
    /// the caller already has.
    pub(crate) fn matching(
        &self,
        state: &PointState,
        filter: &Filter,
        key: &[u8],
    ) -> Arc<RoaringBitmap> {
        let generation = self.generation();
        {
            let mut results = self.filter_results.lock();
            if let Some(at) = results
                .iter()
                .position(|r| r.generation == generation && r.filter == key)
            {
                let hit = results.remove(at);
                let points = Arc::clone(&hit.points);
                results.push(hit);
                return points;
            }
        }
        let points = Arc::new(state.payloads.evaluate(filter, &state.live));
        let mut results = self.filter_results.lock();
        results.retain(|r| r.generation == generation);
        if results.len() >= FILTER_RESULTS {
            results.remove(0);
        }
        results.push(FilterResult {
            generation,
            filter: key.to_vec(),
            points: Arc::clone(&points),
        });
        points
    }

    /// Drops the cached copy of `point`; called under the `points` write lock.
    fn invalidate_cached(&self, point: u32) {
        if let Some(cache) = &self.point_cache {
            cache.remove(&(self.id, point));
        }
    }

    /// The current segments.
    pub(crate) fn segment_set(&self) -> Arc<SegmentSet> {
        Arc::clone(&self.segments.read())
    }

    /// Current generation (see the field).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn bump_generation(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn not_found(&self) -> StorageError {
        StorageError::NamespaceNotFound {
            tenant: self.tenant.clone(),
            namespace: self.name.clone(),
        }
    }

    /// The point id of `doc_id`, read from the id map.
    pub(crate) fn point_of(&self, store: &Store, doc_id: u64) -> Result<Option<u32>, StorageError> {
        self.ids().point_of(store, doc_id)
    }

    /// The namespace's doc → point map.
    pub(crate) fn ids(&self) -> IdMap {
        IdMap::new(self.id)
    }

    /// The stored payload of `point` (empty when it has none).
    pub(crate) fn payload_of(&self, store: &Store, point: u32) -> Result<Payload, StorageError> {
        self.payload_reads.fetch_add(1, Ordering::Relaxed);
        let value = store
            .db()
            .get_pinned_cf(store.cf(CF_PAYLOADS), keys::point_key(self.id, point))
            .map_err(|e| StorageError::rocks("read payload", e))?;
        match value {
            None => Ok(Payload::default()),
            Some(bytes) => Payload::decode(&bytes).map_err(|e| {
                StorageError::corrupt(format!("payload of point {point}"), e.to_string())
            }),
        }
    }

    /// The payload `point` is indexed with, to unindex it: the point cache's
    /// copy when the point is cached (no read), else RocksDB's. The caller
    /// holds `writer`, so no other write changes it meanwhile; a concurrent
    /// reader can only fill the cache with this same payload.
    fn indexed_payload(&self, store: &Store, point: u32) -> Result<Payload, StorageError> {
        let cached = self
            .point_cache
            .as_ref()
            .and_then(|cache| cache.peek(&(self.id, point)));
        match cached {
            Some(cached) => Ok(cached.payload.clone()),
            None => self.payload_of(store, point),
        }
    }

    /// Inserts or replaces points. Invalid items are refused one by one (their
    /// slot in the answer holds the error); the valid ones are written in one
    /// atomic batch and are durable per the fsync policy when this returns.
    pub(crate) fn upsert(
        &self,
        store: &Store,
        config: &InstanceConfig,
        items: Vec<PointWrite>,
    ) -> Result<(Vec<Result<(), EngineError>>, WriteOutcome), StorageError> {
        check_batch_size(items.len())?;
        let index_config = config.index_config();
        let mut answers = Vec::with_capacity(items.len());
        let mut valid = Vec::with_capacity(items.len());
        // Each vector is prepared once: checked here, inserted in that form.
        let mut prepared = Vec::with_capacity(items.len());
        for item in items {
            let checked = index_config
                .prepare_once(&item.vector)
                .and_then(|vector| item.payload.validate().map(|()| vector));
            match checked {
                Ok(vector) => {
                    answers.push(Ok(()));
                    valid.push(item);
                    prepared.push(vector);
                }
                Err(e) => answers.push(Err(e)),
            }
        }
        if valid.is_empty() {
            return Ok((answers, WriteOutcome::default()));
        }

        struct Planned {
            point: u32,
            old: Option<(u32, Payload)>,
        }
        let mut writer = self.writer.lock();
        if self.dropped.load(Ordering::Acquire) {
            return Err(self.not_found());
        }
        let hot = Arc::clone(&self.segment_set().hot);
        let gate = hot.writer_gate();
        let mut batch = WriteBatch::default();
        let mut planned: Vec<Planned> = Vec::with_capacity(valid.len());
        // Docs written earlier in this same batch: doc → index in `planned`.
        let mut in_batch: HashMap<u64, usize> = HashMap::new();
        for item in &valid {
            let point = writer.next_point;
            writer.next_point = point.checked_add(1).ok_or(EngineError::CapacityExceeded {
                capacity: u32::MAX as usize,
            })?;
            let old = match in_batch.get(&item.doc_id) {
                Some(&earlier) => {
                    let previous = &valid[earlier];
                    Some((planned[earlier].point, previous.payload.clone()))
                }
                None => match self.point_of(store, item.doc_id)? {
                    Some(old) => Some((old, self.indexed_payload(store, old)?)),
                    None => None,
                },
            };
            self.ids().put(store, &mut batch, item.doc_id, point);
            batch.put_cf(
                store.cf(CF_HOT),
                keys::point_key(self.id, point),
                keys::hot_value(item.doc_id, &item.vector),
            );
            if !item.payload.is_empty() {
                batch.put_cf(
                    store.cf(CF_PAYLOADS),
                    keys::point_key(self.id, point),
                    item.payload.encode(),
                );
            }
            if let Some((old_point, _)) = &old {
                batch.delete_cf(store.cf(CF_PAYLOADS), keys::point_key(self.id, *old_point));
                batch.delete_cf(store.cf(CF_HOT), keys::point_key(self.id, *old_point));
            }
            in_batch.insert(item.doc_id, planned.len());
            planned.push(Planned { point, old });
        }
        let ticket = store.write(batch)?;

        let mut outcome = WriteOutcome {
            affected: valid.len(),
            ..WriteOutcome::default()
        };
        {
            let mut points = self.points.write();
            // Raised under the lock too, so that (generation, point state)
            // read together under the read lock always agree.
            self.bump_generation();
            // Read under the lock: the sealer swaps segment sets under it, so
            // a delete here reaches the segment that holds the point now.
            let current = self.segment_set();
            for (item, plan) in valid.iter().zip(&planned) {
                if let Some((old, old_payload)) = &plan.old {
                    points.live.remove(*old);
                    points.payloads.remove(*old, old_payload);
                    current.mark_deleted(*old);
                    self.invalidate_cached(*old);
                    outcome.stale_points.push(*old);
                }
                points.live.insert(plan.point);
                points.payloads.insert(plan.point, &item.payload);
            }
        }
        drop(writer);

        // The graph inserts run outside the namespace lock, concurrently with
        // other writers; the gate keeps the sealer waiting for them.
        for ((item, plan), vector) in valid.iter().zip(&planned).zip(&prepared) {
            hot.insert(plan.point, item.doc_id, vector)?;
            // A later write of the same doc (in this batch or a concurrent
            // one) may already have replaced this point before it was linked.
            if !self.points.read().live.contains(plan.point) {
                hot.delete(plan.point);
            }
        }
        drop(gate);
        if hot.len() >= config.hot_max_points {
            outcome.full_hot = Some(Arc::clone(&hot));
        }
        self.bump_generation();
        store.commit(ticket)?;
        Ok((answers, outcome))
    }

    /// Deletes the given docs; returns how many existed.
    pub(crate) fn delete(
        &self,
        store: &Store,
        doc_ids: &[u64],
    ) -> Result<WriteOutcome, StorageError> {
        check_batch_size(doc_ids.len())?;
        let writer = self.writer.lock();
        if self.dropped.load(Ordering::Acquire) {
            return Err(self.not_found());
        }
        let mut targets = Vec::new();
        for &doc in doc_ids {
            if let Some(point) = self.point_of(store, doc)? {
                if !targets.iter().any(|&(d, _)| d == doc) {
                    targets.push((doc, point));
                }
            }
        }
        let (outcome, ticket) = self.delete_points(store, &targets)?;
        drop(writer);
        // Made durable outside the writer lock, as upserts are: a slow
        // fsync does not stall the namespace's other writers.
        if let Some(ticket) = ticket {
            store.commit(ticket)?;
        }
        Ok(outcome)
    }

    /// Deletes every point whose payload matches `filter`.
    pub(crate) fn delete_by_filter(
        &self,
        store: &Store,
        filter: &Filter,
    ) -> Result<WriteOutcome, StorageError> {
        filter.validate()?;
        let writer = self.writer.lock();
        if self.dropped.load(Ordering::Acquire) {
            return Err(self.not_found());
        }
        let matching = {
            let points = self.points.read();
            points.payloads.evaluate(filter, &points.live)
        };
        let set = self.segment_set();
        let mut targets = Vec::with_capacity(matching.len() as usize);
        for point in &matching {
            let doc = set.doc_of(point).ok_or_else(|| {
                StorageError::corrupt("namespace", format!("point {point} has no doc id"))
            })?;
            targets.push((doc, point));
        }
        let mut outcome = WriteOutcome::default();
        let mut last_ticket = None;
        for chunk in targets.chunks(MAX_BATCH_POINTS) {
            let (part, ticket) = self.delete_points(store, chunk)?;
            outcome.affected += part.affected;
            outcome.stale_points.extend(part.stale_points);
            last_ticket = ticket.or(last_ticket);
        }
        drop(writer);
        // One commit covers every chunk: tickets are ordered.
        if let Some(ticket) = last_ticket {
            store.commit(ticket)?;
        }
        Ok(outcome)
    }

    /// Deletes `(doc, point)` pairs; the caller holds `writer`, and commits
    /// the returned ticket (if any) once it has let go of it.
    fn delete_points(
        &self,
        store: &Store,
        targets: &[(u64, u32)],
    ) -> Result<(WriteOutcome, Option<WriteTicket>), StorageError> {
        if targets.is_empty() {
            return Ok((WriteOutcome::default(), None));
        }
        let mut batch = WriteBatch::default();
        let mut old_payloads = Vec::with_capacity(targets.len());
        for &(doc, point) in targets {
            old_payloads.push(self.indexed_payload(store, point)?);
            self.ids().remove(store, &mut batch, doc);
            batch.delete_cf(store.cf(CF_PAYLOADS), keys::point_key(self.id, point));
            batch.delete_cf(store.cf(CF_HOT), keys::point_key(self.id, point));
        }
        let ticket = store.write(batch)?;
        {
            let mut points = self.points.write();
            // Raised under the lock too, so that (generation, point state)
            // read together under the read lock always agree.
            self.bump_generation();
            let set = self.segment_set();
            for (&(_, point), payload) in targets.iter().zip(&old_payloads) {
                points.live.remove(point);
                points.payloads.remove(point, payload);
                set.mark_deleted(point);
                self.invalidate_cached(point);
            }
        }
        self.bump_generation();
        Ok((
            WriteOutcome {
                stale_points: targets.iter().map(|&(_, p)| p).collect(),
                affected: targets.len(),
                ..WriteOutcome::default()
            },
            Some(ticket),
        ))
    }

    /// Merges into or replaces the payload of `doc_id`.
    pub(crate) fn update_payload(
        &self,
        store: &Store,
        doc_id: u64,
        payload: Payload,
        mode: PayloadUpdate,
    ) -> Result<WriteOutcome, StorageError> {
        payload.validate()?;
        let writer = self.writer.lock();
        if self.dropped.load(Ordering::Acquire) {
            return Err(self.not_found());
        }
        let point = self
            .point_of(store, doc_id)?
            .ok_or_else(|| StorageError::DocNotFound {
                namespace: self.name.clone(),
                doc_id,
            })?;
        let old = self.indexed_payload(store, point)?;
        let new = match mode {
            PayloadUpdate::Replace => payload,
            PayloadUpdate::Merge => {
                let mut merged = old.clone();
                merged.merge(payload);
                merged.validate()?;
                merged
            }
        };
        let mut batch = WriteBatch::default();
        let key = keys::point_key(self.id, point);
        if new.is_empty() {
            batch.delete_cf(store.cf(CF_PAYLOADS), key);
        } else {
            batch.put_cf(store.cf(CF_PAYLOADS), key, new.encode());
        }
        let ticket = store.write(batch)?;
        {
            let mut points = self.points.write();
            // Raised under the lock too, so that (generation, point state)
            // read together under the read lock always agree.
            self.bump_generation();
            points.payloads.remove(point, &old);
            points.payloads.insert(point, &new);
            self.invalidate_cached(point);
        }
        self.bump_generation();
        drop(writer);
        store.commit(ticket)?;
        Ok(WriteOutcome {
            stale_points: vec![point],
            affected: 1,
            ..WriteOutcome::default()
        })
    }

    /// Live points, or those matching `filter`.
    pub(crate) fn count(&self, filter: Option<&Filter>) -> Result<u64, StorageError> {
        let points = self.points.read();
        Ok(match filter {
            None => points.live.len(),
            Some(filter) => {
                filter.validate()?;
                self.matching(&points, filter, &filter.encode()).len()
            }
        })
    }

    /// Live points that no graph search of the segment holding them can
    /// reach (see [`crate::hnsw::HnswIndex::unreachable_ids`]); 0 for sound
    /// graphs. Walks every hot graph; cold segments were walked at open.
    pub(crate) fn unreachable_points(&self) -> u64 {
        let set = self.segment_set();
        let unreachable: Vec<u32> = set
            .segments()
            .flat_map(|segment| segment.unreachable_points())
            .collect();
        let points = self.points.read();
        unreachable
            .into_iter()
            .filter(|&point| points.live.contains(point))
            .count() as u64
    }

    /// Swaps in a fresh hot segment if the current one holds points, moving
    /// it to `sealing`; with `only`, does so only while that segment is still
    /// the writable one (a writer reporting a full segment that another
    /// writer already rotated out leaves the fresh one alone). Returns false
    /// when there was nothing to do.
    pub(crate) fn rotate_hot(
        &self,
        config: &InstanceConfig,
        only: Option<&Arc<HotSegment>>,
    ) -> Result<bool, StorageError> {
        let writer = self.writer.lock();
        let mut segments = self.segments.write();
        if only.is_some_and(|full| !Arc::ptr_eq(full, &segments.hot)) {
            return Ok(false);
        }
        if segments.hot.len() == 0 && segments.hot.first_point() == writer.next_point {
            return Ok(false);
        }
        let fresh = Arc::new(HotSegment::new(config, writer.next_point)?);
        let mut sealing = segments.sealing.clone();
        sealing.push(Arc::clone(&segments.hot));
        *segments = Arc::new(SegmentSet {
            hot: fresh,
            sealing,
            sealed: segments.sealed.clone(),
        });
        drop(segments);
        drop(writer);
        Ok(true)
    }
}

fn check_batch_size(len: usize) -> Result<(), EngineError> {
    if len > MAX_BATCH_POINTS {
        return Err(EngineError::InvalidBatch {
            reason: format!("{len} points in one call; at most {MAX_BATCH_POINTS}"),
        });
    }
    Ok(())
}
