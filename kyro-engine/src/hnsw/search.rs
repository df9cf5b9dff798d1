//! The graph walks: greedy descent, best-first layer search, and the
//! neighbour-selection heuristic. Generic over how a distance is computed, so
//! the same code serves `f32` and `i8` traversal.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use crate::distance::{prepared_distance, Metric, ScalarQuantizer};
use crate::index::InternalFilter;

/// Cache lines of a vector prefetched ahead of its distance computation: the
/// whole row of a 384-d `f32` vector (measured best; see `docs/benchmarks.md`).
const PREFETCH_LINES: usize = 24;

/// The vectors and deleted flags of the points a graph links, wherever they
/// live: the in-memory point table or a sealed segment's mmap.
pub(crate) trait PointRows {
    /// The prepared `f32` vector of `node`.
    fn f32_row(&self, node: u32) -> &[f32];
    /// The `i8` copy of `node`'s vector, when the points are quantised.
    fn i8_row(&self, node: u32) -> Option<&[i8]>;
    /// Whether `node` was deleted (it still routes, but is never returned).
    fn is_deleted(&self, node: u32) -> bool;
    /// The exact distance from `query` to `node`, for rescoring the
    /// candidates of an `i8` traversal. Storage that should not map its `f32`
    /// rows (a cold segment) reads them another way.
    fn rescore_distance(&self, metric: Metric, query: &[f32], node: u32) -> f32 {
        prepared_distance(metric, query, self.f32_row(node))
    }
}

/// One query against one graph, the vector already prepared.
pub(crate) struct GraphQuery<'a> {
    pub(crate) metric: Metric,
    pub(crate) vector: &'a [f32],
    /// Traverse with `i8` distances when set (and the points have `i8` rows).
    pub(crate) quantizer: Option<&'a ScalarQuantizer>,
    pub(crate) ef: usize,
    pub(crate) filter: Option<InternalFilter<'a>>,
    /// End the walk as soon as it reaches this node (see [`search_layer`]).
    pub(crate) stop_at: Option<u32>,
}

/// Read access to a graph's neighbour lists, wherever they live: the mutable
/// in-memory arrays (`layout::GraphLinks`) or a sealed segment's mmap.
pub(crate) trait NeighborLists {
    /// Replaces `out` with `node`'s neighbours on `level`.
    fn neighbors_into(&self, node: u32, level: usize, out: &mut Vec<u32>);

    /// Hints that `node`'s layer-0 list is about to be read.
    fn prefetch_layer0(&self, _node: u32) {}
}

/// How many neighbours ahead of the one being scored have their vectors
/// prefetched. Measured on 384-d MiniLM vectors (`docs/benchmarks.md`): all
/// at once floods the memory system, one ahead leaves latency exposed.
const PREFETCH_AHEAD: usize = 3;

/// A node and its distance to the current query.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate {
    pub(crate) distance: f32,
    pub(crate) node: u32,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Candidate {}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Candidate {
    /// By distance, ties broken by node id so that searches are deterministic.
    fn cmp(&self, other: &Self) -> Ordering {
        self.distance
            .total_cmp(&other.distance)
            .then(self.node.cmp(&other.node))
    }
}

/// Marks which nodes a search has seen, reset in O(1) by bumping an epoch.
pub(crate) struct VisitedSet {
    marks: Vec<u16>,
    epoch: u16,
}

impl VisitedSet {
    fn new() -> Self {
        Self {
            marks: Vec::new(),
            epoch: 0,
        }
    }

    /// Forgets every mark and makes room for `capacity` nodes.
    fn reset(&mut self, capacity: usize) {
        if self.marks.len() < capacity {
            self.marks.resize(capacity, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.fill(0);
            self.epoch = 1;
        }
    }

    /// Marks `node`; true if it was not marked yet.
    #[inline]
    fn insert(&mut self, node: u32) -> bool {
        let mark = &mut self.marks[node as usize];
        let fresh = *mark != self.epoch;
        *mark = self.epoch;
        fresh
    }
}

/// Reusable buffers for one search, pooled by the index so that a query
/// allocates nothing once warm.
pub(crate) struct SearchScratch {
    visited: VisitedSet,
    candidates: BinaryHeap<Reverse<Candidate>>,
    /// The best `ef` accepted nodes so far, worst on top.
    pub(crate) results: BinaryHeap<Candidate>,
    neighbors: Vec<u32>,
    /// Buffers for the selection heuristic.
    pub(crate) pool: Vec<Candidate>,
    pub(crate) selected: Vec<Candidate>,
}

impl SearchScratch {
    pub(crate) fn new() -> Self {
        Self {
            visited: VisitedSet::new(),
            candidates: BinaryHeap::new(),
            results: BinaryHeap::new(),
            neighbors: Vec::new(),
            pool: Vec::new(),
            selected: Vec::new(),
        }
    }
}

/// Walks `level` greedily from `start` to the closest node it can reach.
pub(crate) fn greedy_closest(
    links: &impl NeighborLists,
    mut best: Candidate,
    level: usize,
    distance: &impl Fn(u32) -> f32,
    scratch: &mut SearchScratch,
) -> Candidate {
    loop {
        links.neighbors_into(best.node, level, &mut scratch.neighbors);
        let mut improved = false;
        for &node in &scratch.neighbors {
            let d = distance(node);
            if d < best.distance {
                best = Candidate { distance: d, node };
                improved = true;
            }
        }
        if !improved {
            return best;
        }
    }
}

/// Best-first search of one layer (HNSW paper, algorithm 2).
///
/// Every reachable node can be walked through, but only nodes for which
/// `accept` holds enter `scratch.results` (at most `ef` of them, worst on
/// top). That is how deleted and filtered-out points keep the graph navigable
/// without ever being returned: the search keeps walking through them.
///
/// With `stop_at`, the walk ends as soon as it reaches that node (entered in
/// the results if accepted): a findability check needs to know only whether
/// a walk gets there.
#[allow(clippy::too_many_arguments)]
pub(crate) fn search_layer(
    links: &impl NeighborLists,
    entries: &[Candidate],
    level: usize,
    ef: usize,
    capacity: usize,
    distance: &impl Fn(u32) -> f32,
    prefetch: &impl Fn(u32),
    accept: &impl Fn(u32) -> bool,
    stop_at: Option<u32>,
    scratch: &mut SearchScratch,
) {
    scratch.visited.reset(capacity);
    scratch.candidates.clear();
    scratch.results.clear();
    for &entry in entries {
        if !scratch.visited.insert(entry.node) {
            continue;
        }
        scratch.candidates.push(Reverse(entry));
        if accept(entry.node) {
            scratch.results.push(entry);
        }
    }
    while scratch.results.len() > ef {
        scratch.results.pop();
    }

    while let Some(Reverse(current)) = scratch.candidates.pop() {
        if scratch.results.len() >= ef {
            if let Some(worst) = scratch.results.peek() {
                if current.distance > worst.distance {
                    break;
                }
            }
        }
        links.neighbors_into(current.node, level, &mut scratch.neighbors);
        // Drop visited neighbours first, so that only vectors about to be read
        // are prefetched, then start all their loads before the first use.
        let visited = &mut scratch.visited;
        scratch.neighbors.retain(|&node| visited.insert(node));
        for &node in scratch.neighbors.iter().take(PREFETCH_AHEAD) {
            prefetch(node);
        }
        for i in 0..scratch.neighbors.len() {
            let node = scratch.neighbors[i];
            if let Some(&next) = scratch.neighbors.get(i + PREFETCH_AHEAD) {
                prefetch(next);
            }
            let d = distance(node);
            let full = scratch.results.len() >= ef;
            let worst = scratch.results.peek().map_or(f32::INFINITY, |w| w.distance);
            if !full || d < worst {
                let candidate = Candidate { distance: d, node };
                scratch.candidates.push(Reverse(candidate));
                if accept(node) {
                    scratch.results.push(candidate);
                    if scratch.results.len() > ef {
                        scratch.results.pop();
                    }
                }
            }
            if stop_at == Some(node) {
                return;
            }
        }
        // The next node to expand is known now: start loading its list.
        if let Some(Reverse(next)) = scratch.candidates.peek() {
            links.prefetch_layer0(next.node);
        }
    }
}

/// Fills `out` with `nodes` scored by `distance`, nearest first: the sorted
/// pool [`select_neighbors`] expects.
pub(crate) fn score_sorted(
    nodes: impl IntoIterator<Item = u32>,
    distance: impl Fn(u32) -> f32,
    out: &mut Vec<Candidate>,
) {
    out.clear();
    out.extend(nodes.into_iter().map(|node| Candidate {
        distance: distance(node),
        node,
    }));
    out.sort_unstable();
}

/// The neighbour-selection heuristic (HNSW paper, algorithm 4, without
/// extending candidates or keeping pruned ones — as hnswlib does).
///
/// `pool` must be sorted by ascending distance to the base node. A candidate is
/// kept only if it is closer to the base than to every candidate kept before
/// it, which spreads links over directions instead of one dense cluster.
pub(crate) fn select_neighbors(
    pool: &[Candidate],
    max_degree: usize,
    pair_distance: &impl Fn(u32, u32) -> f32,
    selected: &mut Vec<Candidate>,
) {
    selected.clear();
    for &candidate in pool {
        if selected.len() >= max_degree {
            break;
        }
        let diverse = selected
            .iter()
            .all(|kept| pair_distance(candidate.node, kept.node) > candidate.distance);
        if diverse {
            selected.push(candidate);
        }
    }
}

/// A whole query: greedy descent from `entry` (node, top level), a layer-0
/// search of width `ef`, and — when traversal used `i8` distances — exact
/// `f32` rescoring of every candidate. Returns live, filter-passing candidates
/// with exact distances, unsorted.
pub(crate) fn search_graph(
    links: &impl NeighborLists,
    points: &impl PointRows,
    entry: (u32, usize),
    capacity: usize,
    query: &GraphQuery<'_>,
    scratch: &mut SearchScratch,
) -> Vec<Candidate> {
    let accept = |node: u32| !points.is_deleted(node) && query.filter.is_none_or(|f| f(node));
    let exact = |node: u32| prepared_distance(query.metric, query.vector, points.f32_row(node));
    let prefetch_f32 = |node: u32| prefetch_slice(points.f32_row(node));
    let quantized = query.quantizer.filter(|_| points.i8_row(entry.0).is_some());
    match quantized {
        Some(quantizer) => {
            let query_i8 = quantizer.quantize(query.vector);
            let approx = |node: u32| {
                points
                    .i8_row(node)
                    .map_or(f32::INFINITY, |row| quantizer.distance(&query_i8, row))
            };
            let prefetch_i8 = |node: u32| {
                if let Some(row) = points.i8_row(node) {
                    prefetch_slice(row);
                }
            };
            descend_and_search(
                links,
                entry,
                capacity,
                query.ef,
                &approx,
                &prefetch_i8,
                &accept,
                query.stop_at,
                scratch,
            );
            // Rescore every traversal candidate exactly: i8 only ranks. Their
            // f32 rows are cold in cache: start every load first.
            for c in scratch.results.iter() {
                prefetch_f32(c.node);
            }
            scratch
                .results
                .drain()
                .map(|c| Candidate {
                    distance: points.rescore_distance(query.metric, query.vector, c.node),
                    node: c.node,
                })
                .collect()
        }
        None => {
            descend_and_search(
                links,
                entry,
                capacity,
                query.ef,
                &exact,
                &prefetch_f32,
                &accept,
                query.stop_at,
                scratch,
            );
            scratch.results.drain().collect()
        }
    }
}

/// Greedy descent through the upper layers from `entry` (node, top level),
/// then a layer-0 search of width `ef`; leaves the accepted candidates in
/// `scratch.results`. Generic (not `dyn`) so each distance is a direct call.
#[allow(clippy::too_many_arguments)]
fn descend_and_search(
    links: &impl NeighborLists,
    entry: (u32, usize),
    capacity: usize,
    ef: usize,
    distance: &impl Fn(u32) -> f32,
    prefetch: &impl Fn(u32),
    accept: &impl Fn(u32) -> bool,
    stop_at: Option<u32>,
    scratch: &mut SearchScratch,
) {
    let mut closest = Candidate {
        distance: distance(entry.0),
        node: entry.0,
    };
    for layer in (1..=entry.1).rev() {
        closest = greedy_closest(links, closest, layer, distance, scratch);
    }
    search_layer(
        links,
        &[closest],
        0,
        ef,
        capacity,
        distance,
        prefetch,
        accept,
        stop_at,
        scratch,
    );
}

/// Prefetches the start of `row` (up to [`PREFETCH_LINES`] cache lines).
#[inline]
fn prefetch_slice<T>(row: &[T]) {
    prefetch_row(row.as_ptr(), std::mem::size_of_val(row));
}

/// Asks the CPU to start loading the first `bytes` bytes at `ptr` (at most
/// [`PREFETCH_LINES`] cache lines); a hint only.
#[inline]
pub(crate) fn prefetch_row<T>(ptr: *const T, bytes: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        let lines = bytes.div_ceil(64).min(PREFETCH_LINES);
        for line in 0..lines {
            // SAFETY: prefetch never faults, whatever the address; SSE is part
            // of the x86_64 baseline. `wrapping_add` computes the address
            // without asserting it is in bounds.
            unsafe {
                std::arch::x86_64::_mm_prefetch(
                    (ptr as *const i8).wrapping_add(line * 64),
                    std::arch::x86_64::_MM_HINT_T0,
                );
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (ptr, bytes);
}

/// Which of a graph's first `nodes` slots a search can reach: every search
/// descends to layer 0 and walks it from where the descent ended, which
/// itself is reached from the entry point on layer 0, so a node that layer 0
/// does not connect to the entry point is never returned. Deleted nodes are
/// walked through, as searches do. The answer has one flag per slot.
pub(crate) fn reachable_on_layer0(
    links: &impl NeighborLists,
    nodes: usize,
    entry: Option<u32>,
) -> Vec<bool> {
    let mut reached = vec![false; nodes];
    let Some(entry) = entry.filter(|&e| (e as usize) < nodes) else {
        return reached;
    };
    reached[entry as usize] = true;
    let mut frontier = vec![entry];
    let mut neighbors = Vec::new();
    while let Some(node) = frontier.pop() {
        links.neighbors_into(node, 0, &mut neighbors);
        for &next in &neighbors {
            if let Some(flag) = reached.get_mut(next as usize) {
                if !*flag {
                    *flag = true;
                    frontier.push(next);
                }
            }
        }
    }
    reached
}
