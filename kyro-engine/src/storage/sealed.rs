//! [`SealedSegment`]: a cold segment of a namespace — a [`ColdSegment`]
//! (graph, `f32` and `i8` vectors, ids, deleted bits, all searched from mmap)
//! plus a point table that maps the namespace's point ids to slots and doc ids.
//!
//! The point table (`points.tbl`, [`FileKind::PointTable`]) holds one
//! `[point id, slot, doc id]` row (`u64` each) per point that was live when
//! the segment was written, sorted by point id, so lookups are binary searches
//! over the mmap and nothing is loaded at open.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::error::StorageError;
use super::hot::HotSegment;
use crate::segment::file::{write_file, MappedFile};
use crate::segment::{ColdSegment, FileKind, SegmentError};

/// File name of the point table inside a segment directory.
const POINT_TABLE_FILE: &str = "points.tbl";

/// One row of the point table.
type PointRow = [u64; 3];

/// An immutable segment of a namespace's cold tier.
pub(crate) struct SealedSegment {
    id: u64,
    cold: ColdSegment,
    table: MappedFile,
    rows: usize,
    /// Points of the table deleted since the segment was written (they are
    /// masked by the namespace's live set). Raised under the namespace's
    /// point-state write lock.
    masked: AtomicUsize,
    /// Point ids that no graph search of this segment reaches (see
    /// [`ColdSegment::unreachable_ids`]), found once at open: the segment
    /// never changes. Empty for a sound graph.
    unreachable: Vec<u32>,
}

impl SealedSegment {
    /// Writes `source` as a segment into `dir`, with an `i8` copy when
    /// `quantize`. The caller holds the source's seal gate.
    pub(crate) fn write(
        source: &HotSegment,
        dir: &Path,
        quantize: bool,
    ) -> Result<(), StorageError> {
        ColdSegment::write_with(source.index(), dir, quantize)?;
        let cold = ColdSegment::open(dir)?;
        let mut rows: Vec<PointRow> = Vec::with_capacity(cold.len());
        for slot in 0..cold.slots() as u32 {
            if cold.is_deleted(slot) {
                continue;
            }
            let Some(label) = cold.label(slot) else {
                continue;
            };
            let point = u32::try_from(label).map_err(|_| {
                StorageError::corrupt("hot segment", format!("label {label} is not a point id"))
            })?;
            let doc = source.doc_of(point).ok_or_else(|| {
                StorageError::corrupt("hot segment", format!("point {point} has no doc id"))
            })?;
            rows.push([u64::from(point), u64::from(slot), doc]);
        }
        rows.sort_unstable_by_key(|row| row[0]);
        write_file(
            &dir.join(POINT_TABLE_FILE),
            FileKind::PointTable,
            rows.len() as u64,
            3,
            bytemuck::cast_slice(&rows),
        )?;
        Ok(())
    }

    /// Opens the segment `id` in `dir`, verifying every file.
    pub(crate) fn open(id: u64, dir: &Path) -> Result<Self, StorageError> {
        let cold = ColdSegment::open(dir)?;
        let path = dir.join(POINT_TABLE_FILE);
        let table = MappedFile::open(&path, FileKind::PointTable)?;
        let rows = usize::try_from(table.rows()).unwrap_or(usize::MAX);
        if table.width() != 3 {
            return Err(SegmentError::corrupt(&path, "point table rows must be 3 words").into());
        }
        let unreachable = cold
            .unreachable_ids()
            .into_iter()
            .filter_map(|label| u32::try_from(label).ok())
            .collect();
        let segment = Self {
            id,
            cold,
            table,
            rows,
            masked: AtomicUsize::new(0),
            unreachable,
        };
        let entries = segment.entries();
        if entries.len() != rows {
            return Err(
                SegmentError::corrupt(&path, "point table is shorter than its header").into(),
            );
        }
        let slots = segment.cold.slots() as u64;
        let sorted = entries.windows(2).all(|w| w[0][0] < w[1][0]);
        let in_range = entries
            .iter()
            .all(|row| row[0] <= u64::from(u32::MAX) && row[1] < slots);
        if !sorted || !in_range {
            return Err(
                SegmentError::corrupt(&path, "point table is unsorted or out of range").into(),
            );
        }
        Ok(segment)
    }

    /// The segment's id (its directory name in the manifest).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Every `[point, slot, doc]` row, sorted by point id.
    pub(crate) fn entries(&self) -> &[PointRow] {
        // Checked at open: the table holds `rows` whole rows.
        self.table.section(0, self.rows).unwrap_or_default()
    }

    fn row_of(&self, point: u32) -> Option<&PointRow> {
        let entries = self.entries();
        entries
            .binary_search_by_key(&u64::from(point), |row| row[0])
            .ok()
            .map(|at| &entries[at])
    }

    /// True when the table holds `point` (live at write time).
    pub(crate) fn contains(&self, point: u32) -> bool {
        self.row_of(point).is_some()
    }

    /// The doc id `point` was written for.
    pub(crate) fn doc_of(&self, point: u32) -> Option<u64> {
        self.row_of(point).map(|row| row[2])
    }

    /// The stored vector of `point`.
    pub(crate) fn vector_of(&self, point: u32) -> Option<&[f32]> {
        let slot = u32::try_from(self.row_of(point)?[1]).ok()?;
        self.cold.vector(slot)
    }

    /// Points of the table deleted since.
    pub(crate) fn masked(&self) -> usize {
        self.masked.load(Ordering::Relaxed)
    }

    /// Sets the masked count (computed when the segment is published).
    pub(crate) fn set_masked(&self, masked: usize) {
        self.masked.store(masked, Ordering::Relaxed);
    }

    /// Counts one more masked point.
    pub(crate) fn add_masked(&self) {
        self.masked.fetch_add(1, Ordering::Relaxed);
    }

    /// Points still live.
    pub(crate) fn live(&self) -> usize {
        self.rows.saturating_sub(self.masked())
    }

    /// Point ids of this segment that its graph search cannot reach (found
    /// at open; deleted ones included until the segment is rewritten).
    pub(crate) fn unreachable_points(&self) -> &[u32] {
        &self.unreachable
    }

    /// Bytes of the segment's files.
    pub(crate) fn file_bytes(&self) -> u64 {
        self.cold.file_bytes() + self.table.payload().len() as u64
    }

    /// The segment's graph and vectors.
    pub(crate) fn cold(&self) -> &ColdSegment {
        &self.cold
    }

    /// The slots of `points` (those not here are skipped). Points in
    /// ascending order (a bitmap's) are looked up by galloping forward
    /// through the sorted point table instead of a binary search each.
    pub(crate) fn slots_of<'a>(
        &'a self,
        points: &'a mut dyn Iterator<Item = u32>,
    ) -> impl Iterator<Item = u32> + 'a {
        let mut lookup = AscendingLookup::new(self.entries());
        points.filter_map(move |point| u32::try_from(lookup.find(point)?[1]).ok())
    }
}

/// Finds rows of a point table (sorted by point) for points asked in mostly
/// ascending order: each search starts where the previous one ended and
/// widens its window exponentially, so a run of `m` points over `n` rows
/// costs O(m log(n / m)) rather than O(m log n) with cache misses. A point
/// below the previous one starts again from the first row.
struct AscendingLookup<'a> {
    rows: &'a [PointRow],
    from: usize,
}

impl<'a> AscendingLookup<'a> {
    fn new(rows: &'a [PointRow]) -> Self {
        Self { rows, from: 0 }
    }

    fn find(&mut self, point: u32) -> Option<&'a PointRow> {
        let key = u64::from(point);
        // `from` is the first row not below the previous point (at most
        // `rows.len()`), so every row before it is below that point.
        if self.from > 0 && self.rows[self.from - 1][0] >= key {
            self.from = 0;
        }
        let rest = &self.rows[self.from..];
        let mut window = 1;
        while window < rest.len() && rest[window][0] < key {
            window *= 2;
        }
        let window = &rest[..(window + 1).min(rest.len())];
        self.from += window.partition_point(|row| row[0] < key);
        self.rows.get(self.from).filter(|row| row[0] == key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascending_lookup_finds_what_a_binary_search_finds_in_any_order() {
        // Points 0, 3, 6, ... with slot and doc derived from them.
        let rows: Vec<PointRow> = (0..500u64).map(|i| [i * 3, i, i + 1_000]).collect();
        let binary = |point: u32| {
            rows.binary_search_by_key(&u64::from(point), |row| row[0])
                .ok()
                .map(|at| rows[at])
        };
        let ascending: Vec<u32> = (0..1_600).collect();
        let descending: Vec<u32> = ascending.iter().rev().copied().collect();
        let jumping: Vec<u32> = (0..1_600).map(|i| (i * 7919) % 1_600).collect();
        for order in [ascending, descending, jumping] {
            let mut lookup = AscendingLookup::new(&rows);
            for &point in &order {
                assert_eq!(lookup.find(point).copied(), binary(point), "point {point}");
            }
        }
        assert_eq!(AscendingLookup::new(&[]).find(4), None);
    }
}
