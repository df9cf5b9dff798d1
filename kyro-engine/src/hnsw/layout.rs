//! The index's in-memory layout: plain arrays of fixed-size records.
//!
//! Nothing here is a pointer structure, so each array can be written to a file
//! as it is and searched later straight from an mmap:
//!
//! | array | record | per point |
//! | --- | --- | --- |
//! | `vectors` | `dim × f32`, prepared (unit length for cosine) | `4·dim` bytes |
//! | `quantized` (optional) | `dim × i8` | `dim` bytes |
//! | `labels` | `u64` external id | 8 bytes |
//! | `deleted` | one bit | 1/8 byte |
//! | `levels` | `u8` top layer of the node | 1 byte |
//! | `links0` | `[count: u32, ids: u32 × M0]` layer-0 neighbours | `4·(1+M0)` bytes |
//! | `upper_start` | `u32` index of the node's first upper record | 4 bytes |
//! | `upper` | `[count: u32, ids: u32 × M]` per layer ≥ 1 | `4·(1+M)` per upper layer |
//! | `node_locks` | one byte mutex | 1 byte |
//!
//! A node at level `L > 0` owns `L` consecutive records of `upper`, starting at
//! `upper_start[node]`: record `j` holds its neighbours on layer `j + 1`.
//!
//! Links are atomics so that searches can read them without locks while
//! inserts rewrite them: a reader may see a neighbour list half old, half new,
//! which only changes which (valid) nodes a search visits. Every id stored in a
//! list belongs to a node whose vector was written before the id was stored
//! (release store, acquire load), so a reader never sees an unwritten vector.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use parking_lot::Mutex;

use super::search::{prefetch_row, NeighborLists, PointRows};
use crate::distance::{prepared_distance, Metric};

/// Value of `upper_start` for a node with no upper layers.
const NO_UPPER: u32 = u32::MAX;

/// A fixed-capacity array of rows, each written once and then read by any
/// number of threads.
///
/// The contract that makes the shared reads sound: a row is written only by
/// the thread that reserved its slot, before the slot's id is published
/// anywhere another thread can read it (a neighbour list, the label map), or
/// while the owner holds exclusive access to the whole index.
pub(crate) struct RowSlab<T> {
    cells: Box<[UnsafeCell<T>]>,
    width: usize,
}

// SAFETY: access to a row's cells follows the write-once-before-publication
// contract above, so no row is written while another thread reads it.
unsafe impl<T: Send + Sync> Sync for RowSlab<T> {}

impl<T: Copy + Default> RowSlab<T> {
    pub(crate) fn new(rows: usize, width: usize) -> Self {
        let cells = (0..rows * width)
            .map(|_| UnsafeCell::new(T::default()))
            .collect();
        Self { cells, width }
    }

    /// A copy with room for `rows` rows, the first rows copied over.
    pub(crate) fn grown(&self, rows: usize) -> Self {
        let grown = Self::new(rows, self.width);
        let used = self.cells.len().min(grown.cells.len());
        // SAFETY: `grown` is new and private to this call; `self` is only read.
        // Called under the index's exclusive lock, so no row is being written.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.cells.as_ptr() as *const T,
                grown.cells.as_ptr() as *mut T,
                used,
            );
        }
        grown
    }

    /// Writes row `row`.
    ///
    /// # Safety
    /// The caller owns the row's slot: no other thread reads or writes this row
    /// until its id is published after this call returns.
    pub(crate) unsafe fn write(&self, row: usize, values: &[T]) {
        debug_assert_eq!(values.len(), self.width);
        let start = row * self.width;
        let dst = &self.cells[start..start + self.width];
        // SAFETY: `dst` is in bounds (indexed above) and, by the caller's
        // contract, not aliased by any reader while it is written.
        unsafe {
            std::ptr::copy_nonoverlapping(values.as_ptr(), dst.as_ptr() as *mut T, self.width);
        }
    }

    /// Row `row`. Callers only ask for rows whose ids they read from a
    /// published place, so the row is fully written.
    #[inline]
    pub(crate) fn row(&self, row: usize) -> &[T] {
        let start = row * self.width;
        let cells = &self.cells[start..start + self.width];
        // SAFETY: `UnsafeCell<T>` has the layout of `T`; the row is in bounds
        // and, by the write-once contract, not being written.
        unsafe { std::slice::from_raw_parts(cells.as_ptr() as *const T, self.width) }
    }

    /// The first `rows` rows as one slice. The caller holds the index's
    /// exclusive storage lock, so no row is being written.
    pub(crate) fn rows(&self, rows: usize) -> &[T] {
        let cells = &self.cells[..(rows * self.width).min(self.cells.len())];
        // SAFETY: `UnsafeCell<T>` has the layout of `T`; the range is in
        // bounds and, under the exclusive lock, not being written.
        unsafe { std::slice::from_raw_parts(cells.as_ptr() as *const T, cells.len()) }
    }

    /// Address of row `row`, for prefetching.
    #[inline]
    pub(crate) fn row_ptr(&self, row: usize) -> *const T {
        self.cells
            .get(row * self.width)
            .map_or(std::ptr::null(), |c| c.get() as *const T)
    }

    pub(crate) fn bytes(&self) -> usize {
        self.cells.len() * std::mem::size_of::<T>()
    }
}

/// The vectors and per-point attributes of every slot.
pub(crate) struct PointTable {
    pub(crate) vectors: RowSlab<f32>,
    pub(crate) quantized: Option<RowSlab<i8>>,
    labels: Box<[AtomicU64]>,
    deleted: Box<[AtomicU64]>,
}

impl PointTable {
    pub(crate) fn new(capacity: usize, dim: usize, quantized: bool) -> Self {
        Self {
            vectors: RowSlab::new(capacity, dim),
            quantized: quantized.then(|| RowSlab::new(capacity, dim)),
            labels: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
            deleted: (0..capacity.div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    /// The distance between the stored vectors of slots `a` and `b` (what
    /// the neighbour heuristic compares).
    pub(crate) fn distance_between(&self, metric: Metric, a: u32, b: u32) -> f32 {
        prepared_distance(
            metric,
            self.vectors.row(a as usize),
            self.vectors.row(b as usize),
        )
    }

    fn grown(&self, capacity: usize) -> Self {
        Self {
            vectors: self.vectors.grown(capacity),
            quantized: self.quantized.as_ref().map(|q| q.grown(capacity)),
            labels: grow_atomics(&self.labels, capacity, |a| {
                AtomicU64::new(a.load(Ordering::Relaxed))
            }),
            deleted: grow_atomics(&self.deleted, capacity.div_ceil(64), |a| {
                AtomicU64::new(a.load(Ordering::Relaxed))
            }),
        }
    }

    /// Writes slot `slot`'s label and vectors and clears its deleted bit.
    ///
    /// # Safety
    /// As [`RowSlab::write`]: the caller owns the unpublished slot.
    pub(crate) unsafe fn write(&self, slot: u32, label: u64, vector: &[f32], quantized: &[i8]) {
        let s = slot as usize;
        // SAFETY: forwarded caller contract.
        unsafe {
            self.vectors.write(s, vector);
            if let Some(q) = &self.quantized {
                q.write(s, quantized);
            }
        }
        self.labels[s].store(label, Ordering::Release);
        self.set_deleted(slot, false);
    }

    #[inline]
    pub(crate) fn label(&self, slot: u32) -> u64 {
        self.labels[slot as usize].load(Ordering::Acquire)
    }

    #[inline]
    pub(crate) fn is_deleted(&self, slot: u32) -> bool {
        let word = self.deleted[slot as usize / 64].load(Ordering::Acquire);
        word & (1 << (slot % 64)) != 0
    }

    pub(crate) fn set_deleted(&self, slot: u32, deleted: bool) {
        let bit = 1u64 << (slot % 64);
        let word = &self.deleted[slot as usize / 64];
        if deleted {
            word.fetch_or(bit, Ordering::AcqRel);
        } else {
            word.fetch_and(!bit, Ordering::AcqRel);
        }
    }

    /// Labels of the first `slots` slots.
    pub(crate) fn labels_of(&self, slots: usize) -> Vec<u64> {
        self.labels[..slots]
            .iter()
            .map(|l| l.load(Ordering::Acquire))
            .collect()
    }

    /// Deleted bitmap words covering the first `slots` slots.
    pub(crate) fn deleted_words(&self, slots: usize) -> Vec<u64> {
        self.deleted[..slots.div_ceil(64)]
            .iter()
            .map(|w| w.load(Ordering::Acquire))
            .collect()
    }

    fn bytes(&self) -> usize {
        self.vectors.bytes()
            + self.quantized.as_ref().map_or(0, RowSlab::bytes)
            + self.labels.len() * 8
            + self.deleted.len() * 8
    }
}

impl PointRows for PointTable {
    #[inline]
    fn f32_row(&self, node: u32) -> &[f32] {
        self.vectors.row(node as usize)
    }

    #[inline]
    fn i8_row(&self, node: u32) -> Option<&[i8]> {
        self.quantized.as_ref().map(|q| q.row(node as usize))
    }

    #[inline]
    fn is_deleted(&self, node: u32) -> bool {
        PointTable::is_deleted(self, node)
    }
}

/// The layered neighbour lists.
pub(crate) struct GraphLinks {
    /// Maximum neighbours per node on layers ≥ 1.
    m: usize,
    /// Maximum neighbours per node on layer 0 (2·M).
    m0: usize,
    levels: Box<[AtomicU8]>,
    links0: Box<[AtomicU32]>,
    upper_start: Box<[AtomicU32]>,
    upper: Box<[AtomicU32]>,
    upper_used: AtomicUsize,
    /// One lock per node, taken to rewrite that node's lists (any layer).
    /// An inserting thread holds at most one node lock at a time, so there is
    /// no lock order to respect and no deadlock.
    node_locks: Box<[Mutex<()>]>,
    /// Per node, how many layer-0 lists hold it (its in-links), counted by
    /// the writers of those lists: a count may lag an added link (so it is
    /// at most the true number, and [`GraphLinks::release_in_link`] errs on
    /// keeping a link), and a link is dropped only after its release
    /// succeeded, which never takes a count below one. That keeps every node
    /// that had an in-link with one: pruning a full list never orphans the
    /// node it drops.
    in_links0: Box<[AtomicU32]>,
}

impl NeighborLists for GraphLinks {
    #[inline]
    fn neighbors_into(&self, node: u32, level: usize, out: &mut Vec<u32>) {
        GraphLinks::neighbors_into(self, node, level, out);
    }

    #[inline]
    fn prefetch_layer0(&self, node: u32) {
        let record = self.layer0_record(node);
        prefetch_row(record.as_ptr(), std::mem::size_of_val(record));
    }
}

impl GraphLinks {
    pub(crate) fn new(capacity: usize, upper_records: usize, m: usize, m0: usize) -> Self {
        Self {
            m,
            m0,
            levels: (0..capacity).map(|_| AtomicU8::new(0)).collect(),
            links0: (0..capacity * (1 + m0))
                .map(|_| AtomicU32::new(0))
                .collect(),
            upper_start: (0..capacity).map(|_| AtomicU32::new(NO_UPPER)).collect(),
            upper: (0..upper_records * (1 + m))
                .map(|_| AtomicU32::new(0))
                .collect(),
            upper_used: AtomicUsize::new(0),
            node_locks: (0..capacity).map(|_| Mutex::new(())).collect(),
            in_links0: (0..capacity).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    fn grown(&self, capacity: usize, upper_records: usize) -> Self {
        let copy32 = |a: &AtomicU32| AtomicU32::new(a.load(Ordering::Relaxed));
        let upper_start = grow_atomics(&self.upper_start, capacity, copy32);
        for extra in upper_start.iter().skip(self.upper_start.len()) {
            extra.store(NO_UPPER, Ordering::Relaxed);
        }
        Self {
            m: self.m,
            m0: self.m0,
            levels: grow_atomics(&self.levels, capacity, |a| {
                AtomicU8::new(a.load(Ordering::Relaxed))
            }),
            links0: grow_atomics(&self.links0, capacity * (1 + self.m0), copy32),
            upper_start,
            upper: grow_atomics(&self.upper, upper_records * (1 + self.m), copy32),
            upper_used: AtomicUsize::new(self.upper_used.load(Ordering::Relaxed)),
            node_locks: (0..capacity).map(|_| Mutex::new(())).collect(),
            in_links0: grow_atomics(&self.in_links0, capacity, copy32),
        }
    }

    /// Counts one more layer-0 list holding `node`.
    #[inline]
    pub(crate) fn add_in_link(&self, node: u32) {
        self.in_links0[node as usize].fetch_add(1, Ordering::AcqRel);
    }

    /// Takes back one of `node`'s counted layer-0 in-links, only if another
    /// remains; true when the caller may now drop its link to `node`.
    #[inline]
    pub(crate) fn release_in_link(&self, node: u32) -> bool {
        self.in_links0[node as usize]
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| {
                (count >= 2).then(|| count - 1)
            })
            .is_ok()
    }

    /// Uncounts a layer-0 link to `node` that is being dropped anyway.
    #[inline]
    pub(crate) fn forget_in_link(&self, node: u32) {
        let _ =
            self.in_links0[node as usize]
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| c.checked_sub(1));
    }

    /// Layer-0 lists counted as holding `node`.
    #[inline]
    pub(crate) fn in_links(&self, node: u32) -> u32 {
        self.in_links0[node as usize].load(Ordering::Acquire)
    }

    /// Recounts every in-link of the first `slots` nodes from their lists
    /// (with exclusive access, after lists were rewritten wholesale).
    pub(crate) fn recount_in_links(&self, slots: usize) {
        for count in self.in_links0.iter() {
            count.store(0, Ordering::Relaxed);
        }
        let mut out = Vec::new();
        for node in 0..slots as u32 {
            self.neighbors_into(node, 0, &mut out);
            for &target in &out {
                if let Some(count) = self.in_links0.get(target as usize) {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Maximum number of neighbours on `level`.
    #[inline]
    pub(crate) fn max_degree(&self, level: usize) -> usize {
        if level == 0 {
            self.m0
        } else {
            self.m
        }
    }

    #[inline]
    pub(crate) fn level(&self, node: u32) -> usize {
        usize::from(self.levels[node as usize].load(Ordering::Acquire))
    }

    /// The record `[count, ids…]` of `node` on `level`.
    #[inline]
    fn record(&self, node: u32, level: usize) -> &[AtomicU32] {
        if level == 0 {
            let start = node as usize * (1 + self.m0);
            &self.links0[start..start + 1 + self.m0]
        } else {
            let first = self.upper_start[node as usize].load(Ordering::Acquire) as usize;
            let start = (first + level - 1) * (1 + self.m);
            &self.upper[start..start + 1 + self.m]
        }
    }

    /// `node`'s layer-0 record, for prefetching.
    #[inline]
    pub(crate) fn layer0_record(&self, node: u32) -> &[AtomicU32] {
        self.record(node, 0)
    }

    /// Appends `node`'s neighbours on `level` to `out` (cleared first).
    #[inline]
    pub(crate) fn neighbors_into(&self, node: u32, level: usize, out: &mut Vec<u32>) {
        out.clear();
        let record = self.record(node, level);
        let count = (record[0].load(Ordering::Acquire) as usize).min(record.len() - 1);
        out.extend(
            record[1..=count]
                .iter()
                .map(|id| id.load(Ordering::Acquire)),
        );
    }

    /// Replaces `node`'s neighbours on `level`. The caller holds `node`'s lock
    /// (or exclusive access to the index).
    pub(crate) fn set_neighbors(&self, node: u32, level: usize, ids: &[u32]) {
        let record = self.record(node, level);
        let count = ids.len().min(record.len() - 1);
        // Shrink the count first so a concurrent reader never reads past the
        // ids written so far, then write the ids, then publish the new count.
        record[0].store(0, Ordering::Release);
        for (slot, &id) in record[1..=count].iter().zip(ids) {
            slot.store(id, Ordering::Release);
        }
        record[0].store(count as u32, Ordering::Release);
    }

    /// Lock guarding `node`'s neighbour lists.
    #[inline]
    pub(crate) fn lock(&self, node: u32) -> parking_lot::MutexGuard<'_, ()> {
        self.node_locks[node as usize].lock()
    }

    /// Gives `node` level `level` with empty lists, reusing its upper records
    /// when it already owns enough. Returns `false` when the upper array is
    /// full and must be grown first.
    pub(crate) fn reset_node(&self, node: u32, level: usize, reuse_upper: bool) -> bool {
        let n = node as usize;
        if level > 0 && !(reuse_upper && self.level(node) >= level) {
            let first = self.upper_used.fetch_add(level, Ordering::AcqRel);
            if (first + level) * (1 + self.m) > self.upper.len() {
                self.upper_used.fetch_sub(level, Ordering::AcqRel);
                return false;
            }
            self.upper_start[n].store(first as u32, Ordering::Release);
        }
        self.levels[n].store(level as u8, Ordering::Release);
        // A reused slot was unlinked by the consolidation that freed it.
        self.in_links0[n].store(0, Ordering::Release);
        for l in 0..=level {
            self.record(node, l)[0].store(0, Ordering::Release);
        }
        true
    }

    fn bytes(&self) -> usize {
        self.levels.len()
            + (self.links0.len() + self.upper_start.len() + self.upper.len()) * 4
            + self.node_locks.len() * std::mem::size_of::<Mutex<()>>()
            + self.in_links0.len() * 4
    }

    /// Plain copies of the first `slots` nodes' levels, layer-0 records,
    /// upper starts, and the used upper records, for writing to a file.
    pub(crate) fn export(&self, slots: usize) -> (Vec<u8>, Vec<u32>, Vec<u32>, Vec<u32>) {
        let load = |a: &AtomicU32| a.load(Ordering::Acquire);
        let used = self
            .upper_used
            .load(Ordering::Acquire)
            .min(self.upper_records());
        (
            self.levels[..slots]
                .iter()
                .map(|l| l.load(Ordering::Acquire))
                .collect(),
            self.links0[..slots * (1 + self.m0)]
                .iter()
                .map(load)
                .collect(),
            self.upper_start[..slots]
                .iter()
                .zip(&self.levels[..slots])
                // A level-0 node's start is meaningless; write 0, not the
                // in-memory "none" marker, so every start is a valid index.
                .map(|(s, l)| {
                    if l.load(Ordering::Acquire) == 0 {
                        0
                    } else {
                        load(s)
                    }
                })
                .collect(),
            self.upper[..used * (1 + self.m)].iter().map(load).collect(),
        )
    }

    pub(crate) fn m(&self) -> usize {
        self.m
    }

    pub(crate) fn m0(&self) -> usize {
        self.m0
    }

    fn upper_records(&self) -> usize {
        self.upper.len() / (1 + self.m)
    }
}

/// Slots, vectors and links, grown together under the index's storage lock.
pub(crate) struct Storage {
    pub(crate) points: PointTable,
    pub(crate) links: GraphLinks,
    /// Slots handed out so far (`0..next_slot` have been reserved).
    next_slot: AtomicUsize,
    capacity: usize,
}

/// Why a slot could not be reserved without growing the storage first.
pub(crate) struct NeedsGrowth;

impl Storage {
    pub(crate) fn new(capacity: usize, dim: usize, quantized: bool, m: usize, m0: usize) -> Self {
        Self {
            points: PointTable::new(capacity, dim, quantized),
            links: GraphLinks::new(capacity, upper_records_for(capacity, m), m, m0),
            next_slot: AtomicUsize::new(0),
            capacity,
        }
    }

    /// A copy with room for at least `capacity` slots and `extra_upper` more
    /// upper records than are used now.
    pub(crate) fn grown(&self, capacity: usize, extra_upper: usize) -> Self {
        let m = self.links.m;
        let used_upper = self.links.upper_used.load(Ordering::Acquire);
        let upper = (used_upper + extra_upper)
            .max(upper_records_for(capacity, m))
            .max(self.links.upper_records());
        Self {
            points: self.points.grown(capacity),
            links: self.links.grown(capacity, upper),
            next_slot: AtomicUsize::new(self.next_slot.load(Ordering::Acquire)),
            capacity,
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of slots ever reserved; every slot below it has been written or
    /// is being written by its owner.
    pub(crate) fn slots_used(&self) -> usize {
        self.next_slot.load(Ordering::Acquire).min(self.capacity)
    }

    /// Reserves a fresh slot of level `level`.
    pub(crate) fn reserve(&self, level: usize) -> Result<u32, NeedsGrowth> {
        let slot = self.next_slot.fetch_add(1, Ordering::AcqRel);
        if slot >= self.capacity || slot >= u32::MAX as usize {
            self.next_slot.fetch_sub(1, Ordering::AcqRel);
            return Err(NeedsGrowth);
        }
        if !self.links.reset_node(slot as u32, level, false) {
            // Give the slot back only if nobody reserved after us; otherwise
            // leave it reserved but dead (deleted, unlinked): rare and harmless.
            if self
                .next_slot
                .compare_exchange(slot + 1, slot, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                self.points.set_deleted(slot as u32, true);
            }
            return Err(NeedsGrowth);
        }
        Ok(slot as u32)
    }

    pub(crate) fn vector_bytes(&self) -> usize {
        self.points.vectors.bytes() + self.points.quantized.as_ref().map_or(0, RowSlab::bytes)
    }

    pub(crate) fn graph_bytes(&self) -> usize {
        self.links.bytes() + self.points.bytes() - self.vector_bytes()
    }
}

/// Upper-layer records to provision for `capacity` nodes: the expected
/// `capacity/(M−1)` with a margin, since levels are random.
fn upper_records_for(capacity: usize, m: usize) -> usize {
    let expected = capacity / m.saturating_sub(1).max(1);
    expected + expected / 4 + 64
}

fn grow_atomics<A>(old: &[A], len: usize, copy: impl Fn(&A) -> A) -> Box<[A]>
where
    A: Default,
{
    old.iter()
        .map(&copy)
        .chain(std::iter::repeat_with(A::default))
        .take(len.max(old.len()))
        .collect()
}
