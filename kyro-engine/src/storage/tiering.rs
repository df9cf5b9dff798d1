//! Moving data between tiers: sealing full hot segments into cold segments,
//! and the optimizer's merges of small cold segments and rewrites of mostly
//! deleted ones. Searches and writes go on meanwhile: new segments are
//! written to a temporary directory, fsynced, renamed into place, published in
//! the manifest by a durable batch, and only then swapped into the
//! namespace's segment set (one pointer swap); replaced segments are removed
//! afterwards (searches still holding them keep their mappings).

use std::fs;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use rocksdb::WriteBatch;

use super::core::InstanceCore;
use super::error::StorageError;
use super::fs::{remove_dir, sync_dir};
use super::hot::HotSegment;
use super::keys::{self, CF_HOT};
use super::manifest::segment_dir;
use super::namespace::{Namespace, SegmentSet};
use super::sealed::SealedSegment;
use super::segment::Segment;
use crate::index::Quantization;

/// What one optimizer pass did to a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OptimizeReport {
    /// Cold segments replaced.
    pub segments_in: usize,
    /// Cold segments written in their place (0 when nothing was live).
    pub segments_out: usize,
    /// Live points rewritten.
    pub points: usize,
}

/// Writes every segment waiting in `sealing` out as a cold segment and
/// publishes it; returns how many were sealed.
pub(crate) fn seal_pending(
    core: &InstanceCore,
    namespace: &Namespace,
) -> Result<usize, StorageError> {
    let _sealer = namespace.seal_lock.lock();
    let mut sealed = 0;
    loop {
        let set = namespace.segment_set();
        let Some(target) = set.sealing.first().cloned() else {
            return Ok(sealed);
        };
        let end = set.sealing.get(1).unwrap_or(&set.hot).first_point();
        let started = Instant::now();
        let gate = target.seal_gate();
        // No insert runs now: whatever the graph cannot reach, or a search
        // with a point's own vector does not find, is linked in before the
        // graph is written out for good.
        target.index().reconnect_unreachable();
        // (A shutdown cuts that pass short: the graph stays sound.)
        target
            .index()
            .link_hard_to_find(core.config.optimizer.build_threads, &|| {
                core.stopping.load(Ordering::Acquire)
            });
        let segment = if target.len() > 0 {
            Some(write_segment(core, &target)?)
        } else {
            None
        };
        drop(gate);

        let (start_key, end_key) = (
            keys::point_key(namespace.id, target.first_point()),
            keys::point_key(namespace.id, end),
        );
        publish(
            core,
            namespace,
            segment.clone(),
            &[],
            |batch| {
                batch.delete_range_cf(core.store.cf(CF_HOT), start_key, end_key);
            },
            |set| SegmentSet {
                hot: Arc::clone(&set.hot),
                sealing: set
                    .sealing
                    .iter()
                    .filter(|s| !Arc::ptr_eq(s, &target))
                    .cloned()
                    .collect(),
                sealed: set.sealed.iter().cloned().chain(segment.clone()).collect(),
            },
        )?;
        tracing::info!(
            tenant = %namespace.tenant,
            namespace = %namespace.name,
            points = target.len(),
            seconds = started.elapsed().as_secs_f64(),
            "sealed hot segment"
        );
        sealed += 1;
    }
}

/// One optimizer pass over `namespace`: rewrites segments whose deleted
/// fraction passed the threshold and merges small segments of similar size
/// once there are enough of them (see [`merge_tier`]). With `force`, every
/// segment with a deleted point or more than one segment at all is
/// rewritten into one.
///
/// Sealing goes on meanwhile. The merge gives up with
/// [`EngineError::Cancelled`] when the instance closes or the namespace is
/// dropped: nothing is published, the input segments stay as they were.
pub(crate) fn optimize(
    core: &InstanceCore,
    namespace: &Namespace,
    force: bool,
) -> Result<OptimizeReport, StorageError> {
    let _optimizer = namespace.optimize_lock.lock();
    let set = namespace.segment_set();
    let config = &core.config.optimizer;
    let group: Vec<Arc<SealedSegment>> = if force {
        let worth = set.sealed.len() > 1 || set.sealed.iter().any(|s| s.stats().deleted > 0);
        if worth {
            set.sealed.clone()
        } else {
            Vec::new()
        }
    } else {
        let mostly_deleted = |s: &SealedSegment| {
            let stats = s.stats();
            stats.live + stats.deleted > 0
                && stats.deleted_fraction() >= config.rewrite_deleted_fraction
        };
        let mut group: Vec<_> = set
            .sealed
            .iter()
            .filter(|s| mostly_deleted(s))
            .cloned()
            .collect();
        let small: Vec<_> = set
            .sealed
            .iter()
            .filter(|s| !mostly_deleted(s) && s.stats().live < config.small_segment_points)
            .cloned()
            .collect();
        group.extend(merge_tier(small, config.merge_min_segments));
        group
    };
    if group.is_empty() {
        return Ok(OptimizeReport::default());
    }
    let started = Instant::now();

    // Gather the group's live points; deletes that land after this copy are
    // masked by the live set when the result is published.
    let live = namespace.points.read().live.clone();
    let mut rows = Vec::new();
    let mut vectors = Vec::new();
    for segment in &group {
        segment.for_each_point(&mut |point, doc| {
            if !live.contains(point) {
                return;
            }
            if let Some(vector) = segment.vector_of(point) {
                rows.push((point, doc));
                vectors.extend_from_slice(vector);
            }
        });
    }
    let points = rows.len();
    tracing::info!(
        tenant = %namespace.tenant,
        namespace = %namespace.name,
        segments_in = group.len(),
        points,
        "merging cold segments"
    );
    let merged = if rows.is_empty() {
        None
    } else {
        let stop =
            || core.stopping.load(Ordering::Acquire) || namespace.dropping.load(Ordering::Acquire);
        let build = HotSegment::build(
            core.config.cold_index_config(),
            0,
            &rows,
            &vectors,
            config.build_threads,
            &stop,
        )?;
        drop(vectors);
        Some(write_segment(core, &build)?)
    };
    let segments_out = usize::from(merged.is_some());
    let replaced: Vec<u64> = group.iter().map(|s| s.id()).collect();
    publish(
        core,
        namespace,
        merged.clone(),
        &replaced,
        |_| {},
        |set| SegmentSet {
            hot: Arc::clone(&set.hot),
            sealing: set.sealing.clone(),
            sealed: set
                .sealed
                .iter()
                .filter(|s| !replaced.contains(&s.id()))
                .cloned()
                .chain(merged.clone())
                .collect(),
        },
    )?;
    for id in &replaced {
        remove_dir(&segment_dir(&core.segments_dir, *id));
    }
    tracing::info!(
        tenant = %namespace.tenant,
        namespace = %namespace.name,
        segments_in = group.len(),
        points,
        seconds = started.elapsed().as_secs_f64(),
        "optimized cold segments"
    );
    Ok(OptimizeReport {
        segments_in: group.len(),
        segments_out,
        points,
    })
}

/// Small segments to merge: the `min_segments` (at least two) smallest of
/// the lowest size tier holding that many, or none. A segment's tier is the
/// integer part of log base `min_segments` of its live points, so a merge
/// joins segments of similar size and its result lands about one tier up:
/// each point is rewritten about once per tier (log-structured merging),
/// instead of once per merge as when every small segment joins each merge.
///
/// A merge takes no more than `min_segments` at once, however many wait:
/// a backlog (seals that outran a busy optimizer, or merges lost to
/// crashes) is worked off in merges of bounded size, each published on its
/// own. Taking the whole tier instead made the merge grow with the backlog
/// until, under repeated kills, none finished before the next one and the
/// namespace's segment count (and every search's cost) kept growing.
fn merge_tier(small: Vec<Arc<SealedSegment>>, min_segments: usize) -> Vec<Arc<SealedSegment>> {
    let count = min_segments.max(2);
    let base = count as f64;
    let tier = |s: &SealedSegment| ((s.live().max(1) as f64).ln() / base.ln()).floor() as u32;
    let mut tiers: std::collections::BTreeMap<u32, Vec<Arc<SealedSegment>>> = Default::default();
    for segment in small {
        tiers.entry(tier(&segment)).or_default().push(segment);
    }
    let Some(mut segments) = tiers.into_values().find(|segments| segments.len() >= count) else {
        return Vec::new();
    };
    // One reading of each segment's live count: deletes change it
    // meanwhile, and a sort whose keys move under it may panic.
    segments.sort_by_cached_key(|s| s.live());
    segments.truncate(count);
    segments
}

/// Writes `source` as a new cold segment: temporary directory, files
/// fsynced, renamed into place, parent fsynced. Returns it opened.
fn write_segment(
    core: &InstanceCore,
    source: &HotSegment,
) -> Result<Arc<SealedSegment>, StorageError> {
    let id = core.allocate_segment_id();
    let dir = segment_dir(&core.segments_dir, id);
    let tmp = dir.with_extension("tmp");
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| StorageError::io(&tmp, e))?;
    }
    let quantize = core.config.cold_quantization == Quantization::I8;
    SealedSegment::write(source, &tmp, quantize)?;
    fs::rename(&tmp, &dir).map_err(|e| StorageError::io(&dir, e))?;
    sync_dir(&core.segments_dir)?;
    Ok(Arc::new(SealedSegment::open(id, &dir)?))
}

/// Publishes a change of `namespace`'s cold segments: a durable manifest batch
/// (plus `extra` operations), then the in-memory swap made by `next`.
fn publish(
    core: &InstanceCore,
    namespace: &Namespace,
    added: Option<Arc<SealedSegment>>,
    removed: &[u64],
    extra: impl FnOnce(&mut WriteBatch),
    next: impl FnOnce(&SegmentSet) -> SegmentSet,
) -> Result<(), StorageError> {
    let manifest = core.manifest.lock();
    let current = namespace.segment_set();
    let ids: Vec<u64> = current
        .sealed
        .iter()
        .map(|s| s.id())
        .filter(|id| !removed.contains(id))
        .chain(added.as_ref().map(|s| s.id()))
        .collect();
    let mut batch = WriteBatch::default();
    core.put_namespace_record(&mut batch, namespace, ids)?;
    core.put_instance_record(&mut batch, &manifest)?;
    extra(&mut batch);
    core.store.write_durable(batch)?;

    let points = namespace.points.write();
    if let Some(segment) = &added {
        // Deletes that landed while it was written are masked.
        segment.sync_deletes(&points.live);
    }
    let mut segments = namespace.segments.write();
    *segments = Arc::new(next(&segments));
    drop(segments);
    drop(points);
    drop(manifest);
    Ok(())
}
