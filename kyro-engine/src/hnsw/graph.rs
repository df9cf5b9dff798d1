//! [`HnswIndex`]: concurrent inserts, parallel bulk build, (filtered) search,
//! deletes and graph repair.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use parking_lot::{Mutex, RwLock};
use rayon::prelude::*;

use super::layout::Storage;
use super::search::{
    greedy_closest, prefetch_row, reachable_on_layer0, score_sorted, search_graph, search_layer,
    select_neighbors, Candidate, GraphQuery, SearchScratch,
};
use crate::distance::{prepare_vector, prepared_distance, Metric, ScalarQuantizer};
use crate::error::EngineError;
use crate::index::slot_filter;
use crate::index::{
    IndexConfig, InternalFilter, LabelFilter, MemoryUsage, Neighbor, PreparedVector, Quantization,
    SearchParams, VectorIndex,
};

/// Highest layer a node may be drawn on. With `m ≥ 2` the chance of reaching
/// it is below 2⁻¹⁵ per node, and the cap bounds the upper records one insert
/// can ask for.
const MAX_LEVEL: usize = 15;

/// Rows sampled to calibrate the `i8` quantiser of a bulk build.
const CALIBRATION_ROWS: usize = 20_000;

/// Initial capacity of an index created empty.
const INITIAL_CAPACITY: usize = 1024;

/// Inserts between two progress reports of a bulk build.
const PROGRESS_EVERY: usize = 256;

/// The top of the graph, where every search starts.
#[derive(Debug, Clone, Copy)]
struct EntryPoint {
    node: u32,
    level: usize,
}

/// What [`HnswIndex::consolidate_deletes`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Consolidation {
    /// Live nodes whose neighbour lists were rebuilt around deleted ones.
    pub repaired_nodes: usize,
    /// Slots of deleted points now free for new inserts.
    pub freed_slots: usize,
}

/// What [`HnswIndex::force_in_link`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ForcedLink {
    /// A list with room took the target.
    Added,
    /// A full list took the target in place of this neighbour (which keeps
    /// another in-link).
    Replaced(u32),
    /// The nearest candidate that could have taken it links to it already.
    AlreadyLinked,
    /// No candidate could take it.
    NoRoom,
}

/// Rounds of [`HnswIndex::link_hard_to_find`]: the first checks every
/// point, each later one only the points linked in and the neighbours they
/// displaced in the round before.
const FINDABLE_ROUNDS: usize = 3;

/// Points a thread of [`HnswIndex::link_hard_to_find`] claims at a time.
const FINDABLE_CHUNK: usize = 64;

/// A consistent copy of an index's arrays, handed to a segment writer by
/// [`HnswIndex::export`]. Vectors are borrowed (they are large); the graph
/// arrays are copied out of their atomics.
pub struct GraphExport<'a> {
    pub(crate) metric: crate::distance::Metric,
    pub(crate) dim: usize,
    pub(crate) m: usize,
    pub(crate) m0: usize,
    pub(crate) entry: Option<(u32, usize)>,
    pub(crate) nodes: usize,
    pub(crate) quantizer: Option<ScalarQuantizer>,
    pub(crate) vectors: &'a [f32],
    pub(crate) quantized: Option<&'a [i8]>,
    pub(crate) labels: Vec<u64>,
    pub(crate) deleted: Vec<u64>,
    pub(crate) levels: Vec<u8>,
    pub(crate) links0: Vec<u32>,
    pub(crate) upper_start: Vec<u32>,
    pub(crate) upper: Vec<u32>,
}

/// A hierarchical navigable small-world graph over `f32` vectors.
///
/// Inserts, deletes and searches may run concurrently from any number of
/// threads (`&self`); only [`HnswIndex::consolidate_deletes`] needs exclusive
/// access.
///
/// # Locks
/// Taken in this order, never the other way round:
/// 1. `storage` — read by every insert and search for their whole duration;
///    written only to grow the arrays.
/// 2. a node lock inside `storage` — held while rewriting that node's lists;
///    an insert holds one at a time.
/// 3. `entry` — read at the start of each insert and search; written when a
///    node is drawn above the current top layer.
/// 4. `labels` — external id → slot; read at the end of a search, written
///    after an insert has linked its node and by deletes.
/// 5. `free_slots`, `scratch_pool` — short critical sections, nothing nested.
pub struct HnswIndex {
    config: IndexConfig,
    quantizer: Option<ScalarQuantizer>,
    storage: RwLock<Storage>,
    entry: RwLock<Option<EntryPoint>>,
    labels: RwLock<HashMap<u64, u32>>,
    free_slots: Mutex<Vec<u32>>,
    scratch_pool: Mutex<Vec<SearchScratch>>,
    /// Insert counter feeding the level generator.
    sequence: AtomicU64,
    /// Live points.
    live: AtomicUsize,
    /// Deleted or replaced points still linked into the graph.
    tombstones: AtomicUsize,
    /// 1/ln(m): the level distribution's normalisation.
    level_multiplier: f64,
}

impl HnswIndex {
    /// An empty index. `i8` quantisation needs a calibrated quantiser: use
    /// [`HnswIndex::with_capacity`] or [`HnswIndex::build_parallel`] for it.
    pub fn new(config: IndexConfig) -> Result<Self, EngineError> {
        if config.quantization == Quantization::I8 {
            return Err(EngineError::InvalidParameter {
                field: "quantization",
                reason: "i8 traversal needs a quantizer calibrated on data; \
                         use HnswIndex::with_capacity or build_parallel"
                    .into(),
            });
        }
        Self::with_capacity(config, INITIAL_CAPACITY, None)
    }

    /// An empty index with room for `capacity` points before it grows. The
    /// quantiser is required for, and only used with, `Quantization::I8`.
    pub fn with_capacity(
        config: IndexConfig,
        capacity: usize,
        quantizer: Option<ScalarQuantizer>,
    ) -> Result<Self, EngineError> {
        config.validate()?;
        let quantizer = match (config.quantization, quantizer) {
            (Quantization::None, _) => None,
            (Quantization::I8, Some(q)) if q.metric() == config.metric => Some(q),
            (Quantization::I8, _) => {
                return Err(EngineError::InvalidParameter {
                    field: "quantization",
                    reason: format!(
                        "i8 traversal needs a quantizer calibrated for {}",
                        config.metric
                    ),
                })
            }
        };
        let m = config.hnsw.m;
        let capacity = capacity.max(1);
        Ok(Self {
            storage: RwLock::new(Storage::new(
                capacity,
                config.dim,
                quantizer.is_some(),
                m,
                2 * m,
            )),
            quantizer,
            entry: RwLock::new(None),
            labels: RwLock::new(HashMap::with_capacity(capacity)),
            free_slots: Mutex::new(Vec::new()),
            scratch_pool: Mutex::new(Vec::new()),
            sequence: AtomicU64::new(0),
            live: AtomicUsize::new(0),
            tombstones: AtomicUsize::new(0),
            level_multiplier: 1.0 / (m as f64).ln(),
            config,
        })
    }

    /// Builds an index over `vectors` (row-major, `dim` components per row)
    /// with `threads` inserting concurrently (0 = all cores). Row `i` gets
    /// external id `ids[i]`, or `i` when `ids` is `None`. `progress` is called
    /// with the number of rows inserted so far every few hundred rows.
    pub fn build_parallel(
        config: IndexConfig,
        vectors: &[f32],
        ids: Option<&[u64]>,
        threads: usize,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<Self, EngineError> {
        Self::build_parallel_until(config, vectors, ids, threads, progress, &|| false)
    }

    /// [`HnswIndex::build_parallel`] that gives up, with
    /// [`EngineError::Cancelled`], soon after `stop` returns true: every
    /// thread asks it before each insert. The storage engine's merges use it so
    /// that a shutdown never waits for a long build.
    pub fn build_parallel_until(
        config: IndexConfig,
        vectors: &[f32],
        ids: Option<&[u64]>,
        threads: usize,
        progress: &(dyn Fn(usize) + Sync),
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<Self, EngineError> {
        config.validate()?;
        let dim = config.dim;
        if !vectors.len().is_multiple_of(dim) {
            return Err(EngineError::InvalidBatch {
                reason: format!(
                    "{} floats is not a whole number of {dim}-d rows",
                    vectors.len()
                ),
            });
        }
        let rows = vectors.len() / dim;
        if let Some(ids) = ids {
            if ids.len() != rows {
                return Err(EngineError::InvalidBatch {
                    reason: format!("{rows} rows but {} ids", ids.len()),
                });
            }
        }
        let quantizer = match config.quantization {
            Quantization::None => None,
            Quantization::I8 => Some(calibrate_on_rows(&config, vectors)?),
        };
        let index = Self::with_capacity(config, rows, quantizer)?;

        let next_row = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let first_error: Mutex<Option<EngineError>> = Mutex::new(None);
        let worker = || {
            while !failed.load(Ordering::Relaxed) {
                if stop() {
                    failed.store(true, Ordering::Relaxed);
                    first_error.lock().get_or_insert(EngineError::Cancelled {
                        what: "graph build",
                    });
                    break;
                }
                let row = next_row.fetch_add(1, Ordering::Relaxed);
                if row >= rows {
                    break;
                }
                let id = ids.map_or(row as u64, |ids| ids[row]);
                if let Err(e) = index.insert(id, &vectors[row * dim..(row + 1) * dim]) {
                    failed.store(true, Ordering::Relaxed);
                    first_error.lock().get_or_insert(EngineError::InvalidBatch {
                        reason: format!("row {row}: {e}"),
                    });
                    break;
                }
                let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
                if finished.is_multiple_of(PROGRESS_EVERY) {
                    progress(finished);
                }
            }
        };
        run_on_threads(threads, &worker);
        if let Some(e) = first_error.into_inner() {
            return Err(e);
        }
        index.reconnect_unreachable();
        index.link_hard_to_find(threads, stop);
        if stop() {
            return Err(EngineError::Cancelled {
                what: "graph build",
            });
        }
        progress(rows);
        Ok(index)
    }

    /// The quantiser used for `i8` traversal, if any.
    pub fn quantizer(&self) -> Option<&ScalarQuantizer> {
        self.quantizer.as_ref()
    }

    /// Fraction of graph nodes that are deleted but still linked; callers
    /// decide when it is worth [`HnswIndex::consolidate_deletes`].
    pub fn tombstone_fraction(&self) -> f64 {
        let tombstones = self.tombstones.load(Ordering::Relaxed);
        let total = tombstones + self.live.load(Ordering::Relaxed);
        if total == 0 {
            0.0
        } else {
            tombstones as f64 / total as f64
        }
    }

    /// The level of a new node: ⌊−ln(u)·mL⌋ with `u` drawn from a stream
    /// determined by the seed and the insert's sequence number.
    fn draw_level(&self, sequence: u64) -> usize {
        let bits = splitmix64(self.config.hnsw.seed ^ splitmix64(sequence));
        // 53 random bits → u in (0, 1].
        let u = ((bits >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        ((-u.ln() * self.level_multiplier) as usize).min(MAX_LEVEL)
    }

    fn take_scratch(&self) -> SearchScratch {
        self.scratch_pool
            .lock()
            .pop()
            .unwrap_or_else(SearchScratch::new)
    }

    fn return_scratch(&self, scratch: SearchScratch) {
        self.scratch_pool.lock().push(scratch);
    }

    /// A slot of level `level`, reused from deleted points when possible,
    /// growing the arrays when full. Holds no lock on return.
    fn allocate_slot(&self, level: usize) -> Result<u32, EngineError> {
        loop {
            {
                let storage = self.storage.read();
                let reused = self.free_slots.lock().pop();
                match reused {
                    Some(slot) => {
                        if storage.links.reset_node(slot, level, true) {
                            return Ok(slot);
                        }
                        self.free_slots.lock().push(slot);
                    }
                    None => {
                        if let Ok(slot) = storage.reserve(level) {
                            return Ok(slot);
                        }
                    }
                }
            }
            self.grow(level)?;
        }
    }

    /// Doubles the slot arrays if they are full and makes room for `level`
    /// more upper records.
    fn grow(&self, level: usize) -> Result<(), EngineError> {
        let mut storage = self.storage.write();
        let capacity = storage.capacity();
        let new_capacity = if storage.slots_used() >= capacity {
            capacity.saturating_mul(2).max(INITIAL_CAPACITY)
        } else {
            capacity
        };
        if new_capacity > u32::MAX as usize {
            return Err(EngineError::CapacityExceeded { capacity });
        }
        let grown = storage.grown(new_capacity, level + MAX_LEVEL);
        *storage = grown;
        Ok(())
    }

    /// Links the freshly written node `slot` into every layer up to `level`.
    fn link(&self, storage: &Storage, slot: u32, level: usize, vector: &[f32]) {
        let entry = *self.entry.read();
        let entry = match entry {
            Some(entry) => entry,
            None => {
                let mut top = self.entry.write();
                match *top {
                    Some(entry) => entry,
                    None => {
                        *top = Some(EntryPoint { node: slot, level });
                        return;
                    }
                }
            }
        };
        let metric = self.config.metric;
        let points = &storage.points;
        let links = &storage.links;
        let to_new =
            |node: u32| prepared_distance(metric, vector, points.vectors.row(node as usize));
        let between = |a: u32, b: u32| points.distance_between(metric, a, b);

        let mut scratch = self.take_scratch();
        let mut closest = Candidate {
            distance: to_new(entry.node),
            node: entry.node,
        };
        for layer in (level + 1..=entry.level).rev() {
            closest = greedy_closest(links, closest, layer, &to_new, &mut scratch);
        }
        // Choose the new node's neighbours on every layer first, then publish
        // its lists, and only then link back to it. The node becomes
        // reachable through those back-links, so a concurrent insert that
        // enters it always finds its lists complete: were they written layer
        // by layer, such an insert could descend into an empty lower list,
        // link only to this node, and lose that only in-link when this insert
        // wrote the list it had chosen (an unreachable node, issue 15).
        let top = level.min(entry.level);
        let mut chosen: Vec<Vec<Candidate>> = vec![Vec::new(); top + 1];
        let mut entries = vec![closest];
        for layer in (0..=top).rev() {
            search_layer(
                links,
                &entries,
                layer,
                self.config.hnsw.ef_construction,
                storage.capacity(),
                &to_new,
                &|node: u32| prefetch_row(points.vectors.row_ptr(node as usize), 4 * vector.len()),
                &|node| node != slot,
                None,
                &mut scratch,
            );
            let mut pool = std::mem::take(&mut scratch.pool);
            let mut selected = std::mem::take(&mut scratch.selected);
            pool.clear();
            pool.extend(scratch.results.drain());
            pool.sort_unstable();
            select_neighbors(&pool, links.max_degree(layer), &between, &mut selected);
            chosen[layer].extend_from_slice(&selected);
            entries.clone_from(&pool);
            scratch.pool = pool;
            scratch.selected = selected;
        }
        {
            let _guard = links.lock(slot);
            let mut ids = Vec::new();
            for (layer, selected) in chosen.iter().enumerate() {
                ids.clear();
                ids.extend(selected.iter().map(|c| c.node));
                links.set_neighbors(slot, layer, &ids);
            }
        }
        for neighbor in &chosen[0] {
            links.add_in_link(neighbor.node);
        }
        for (layer, selected) in chosen.iter().enumerate() {
            for neighbor in selected {
                self.add_back_link(
                    storage,
                    neighbor.node,
                    *neighbor,
                    slot,
                    layer,
                    &between,
                    &mut scratch,
                );
            }
        }
        // Every neighbour may have pruned the new node from its full list:
        // then nothing links to it and no search could find it. Link it
        // from the nearest neighbour that can take it.
        if links.in_links(slot) == 0 {
            self.force_in_link(storage, &chosen[0], slot, &between, &|_| true);
        }
        self.return_scratch(scratch);

        if level > entry.level {
            let mut top = self.entry.write();
            if top.is_none_or(|t| t.level < level) {
                *top = Some(EntryPoint { node: slot, level });
            }
        }
    }

    /// Adds `new` to `node`'s list on `layer`; when the list is full, keeps the
    /// best diverse subset of old neighbours plus `new` (heuristic again, seen
    /// from `node`).
    #[allow(clippy::too_many_arguments)]
    fn add_back_link(
        &self,
        storage: &Storage,
        node: u32,
        node_to_new: Candidate,
        new: u32,
        layer: usize,
        between: &impl Fn(u32, u32) -> f32,
        scratch: &mut SearchScratch,
    ) {
        let links = &storage.links;
        let max_degree = links.max_degree(layer);
        let _guard = links.lock(node);
        let mut current = Vec::with_capacity(max_degree + 1);
        links.neighbors_into(node, layer, &mut current);
        if current.contains(&new) {
            return;
        }
        if current.len() < max_degree {
            current.push(new);
            links.set_neighbors(node, layer, &current);
            if layer == 0 {
                links.add_in_link(new);
            }
            return;
        }
        // The new node's distance is known; score the old neighbours.
        let mut pool = Vec::with_capacity(current.len() + 1);
        score_sorted(
            current.iter().copied(),
            |other| between(node, other),
            &mut pool,
        );
        let at = pool.partition_point(|c| c.distance <= node_to_new.distance);
        pool.insert(
            at,
            Candidate {
                distance: node_to_new.distance,
                node: new,
            },
        );
        let mut selected = std::mem::take(&mut scratch.selected);
        select_neighbors(&pool, max_degree, between, &mut selected);
        if layer == 0 {
            if self.config.metric == Metric::Dot {
                // Under the inner product, keeping each dropped node's last
                // in-link costs recall (measured: recall@10 0.95 → 0.89 on
                // the clustered test set): small-norm points have few
                // in-links and would crowd out good neighbours. Islands it
                // leaves are relinked by `reconnect_unreachable`.
                count_pruned_in_links(links, &pool, &selected, new);
            } else {
                keep_only_in_links(links, &pool, &mut selected, new, max_degree);
            }
        }
        current.clear();
        current.extend(selected.iter().map(|c| c.node));
        links.set_neighbors(node, layer, &current);
        scratch.selected = selected;
    }

    /// Adds `target` to the layer-0 list of the first of `from` (nearest
    /// first) that can take it: one with room, or one holding a neighbour
    /// that keeps another in-link and is `evictable` (the farthest such is
    /// replaced). Stops at the first of `from` that already links to it.
    fn force_in_link(
        &self,
        storage: &Storage,
        from: &[Candidate],
        target: u32,
        between: &impl Fn(u32, u32) -> f32,
        evictable: &dyn Fn(u32) -> bool,
    ) -> ForcedLink {
        let links = &storage.links;
        let max_degree = links.max_degree(0);
        let mut current = Vec::with_capacity(max_degree + 1);
        for candidate in from {
            let node = candidate.node;
            if node == target {
                continue;
            }
            let _guard = links.lock(node);
            links.neighbors_into(node, 0, &mut current);
            if current.contains(&target) {
                return ForcedLink::AlreadyLinked;
            }
            if current.len() < max_degree {
                current.push(target);
                links.set_neighbors(node, 0, &current);
                links.add_in_link(target);
                return ForcedLink::Added;
            }
            if self.config.metric == Metric::Dot {
                // Replacing a neighbour costs recall under the inner product
                // (see `add_back_link`): only lists with room take it.
                continue;
            }
            let mut by_distance: Vec<(f32, usize)> = current
                .iter()
                .enumerate()
                .map(|(at, &n)| (between(node, n), at))
                .collect();
            by_distance.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
            if let Some(&(_, at)) = by_distance
                .iter()
                .find(|&&(_, at)| evictable(current[at]) && links.release_in_link(current[at]))
            {
                let replaced = current[at];
                current[at] = target;
                links.set_neighbors(node, 0, &current);
                links.add_in_link(target);
                return ForcedLink::Replaced(replaced);
            }
        }
        ForcedLink::NoRoom
    }

    /// Links back into the graph every live point that layer 0 does not
    /// connect to the entry point (an island the neighbour heuristic cut
    /// off), from the nearest points a search reaches. A safety net after
    /// bulk builds and before sealing: inserts already never orphan a single
    /// node. Returns how many points were relinked; holds the storage lock
    /// shared.
    pub fn reconnect_unreachable(&self) -> usize {
        let mut relinked = 0;
        // Each round relinks whole islands through one member; a few rounds
        // settle any graph (an island's other members follow its links).
        for _ in 0..4 {
            let storage = self.storage.read();
            let unreachable = self.unreachable_slots(&storage);
            if unreachable.is_empty() {
                break;
            }
            let Some(entry) = *self.entry.read() else {
                break;
            };
            let metric = self.config.metric;
            let points = &storage.points;
            let between = |a: u32, b: u32| points.distance_between(metric, a, b);
            let mut scratch = self.take_scratch();
            for slot in unreachable {
                let vector = points.vectors.row(slot as usize);
                let to_orphan = |node: u32| {
                    prepared_distance(metric, vector, points.vectors.row(node as usize))
                };
                let start = Candidate {
                    distance: to_orphan(entry.node),
                    node: entry.node,
                };
                search_layer(
                    &storage.links,
                    &[start],
                    0,
                    self.config.hnsw.ef_construction,
                    storage.capacity(),
                    &to_orphan,
                    &|_: u32| {},
                    &|node| node != slot,
                    None,
                    &mut scratch,
                );
                let mut nearest: Vec<Candidate> = scratch.results.drain().collect();
                nearest.sort_unstable();
                let linked = self.force_in_link(&storage, &nearest, slot, &between, &|_| true);
                if linked != ForcedLink::NoRoom {
                    relinked += 1;
                }
            }
            self.return_scratch(scratch);
        }
        relinked
    }

    /// Makes every live point findable by a search with its own vector at
    /// `findable_ef` ([`HnswParams`](crate::HnswParams)): each point is
    /// searched for as a query would be (descent from the entry point, a
    /// layer-0 walk of that width, `i8` distances when the index has them),
    /// and one the walk does not return is given an in-link from the nearest
    /// points it did return, so the same walk now steps to it. Identical
    /// vectors are ties, not misses. On vectors with no structure (uniform
    /// random 384-d) a graph of 250,000 points otherwise leaves 0.7 % of its
    /// points behind at `ef` 256 and one even at `ef` 2,000
    /// (`docs/benchmarks.md`, "Crash test").
    ///
    /// For a graph nothing inserts into (after a bulk build, before a seal):
    /// the lists it changes take their node locks, but a concurrent insert
    /// could displace a link unnoticed. Runs on `threads` threads (0: one per
    /// core) and gives up when `stop` returns true (the graph stays sound,
    /// only less repaired). Returns how many points were linked in.
    pub fn link_hard_to_find(&self, threads: usize, stop: &(dyn Fn() -> bool + Sync)) -> usize {
        let ef = self.config.hnsw.findable_ef;
        if ef == 0 {
            return 0;
        }
        let storage = self.storage.read();
        let Some(entry) = *self.entry.read() else {
            return 0;
        };
        let metric = self.config.metric;
        let points = &storage.points;
        let between = |a: u32, b: u32| points.distance_between(metric, a, b);
        let mut pending: Vec<u32> = self.labels.read().values().copied().collect();
        pending.sort_unstable();
        let linked = AtomicUsize::new(0);
        // Points this pass linked in: never evicted to link in another, or
        // two points could take turns displacing each other.
        let linked_in: Vec<AtomicBool> = (0..storage.slots_used())
            .map(|_| AtomicBool::new(false))
            .collect();
        for _ in 0..FINDABLE_ROUNDS {
            if pending.is_empty() || stop() {
                break;
            }
            let next = AtomicUsize::new(0);
            let recheck = Mutex::new(Vec::new());
            let worker = || {
                let mut scratch = self.take_scratch();
                let mut again = Vec::new();
                loop {
                    let start = next.fetch_add(FINDABLE_CHUNK, Ordering::Relaxed);
                    if start >= pending.len() || stop() {
                        break;
                    }
                    for &slot in &pending[start..(start + FINDABLE_CHUNK).min(pending.len())] {
                        let vector = points.vectors.row(slot as usize);
                        let query = GraphQuery {
                            metric,
                            vector,
                            quantizer: self.quantizer.as_ref(),
                            ef,
                            filter: None,
                            // Reaching the point is all this check needs.
                            stop_at: Some(slot),
                        };
                        let mut found = search_graph(
                            &storage.links,
                            points,
                            (entry.node, entry.level),
                            storage.capacity(),
                            &query,
                            &mut scratch,
                        );
                        // Returned, or beaten only by an identical vector
                        // (which scores exactly what the point itself does).
                        let itself = prepared_distance(metric, vector, vector);
                        if found.iter().any(|c| c.node == slot || c.distance <= itself) {
                            continue;
                        }
                        found.sort_unstable();
                        let outcome =
                            self.force_in_link(&storage, &found, slot, &between, &|node| {
                                linked_in
                                    .get(node as usize)
                                    .is_none_or(|l| !l.load(Ordering::Relaxed))
                            });
                        match outcome {
                            ForcedLink::Added => again.push(slot),
                            ForcedLink::Replaced(displaced) => again.extend([slot, displaced]),
                            ForcedLink::AlreadyLinked | ForcedLink::NoRoom => continue,
                        }
                        if let Some(flag) = linked_in.get(slot as usize) {
                            flag.store(true, Ordering::Relaxed);
                        }
                        linked.fetch_add(1, Ordering::Relaxed);
                    }
                }
                self.return_scratch(scratch);
                recheck.lock().append(&mut again);
            };
            run_on_threads(threads, &worker);
            pending = recheck.into_inner();
            pending.sort_unstable();
            pending.dedup();
        }
        linked.into_inner()
    }

    /// Sorts `candidates`, drops any whose slot no longer holds its label's
    /// current point (an upsert or delete raced with this search), and keeps
    /// the first `k`.
    fn finish(&self, storage: &Storage, candidates: &mut [Candidate], k: usize) -> Vec<Neighbor> {
        self.finish_kept(storage, candidates, k, &|_| true)
    }

    /// [`HnswIndex::finish`] that also drops the labels `keep` rejects.
    fn finish_kept(
        &self,
        storage: &Storage,
        candidates: &mut [Candidate],
        k: usize,
        keep: LabelFilter<'_>,
    ) -> Vec<Neighbor> {
        candidates.sort_unstable();
        let labels = self.labels.read();
        candidates
            .iter()
            .filter_map(|c| {
                let id = storage.points.label(c.node);
                (labels.get(&id) == Some(&c.node) && keep(id)).then_some(Neighbor {
                    id,
                    distance: c.distance,
                })
            })
            .take(k)
            .collect()
    }

    /// Exact distances from the prepared query to the live `candidates`
    /// (internal slots), the `k` nearest first.
    fn score_slots(&self, prepared: &[f32], k: usize, candidates: &[u32]) -> Vec<Neighbor> {
        let storage = self.storage.read();
        let slots = storage.slots_used();
        let mut nodes: Vec<u32> = candidates
            .iter()
            .copied()
            .filter(|&node| (node as usize) < slots)
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        self.score_nodes(&storage, prepared, k, nodes.into_iter(), &|_| true)
    }

    /// Exact distances from the prepared query to the live ones of `nodes`
    /// (distinct, published slots below `slots_used`), the `k` nearest whose
    /// labels `keep` accepts first; the caller holds the storage lock.
    fn score_nodes(
        &self,
        storage: &Storage,
        prepared: &[f32],
        k: usize,
        nodes: impl Iterator<Item = u32>,
        keep: LabelFilter<'_>,
    ) -> Vec<Neighbor> {
        let points = &storage.points;
        let metric = self.config.metric;
        let mut scored: Vec<Candidate> = nodes
            .filter(|&node| !points.is_deleted(node))
            .map(|node| Candidate {
                distance: prepared_distance(metric, prepared, points.vectors.row(node as usize)),
                node,
            })
            .collect();
        // Only the nearest few are ordered: selecting them is linear, where
        // sorting every candidate (thousands when a tenant's points are
        // scored exactly) was most of such a search's time. A point whose
        // label moved on meanwhile, or that `keep` rejects, is dropped by
        // `finish_kept`; then the next nearest are taken, more each round.
        let mut nearest = k.max(1);
        loop {
            if nearest < scored.len() {
                scored.select_nth_unstable(nearest);
            }
            let taken = nearest.min(scored.len());
            let found = self.finish_kept(storage, &mut scored[..taken], k, keep);
            if found.len() >= k || taken == scored.len() {
                return found;
            }
            nearest = nearest.saturating_mul(2);
        }
    }

    /// Searches with the storage lock already held; `prepared` is a validated,
    /// prepared query.
    fn search_locked(
        &self,
        storage: &Storage,
        prepared: &[f32],
        k: usize,
        ef: usize,
        filter: Option<InternalFilter<'_>>,
    ) -> Vec<Neighbor> {
        let Some(entry) = *self.entry.read() else {
            return Vec::new();
        };
        let query = GraphQuery {
            metric: self.config.metric,
            vector: prepared,
            quantizer: self.quantizer.as_ref(),
            ef: ef.max(k),
            filter,
            stop_at: None,
        };
        let mut scratch = self.take_scratch();
        let mut found = search_graph(
            &storage.links,
            &storage.points,
            (entry.node, entry.level),
            storage.capacity(),
            &query,
            &mut scratch,
        );
        self.return_scratch(scratch);
        self.finish(storage, &mut found, k)
    }

    /// Like [`VectorIndex::search_with`], with the filter over external ids
    /// (labels) instead of internal slots: the storage engine keeps its sets of
    /// allowed points by label.
    pub fn search_by_label(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        allow: Option<LabelFilter<'_>>,
    ) -> Result<Vec<Neighbor>, EngineError> {
        SearchParams::new(k, ef).validate()?;
        let prepared = self.config.prepare_once(query)?;
        Ok(self.search_prepared_by_label(&prepared, k, ef, allow))
    }

    /// [`VectorIndex::insert`] of a vector already prepared for this index's
    /// shape (the storage engine validates a write's vector once, before it
    /// logs it, and inserts that).
    pub fn insert_prepared(&self, id: u64, vector: &PreparedVector) -> Result<u32, EngineError> {
        debug_assert_eq!(vector.as_slice().len(), self.config.dim);
        let prepared = vector.as_slice();
        let quantized = self
            .quantizer
            .map(|q| q.quantize(prepared))
            .unwrap_or_default();
        let level = self.draw_level(self.sequence.fetch_add(1, Ordering::Relaxed));
        let slot = self.allocate_slot(level)?;
        {
            let storage = self.storage.read();
            // SAFETY: `slot` was just handed to this call by `allocate_slot`
            // (fresh, or freed by a consolidation that unlinked it), and its id
            // is published only by `link` and the label map below.
            unsafe { storage.points.write(slot, id, prepared, &quantized) };
            self.link(&storage, slot, level, prepared);
        }
        let replaced = self.labels.write().insert(id, slot);
        match replaced {
            Some(old) => {
                self.storage.read().points.set_deleted(old, true);
                self.tombstones.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                self.live.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(slot)
    }

    /// [`HnswIndex::search_by_label`] with a query prepared for this index's
    /// shape and `k`/`ef` already validated (the storage engine prepares a
    /// query once for all its segments).
    pub fn search_prepared_by_label(
        &self,
        query: &PreparedVector,
        k: usize,
        ef: usize,
        allow: Option<LabelFilter<'_>>,
    ) -> Vec<Neighbor> {
        debug_assert_eq!(query.as_slice().len(), self.config.dim);
        let storage = self.storage.read();
        let points = &storage.points;
        let by_slot = allow.map(|allow| slot_filter(allow, |slot| Some(points.label(slot))));
        let filter: Option<InternalFilter<'_>> = by_slot.as_ref().map(|f| f as InternalFilter<'_>);
        self.search_locked(&storage, query.as_slice(), k, ef, filter)
    }

    /// Exact search over the live points with the given external ids (ids
    /// not in the index are skipped).
    pub fn score_labels(
        &self,
        query: &[f32],
        k: usize,
        labels: &mut dyn Iterator<Item = u64>,
    ) -> Result<Vec<Neighbor>, EngineError> {
        SearchParams::new(k, k).validate()?;
        let prepared = self.config.prepare_once(query)?;
        Ok(self.score_prepared_labels(&prepared, k, labels))
    }

    /// [`HnswIndex::score_labels`] with a prepared query and a validated `k`.
    pub fn score_prepared_labels(
        &self,
        query: &PreparedVector,
        k: usize,
        labels: &mut dyn Iterator<Item = u64>,
    ) -> Vec<Neighbor> {
        debug_assert_eq!(query.as_slice().len(), self.config.dim);
        let slots: Vec<u32> = {
            let map = self.labels.read();
            labels
                .filter_map(|label| map.get(&label).copied())
                .collect()
        };
        self.score_slots(query.as_slice(), k, &slots)
    }

    /// Exact search over every live point whose external id `keep` accepts,
    /// with a prepared query and a validated `k`. For scoring a whole index
    /// when nearly all of it is wanted (the storage engine's exact plan
    /// without a filter): its published points are taken from the label
    /// map as they are, and `keep` is asked only of the nearest, instead of
    /// looking up every wanted id in the map.
    pub fn score_prepared_all(
        &self,
        query: &PreparedVector,
        k: usize,
        keep: LabelFilter<'_>,
    ) -> Vec<Neighbor> {
        debug_assert_eq!(query.as_slice().len(), self.config.dim);
        let storage = self.storage.read();
        let slots = storage.slots_used();
        // Only published slots: a reserved one may still be being written.
        let nodes: Vec<u32> = self
            .labels
            .read()
            .values()
            .copied()
            .filter(|&node| (node as usize) < slots)
            .collect();
        self.score_nodes(&storage, query.as_slice(), k, nodes.into_iter(), keep)
    }

    /// The stored (prepared) vector of the live point with external id `id`.
    pub fn vector_of(&self, id: u64) -> Option<Vec<f32>> {
        let slot = self.internal_id(id)?;
        let storage = self.storage.read();
        Some(storage.points.vectors.row(slot as usize).to_vec())
    }

    /// External ids of live points that no search can reach: not connected
    /// on layer 0 to the entry point (see [`reachable_on_layer0`]). A sound
    /// graph has none; tests, `Stats` and `/metrics` report the count.
    /// Costs one walk over the graph, under the storage read lock.
    pub fn unreachable_ids(&self) -> Vec<u64> {
        let storage = self.storage.read();
        self.unreachable_slots(&storage)
            .into_iter()
            .map(|slot| storage.points.label(slot))
            .collect()
    }

    /// Slots of the live points [`HnswIndex::unreachable_ids`] names; the
    /// caller holds the storage lock.
    fn unreachable_slots(&self, storage: &Storage) -> Vec<u32> {
        // Labels are published only once a node is linked, so points still
        // being inserted are not counted.
        let live: Vec<u32> = self.labels.read().values().copied().collect();
        let entry = self.entry.read().map(|e| e.node);
        let reached = reachable_on_layer0(&storage.links, storage.slots_used(), entry);
        live.into_iter()
            .filter(|&slot| !reached.get(slot as usize).copied().unwrap_or(false))
            .collect()
    }

    /// Calls `write` with a consistent copy of the index, holding the storage
    /// lock exclusively meanwhile (inserts and searches wait).
    pub fn export<E>(
        &self,
        write: &mut dyn FnMut(GraphExport<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let storage = self.storage.write();
        let entry = *self.entry.read();
        let nodes = storage.slots_used();
        let (levels, links0, upper_start, upper) = storage.links.export(nodes);
        write(GraphExport {
            metric: self.config.metric,
            dim: self.config.dim,
            m: storage.links.m(),
            m0: storage.links.m0(),
            entry: entry.map(|e| (e.node, e.level)),
            nodes,
            quantizer: self.quantizer,
            vectors: storage.points.vectors.rows(nodes),
            quantized: storage.points.quantized.as_ref().map(|q| q.rows(nodes)),
            labels: storage.points.labels_of(nodes),
            deleted: storage.points.deleted_words(nodes),
            levels,
            links0,
            upper_start,
            upper,
        })
    }

    /// Repairs the graph around deleted points and frees their slots.
    ///
    /// Every live node that links to a deleted one gets a new neighbour list,
    /// chosen by the selection heuristic from its live neighbours and the live
    /// neighbours of its deleted ones (their "two-hop" replacements). Deleted
    /// nodes are then unlinked, so the graph stays navigable without them and
    /// their slots are reused by later inserts.
    pub fn consolidate_deletes(&mut self) -> Consolidation {
        let metric = self.config.metric;
        let storage = self.storage.get_mut();
        let points = &storage.points;
        let links = &storage.links;
        let slots = storage.slots_used();
        let between = |a: u32, b: u32| points.distance_between(metric, a, b);

        // Phase 1 (parallel): only live nodes' lists are written, and each
        // task writes only its own node's; the lists it reads belong to
        // deleted nodes, which no task writes.
        let repaired_nodes: usize = (0..slots as u32)
            .into_par_iter()
            .filter(|&node| !points.is_deleted(node))
            .map_init(
                || (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new()),
                |(ids, hop, pool, scored, selected), node| {
                    let mut repaired = false;
                    for layer in 0..=links.level(node) {
                        links.neighbors_into(node, layer, ids);
                        if !ids.iter().any(|&n| points.is_deleted(n)) {
                            continue;
                        }
                        pool.clear();
                        for &neighbor in ids.iter() {
                            if !points.is_deleted(neighbor) {
                                pool.push(neighbor);
                                continue;
                            }
                            if links.level(neighbor) < layer {
                                continue;
                            }
                            links.neighbors_into(neighbor, layer, hop);
                            pool.extend(
                                hop.iter().filter(|&&n| n != node && !points.is_deleted(n)),
                            );
                        }
                        pool.sort_unstable();
                        pool.dedup();
                        score_sorted(pool.iter().copied(), |n| between(node, n), scored);
                        select_neighbors(scored, links.max_degree(layer), &between, selected);
                        ids.clear();
                        ids.extend(selected.iter().map(|c: &Candidate| c.node));
                        links.set_neighbors(node, layer, ids);
                        repaired = true;
                    }
                    usize::from(repaired)
                },
            )
            .sum();

        // Phase 2: unlink deleted nodes and hand their slots out again.
        let mut free = Vec::new();
        for node in 0..slots as u32 {
            if points.is_deleted(node) {
                for layer in 0..=links.level(node) {
                    links.set_neighbors(node, layer, &[]);
                }
                free.push(node);
            }
        }
        let freed_slots = free.len() - self.free_slots.get_mut().len();
        *self.free_slots.get_mut() = free;
        self.tombstones.store(0, Ordering::Relaxed);

        let entry = self.entry.get_mut();
        if entry.is_some_and(|e| points.is_deleted(e.node)) || entry.is_none() {
            *entry = (0..slots as u32)
                .filter(|&n| !points.is_deleted(n))
                .map(|n| EntryPoint {
                    node: n,
                    level: links.level(n),
                })
                .max_by_key(|e| (e.level, std::cmp::Reverse(e.node)));
        }
        storage.links.recount_in_links(slots);
        let consolidation = Consolidation {
            repaired_nodes,
            freed_slots,
        };
        self.reconnect_unreachable();
        consolidation
    }
}

impl VectorIndex for HnswIndex {
    fn config(&self) -> &IndexConfig {
        &self.config
    }

    fn insert(&self, id: u64, vector: &[f32]) -> Result<u32, EngineError> {
        let prepared = self.config.prepare_once(vector)?;
        self.insert_prepared(id, &prepared)
    }

    fn delete(&self, id: u64) -> bool {
        let removed = self.labels.write().remove(&id);
        match removed {
            Some(slot) => {
                self.storage.read().points.set_deleted(slot, true);
                self.live.fetch_sub(1, Ordering::Relaxed);
                self.tombstones.fetch_add(1, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    fn search_with(
        &self,
        query: &[f32],
        params: &SearchParams<'_>,
    ) -> Result<Vec<Neighbor>, EngineError> {
        params.validate()?;
        let prepared = self.config.prepare(query)?;
        let storage = self.storage.read();
        Ok(self.search_locked(&storage, &prepared, params.k, params.ef, params.filter))
    }

    fn search_candidates(
        &self,
        query: &[f32],
        k: usize,
        candidates: &[u32],
    ) -> Result<Vec<Neighbor>, EngineError> {
        SearchParams::new(k, k).validate()?;
        let prepared = self.config.prepare(query)?;
        Ok(self.score_slots(&prepared, k, candidates))
    }

    fn internal_id(&self, id: u64) -> Option<u32> {
        self.labels.read().get(&id).copied()
    }

    fn len(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    fn memory_usage(&self) -> MemoryUsage {
        let storage = self.storage.read();
        let labels = self.labels.read().capacity();
        // hashbrown: one (u64, u32) bucket, padded to 16 bytes, plus one
        // control byte per bucket.
        let label_bytes = labels * (16 + 1);
        MemoryUsage {
            vector_bytes: storage.vector_bytes(),
            graph_bytes: storage.graph_bytes()
                + label_bytes
                + self.free_slots.lock().capacity() * 4,
        }
    }
}

/// Calibrates the `i8` quantiser on a strided sample of prepared rows.
fn calibrate_on_rows(
    config: &IndexConfig,
    vectors: &[f32],
) -> Result<ScalarQuantizer, EngineError> {
    let dim = config.dim;
    let rows = vectors.len() / dim;
    let stride = rows.div_ceil(CALIBRATION_ROWS).max(1);
    let mut sample = Vec::with_capacity(rows.min(CALIBRATION_ROWS) * dim);
    let mut prepared = Vec::with_capacity(dim);
    for row in (0..rows).step_by(stride) {
        prepare_vector(
            config.metric,
            dim,
            &vectors[row * dim..(row + 1) * dim],
            &mut prepared,
        )
        .map_err(|e| EngineError::InvalidBatch {
            reason: format!("row {row}: {e}"),
        })?;
        sample.extend_from_slice(&prepared);
    }
    Ok(ScalarQuantizer::calibrate(config.metric, dim, &sample))
}

/// Runs `worker` on `threads` threads (0: one per core), the calling thread
/// one of them, and returns when every one has.
fn run_on_threads(threads: usize, worker: &(dyn Fn() + Sync)) {
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    };
    std::thread::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(worker);
        }
        worker();
    });
}

/// SplitMix64: a tiny, well-mixed hash used to derive independent random
/// streams from (seed, sequence).
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Makes sure pruning `node`'s full layer-0 list (down to `selected`, chosen
/// by the heuristic from `pool`, which holds the old neighbours and `new`)
/// orphans nobody: an old neighbour may be dropped only if it keeps another
/// in-link ([`GraphLinks::release_in_link`]); one that would not is kept in
/// place of the farthest selected entry that can go (`new`, not yet linked,
/// or a neighbour that keeps another in-link). Counts `new` in when it stays.
fn keep_only_in_links(
    links: &super::layout::GraphLinks,
    pool: &[Candidate],
    selected: &mut Vec<Candidate>,
    new: u32,
    max_degree: usize,
) {
    for dropped in pool {
        if dropped.node == new || selected.iter().any(|c| c.node == dropped.node) {
            continue;
        }
        if links.release_in_link(dropped.node) {
            continue;
        }
        // Its only in-link is this list: keep it.
        let evict = (0..selected.len()).rev().find(|&at| {
            let victim = selected[at].node;
            victim == new || links.release_in_link(victim)
        });
        match evict {
            Some(at) => {
                selected.remove(at);
                selected.push(*dropped);
            }
            None if selected.len() < max_degree => selected.push(*dropped),
            // Every kept neighbour is someone's only in-link too: drop it
            // (the count follows) and leave it to `reconnect_unreachable`.
            None => links.forget_in_link(dropped.node),
        }
    }
    if selected.iter().any(|c| c.node == new) {
        links.add_in_link(new);
    }
}

/// The in-link bookkeeping of a plain heuristic prune of `node`'s full
/// layer-0 list: every old neighbour of `pool` left out of `selected` loses
/// this in-link, `new` gains one if it stays.
fn count_pruned_in_links(
    links: &super::layout::GraphLinks,
    pool: &[Candidate],
    selected: &[Candidate],
    new: u32,
) {
    for candidate in pool {
        let kept = selected.iter().any(|c| c.node == candidate.node);
        if candidate.node == new {
            if kept {
                links.add_in_link(new);
            }
        } else if !kept {
            links.forget_in_link(candidate.node);
        }
    }
}
