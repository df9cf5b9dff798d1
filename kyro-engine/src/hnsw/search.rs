//! The graph walks: greedy descent, best-first layer search, and the
//! neighbour-selection heuristic. Generic over how a distance is computed, so
//! the same code serves `f32` and `i8` traversal.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use super::layout::GraphLinks;

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
    links: &GraphLinks,
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
#[allow(clippy::too_many_arguments)]
pub(crate) fn search_layer(
    links: &GraphLinks,
    entries: &[Candidate],
    level: usize,
    ef: usize,
    capacity: usize,
    distance: &impl Fn(u32) -> f32,
    prefetch: &impl Fn(u32),
    accept: &impl Fn(u32) -> bool,
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
