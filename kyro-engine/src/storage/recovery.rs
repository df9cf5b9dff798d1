//! Recovery at open: the manifest's namespace records, each namespace rebuilt
//! from its cold segments (mapped, verified, never rebuilt) and RocksDB (live
//! set, payload indexes, hot segment from the write log), and removal of
//! segment directories a crash left unpublished.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use roaring::RoaringBitmap;
use rocksdb::{Direction, IteratorMode};

use super::caches::PointCache;
use super::config::InstanceConfig;
use super::error::StorageError;
use super::fs::remove_dir;
use super::hot::HotSegment;
use super::id_map::IdMap;
use super::keys::{self, CF_HOT, CF_META, CF_PAYLOADS};
use super::manifest::{self, parse_segment_dir, segment_dir, NamespaceRecord};
use super::namespace::{Namespace, PointState, SegmentSet};
use super::sealed::SealedSegment;
use super::segment::Segment;
use super::store::Store;
use crate::error::EngineError;
use crate::payload::{Payload, PayloadIndex};

/// Every namespace record of the manifest, by id.
pub(crate) fn read_namespace_records(
    store: &Store,
) -> Result<Vec<(u32, NamespaceRecord)>, StorageError> {
    let prefix = keys::namespace_prefix();
    let mut records = Vec::new();
    let iter = store.db().iterator_cf(
        store.cf(CF_META),
        IteratorMode::From(prefix, Direction::Forward),
    );
    for entry in iter {
        let (key, value) = entry.map_err(|e| StorageError::rocks("read manifest", e))?;
        let Some(id_bytes) = key.strip_prefix(prefix) else {
            break;
        };
        let id = <[u8; 4]>::try_from(id_bytes)
            .map(u32::from_be_bytes)
            .map_err(|_| StorageError::corrupt("manifest", "bad namespace key"))?;
        let record: NamespaceRecord = manifest::decode("namespace record", &value)?;
        records.push((id, record));
    }
    Ok(records)
}

/// Rebuilds a namespace from the manifest and RocksDB.
pub(crate) fn recover_namespace(
    store: &Store,
    config: &InstanceConfig,
    segments_dir: &Path,
    id: u32,
    record: NamespaceRecord,
    point_cache: Option<Arc<PointCache>>,
) -> Result<Namespace, StorageError> {
    let sealed: Vec<Arc<SealedSegment>> = record
        .segments
        .iter()
        .map(|&segment| {
            SealedSegment::open(segment, &segment_dir(segments_dir, segment)).map(Arc::new)
        })
        .collect::<Result<_, _>>()?;
    let prefix = keys::namespace_range(id).0;
    let mut max_point: Option<u32> = None;
    let mut note = |point: u32| max_point = Some(max_point.map_or(point, |m| m.max(point)));

    let mut live = RoaringBitmap::new();
    for entry in IdMap::new(id).scan_from(store, 0) {
        let (_, point) = entry?;
        live.insert(point);
        note(point);
    }

    let mut payloads = PayloadIndex::default();
    for entry in store.db().iterator_cf(
        store.cf(CF_PAYLOADS),
        IteratorMode::From(&prefix, Direction::Forward),
    ) {
        let (key, value) = entry.map_err(|e| StorageError::rocks("read payloads", e))?;
        let point = match keys::parse_point_key(&key) {
            Some((ns, point)) if ns == id => point,
            _ => break,
        };
        if live.contains(point) {
            let payload = Payload::decode(&value).map_err(|e| {
                StorageError::corrupt(format!("payload of point {point}"), e.to_string())
            })?;
            payloads.insert(point, &payload);
        }
    }

    let mut rows = Vec::new();
    let mut vectors = Vec::new();
    for entry in store.db().iterator_cf(
        store.cf(CF_HOT),
        IteratorMode::From(&prefix, Direction::Forward),
    ) {
        let (key, value) = entry.map_err(|e| StorageError::rocks("read write log", e))?;
        let point = match keys::parse_point_key(&key) {
            Some((ns, point)) if ns == id => point,
            _ => break,
        };
        note(point);
        let (doc, vector) = keys::parse_hot_value(&value, config.dim).ok_or_else(|| {
            StorageError::corrupt("write log record", format!("namespace {id} point {point}"))
        })?;
        if live.contains(point) {
            rows.push((point, doc));
            vectors.extend_from_slice(&vector);
        }
    }
    for segment in &sealed {
        // Points deleted after the segment was written are masked by the
        // live set; the segment learns how many.
        segment.sync_deletes(&live);
        segment.for_each_point(&mut |point, _| note(point));
    }
    let next_point = max_point.map_or(Ok(0), |m| {
        m.checked_add(1).ok_or(EngineError::CapacityExceeded {
            capacity: u32::MAX as usize,
        })
    })?;
    let (hot, sealing) = rebuild_hot_tier(config, &rows, &vectors, next_point)?;
    tracing::info!(
        tenant = %record.tenant,
        namespace = %record.name,
        live = live.len(),
        hot = rows.len(),
        to_seal = sealing.len(),
        cold_segments = sealed.len(),
        "recovered namespace"
    );
    Ok(Namespace::new(
        id,
        record.tenant,
        record.name,
        SegmentSet {
            hot,
            sealing,
            sealed,
        },
        PointState { live, payloads },
        next_point,
        point_cache,
    ))
}

/// Rebuilds the hot tier from the write log's live `rows` (ascending point
/// ids, `vectors` row-major): full segments of `hot_max_points` each, queued
/// for the sealer, and the rest as the writable segment. A crash that came
/// before due seals were done thus leaves them due, instead of one hot
/// segment that grows with every crash; the writable one starts full-sized
/// at most. Returns (writable, to seal).
fn rebuild_hot_tier(
    config: &InstanceConfig,
    rows: &[(u32, u64)],
    vectors: &[f32],
    next_point: u32,
) -> Result<(Arc<HotSegment>, Vec<Arc<HotSegment>>), StorageError> {
    let never = || false;
    let per_segment = config.hot_max_points.max(1);
    let mut segments = Vec::with_capacity(rows.len() / per_segment + 1);
    for (chunk, chunk_vectors) in rows
        .chunks(per_segment)
        .zip(vectors.chunks(per_segment * config.dim))
    {
        let first_point = chunk[0].0;
        segments.push(Arc::new(HotSegment::build(
            config.index_config(),
            first_point,
            chunk,
            chunk_vectors,
            0,
            &never,
        )?));
    }
    // The writable segment: the last chunk while it has room, else a fresh
    // one starting at the next point id (the write-log range of a segment
    // ends where the next one starts).
    let writable = match segments.last() {
        Some(last) if last.len() < per_segment => segments.pop(),
        _ => None,
    };
    let writable = match writable {
        Some(segment) => segment,
        None => Arc::new(HotSegment::new(config, next_point)?),
    };
    Ok((writable, segments))
}

/// Removes segment directories no namespace references (left by a crash
/// between writing a segment and publishing it) and temporary ones.
pub(crate) fn remove_orphan_segments(
    segments_dir: &Path,
    referenced: &[u64],
) -> Result<(), StorageError> {
    for entry in fs::read_dir(segments_dir).map_err(|e| StorageError::io(segments_dir, e))? {
        let entry = entry.map_err(|e| StorageError::io(segments_dir, e))?;
        let name = entry.file_name();
        let keep = name
            .to_str()
            .and_then(parse_segment_dir)
            .is_some_and(|id| referenced.contains(&id));
        if !keep {
            tracing::warn!(dir = %entry.path().display(), "removing unreferenced segment directory");
            remove_dir(&entry.path());
        }
    }
    Ok(())
}
