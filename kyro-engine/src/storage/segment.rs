//! [`Segment`]: what a namespace asks of one of its segments, whichever
//! tier it is in. The hot segment ([`HotSegment`], in memory, taking writes)
//! and the sealed one ([`SealedSegment`], mmap'd, immutable) implement it, so
//! that the read path, deletes, point lookups and the health checks fan out
//! over a namespace's segments once (`SegmentSet::segments`), and so do
//! recovery, publishing, the optimizer's choice and gathering of points, and
//! the stats. Only the tier transitions name the concrete types: a seal turns
//! a hot segment's graph into files, a merge writes sealed segments anew.

use roaring::RoaringBitmap;

use super::hot::HotSegment;
use super::sealed::SealedSegment;
use crate::index::{LabelFilter, Neighbor, PreparedVector};

/// Where a segment lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tier {
    /// In memory; deletes are tombstones inside its graph.
    Hot,
    /// Memory-mapped files; deletes are masked by the namespace's live set.
    Cold,
}

/// A segment's size, as the stats and the optimizer see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentStats {
    pub(crate) tier: Tier,
    /// Points a search can return.
    pub(crate) live: usize,
    /// Points it still holds that were deleted since it was made (0 for a
    /// hot segment, whose graph drops them from its count).
    pub(crate) deleted: usize,
    /// Bytes held in memory (graph, vectors, maps); 0 for mmap'd files.
    pub(crate) memory_bytes: u64,
    /// Bytes of its files on disk; 0 in memory.
    pub(crate) file_bytes: u64,
}

impl SegmentStats {
    /// The fraction of its points deleted since it was made.
    pub(crate) fn deleted_fraction(&self) -> f64 {
        let held = self.live + self.deleted;
        if held == 0 {
            0.0
        } else {
            self.deleted as f64 / held as f64
        }
    }
}

/// One segment of a namespace. Neighbour ids are the namespace's point ids;
/// queries are prepared once per request for the instance's shape, and `k`
/// and `ef` are validated before they get here.
pub(crate) trait Segment: Send + Sync {
    fn tier(&self) -> Tier;

    /// The `k` nearest points by graph traversal, limited to `allow` when
    /// given.
    fn search(
        &self,
        query: &PreparedVector,
        k: usize,
        ef: usize,
        allow: Option<LabelFilter<'_>>,
    ) -> Vec<Neighbor>;

    /// The `k` nearest of `points` by exact distance (points not here are
    /// skipped).
    fn score(
        &self,
        query: &PreparedVector,
        k: usize,
        points: &mut dyn Iterator<Item = u32>,
    ) -> Vec<Neighbor>;

    /// The `k` nearest of its points in `live` (the namespace's live set:
    /// an exact search without a filter) by exact distance.
    fn score_live(&self, query: &PreparedVector, k: usize, live: &RoaringBitmap) -> Vec<Neighbor>;

    /// Whether a graph search must be given the live set even without a
    /// filter: the segment holds points deleted since it was made that its
    /// graph does not know about.
    fn needs_live_filter(&self) -> bool;

    /// The doc id `point` was written for (deleted points included while
    /// the segment still holds them).
    fn doc_of(&self, point: u32) -> Option<u64>;

    /// The stored (prepared) vector of `point`.
    fn vector_of(&self, point: u32) -> Option<Vec<f32>>;

    /// Records the delete of `point`; false when the point is not here.
    fn mark_deleted(&self, point: u32) -> bool;

    /// Point ids of this segment that its graph search cannot reach
    /// (deleted ones may be included; the caller masks them).
    fn unreachable_points(&self) -> Vec<u32>;

    /// Calls `visit(point, doc)` for every point it holds and has not seen
    /// deleted (a cold segment's deletes since it was made are included:
    /// the caller masks them with the live set).
    fn for_each_point(&self, visit: &mut dyn FnMut(u32, u64));

    /// Brings its deletes in line with the namespace's `live` set, after
    /// the set changed without it (at recovery, and when a new segment is
    /// published while writes go on).
    fn sync_deletes(&self, live: &RoaringBitmap);

    fn stats(&self) -> SegmentStats;
}

impl Segment for HotSegment {
    fn tier(&self) -> Tier {
        Tier::Hot
    }

    fn search(
        &self,
        query: &PreparedVector,
        k: usize,
        ef: usize,
        allow: Option<LabelFilter<'_>>,
    ) -> Vec<Neighbor> {
        self.index().search_prepared_by_label(query, k, ef, allow)
    }

    fn score(
        &self,
        query: &PreparedVector,
        k: usize,
        points: &mut dyn Iterator<Item = u32>,
    ) -> Vec<Neighbor> {
        self.index()
            .score_prepared_labels(query, k, &mut points.map(u64::from))
    }

    fn score_live(&self, query: &PreparedVector, k: usize, live: &RoaringBitmap) -> Vec<Neighbor> {
        // Its own points, rather than a lookup of each of the namespace's
        // live points (most of which are in this segment, or all when the
        // namespace is small). A point it holds that is not live (a write
        // replaced it and the graph is yet to hear) is dropped at the end.
        let keep = |label: u64| u32::try_from(label).is_ok_and(|point| live.contains(point));
        self.index().score_prepared_all(query, k, &keep)
    }

    fn needs_live_filter(&self) -> bool {
        // The graph tombstones its own deletes.
        false
    }

    fn doc_of(&self, point: u32) -> Option<u64> {
        HotSegment::doc_of(self, point)
    }

    fn vector_of(&self, point: u32) -> Option<Vec<f32>> {
        HotSegment::vector_of(self, point)
    }

    fn mark_deleted(&self, point: u32) -> bool {
        self.delete(point)
    }

    fn unreachable_points(&self) -> Vec<u32> {
        HotSegment::unreachable_points(self)
    }

    fn for_each_point(&self, visit: &mut dyn FnMut(u32, u64)) {
        for (point, doc) in self.live_points() {
            visit(point, doc);
        }
    }

    fn sync_deletes(&self, live: &RoaringBitmap) {
        for (point, _) in self.live_points() {
            if !live.contains(point) {
                self.delete(point);
            }
        }
    }

    fn stats(&self) -> SegmentStats {
        SegmentStats {
            tier: Tier::Hot,
            live: self.len(),
            deleted: 0,
            memory_bytes: self.memory_bytes() as u64,
            file_bytes: 0,
        }
    }
}

impl Segment for SealedSegment {
    fn tier(&self) -> Tier {
        Tier::Cold
    }

    fn search(
        &self,
        query: &PreparedVector,
        k: usize,
        ef: usize,
        allow: Option<LabelFilter<'_>>,
    ) -> Vec<Neighbor> {
        self.cold().search_prepared_by_label(query, k, ef, allow)
    }

    fn score(
        &self,
        query: &PreparedVector,
        k: usize,
        points: &mut dyn Iterator<Item = u32>,
    ) -> Vec<Neighbor> {
        let mut slots = self.slots_of(points);
        self.cold().score_prepared_slots(query, k, &mut slots)
    }

    fn score_live(&self, query: &PreparedVector, k: usize, live: &RoaringBitmap) -> Vec<Neighbor> {
        self.score(query, k, &mut live.iter())
    }

    fn needs_live_filter(&self) -> bool {
        self.masked() > 0
    }

    fn doc_of(&self, point: u32) -> Option<u64> {
        SealedSegment::doc_of(self, point)
    }

    fn vector_of(&self, point: u32) -> Option<Vec<f32>> {
        SealedSegment::vector_of(self, point).map(<[f32]>::to_vec)
    }

    fn mark_deleted(&self, point: u32) -> bool {
        if self.contains(point) {
            self.add_masked();
            true
        } else {
            false
        }
    }

    fn unreachable_points(&self) -> Vec<u32> {
        SealedSegment::unreachable_points(self).to_vec()
    }

    fn for_each_point(&self, visit: &mut dyn FnMut(u32, u64)) {
        for &[point, _, doc] in self.entries() {
            // Checked at open: every point id fits.
            if let Ok(point) = u32::try_from(point) {
                visit(point, doc);
            }
        }
    }

    fn sync_deletes(&self, live: &RoaringBitmap) {
        let mut masked = 0;
        self.for_each_point(&mut |point, _| masked += usize::from(!live.contains(point)));
        self.set_masked(masked);
    }

    fn stats(&self) -> SegmentStats {
        SegmentStats {
            tier: Tier::Cold,
            live: self.live(),
            deleted: self.masked(),
            memory_bytes: 0,
            file_bytes: self.file_bytes(),
        }
    }
}
