//! Where cached entries live: a dense vector of entries, a hash index from
//! key to position, and three intrusive LRU queues threaded through the
//! entries by position. Every operation is O(1); nothing is ever scanned.
//!
//! Entries are kept dense (removal swaps the last entry into the hole and
//! re-points its neighbours and its index slot), so there are no vacant
//! slots to skip and no `Option` to unwrap.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

/// "No entry" in a link.
const NIL: u32 = u32::MAX;

/// The queue an entry sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Segment {
    /// The admission window: recent arrivals, in LRU order.
    Window,
    /// Main space, seen once there: the eviction candidates.
    Probation,
    /// Main space, requested again since entering it.
    Protected,
}

impl Segment {
    fn index(self) -> usize {
        match self {
            Segment::Window => 0,
            Segment::Probation => 1,
            Segment::Protected => 2,
        }
    }
}

/// One cached value and its bookkeeping.
#[derive(Debug)]
pub(super) struct Entry<K, V> {
    pub(super) key: K,
    pub(super) value: V,
    /// The key's hash, kept so the sketch can be asked about victims without
    /// rehashing their keys.
    pub(super) hash: u64,
    /// Bytes the entry is charged for.
    pub(super) weight: u64,
    pub(super) segment: Segment,
    /// Next older entry of the same queue.
    older: u32,
    /// Next newer entry of the same queue.
    newer: u32,
}

/// Both ends of a queue and what it holds.
#[derive(Debug, Clone, Copy)]
struct QueueEnds {
    /// Least recently used entry (evicted first).
    oldest: u32,
    /// Most recently used entry.
    newest: u32,
    weight: u64,
}

impl QueueEnds {
    const EMPTY: Self = Self {
        oldest: NIL,
        newest: NIL,
        weight: 0,
    };
}

/// Entries by key and by position, in three LRU queues.
#[derive(Debug)]
pub(super) struct EntryArena<K, V, S> {
    index: HashMap<K, u32, S>,
    entries: Vec<Entry<K, V>>,
    queues: [QueueEnds; 3],
}

impl<K, V, S> EntryArena<K, V, S>
where
    K: Hash + Eq + Clone,
    S: BuildHasher,
{
    pub(super) fn with_hasher(hasher: S) -> Self {
        Self {
            index: HashMap::with_hasher(hasher),
            entries: Vec::new(),
            queues: [QueueEnds::EMPTY; 3],
        }
    }

    /// The hash the sketch knows `key` by: the index's own hasher, so that a
    /// borrowed form of the key (`&str` for `String`) hashes the same.
    pub(super) fn hash_of<Q>(&self, key: &Q) -> u64
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.index.hasher().hash_one(key)
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Sum of all entries' weights.
    pub(super) fn weight(&self) -> u64 {
        self.queues.iter().map(|q| q.weight).sum()
    }

    pub(super) fn segment_weight(&self, segment: Segment) -> u64 {
        self.queues[segment.index()].weight
    }

    pub(super) fn find<Q>(&self, key: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.index.get(key).copied()
    }

    pub(super) fn entry(&self, slot: u32) -> &Entry<K, V> {
        &self.entries[slot as usize]
    }

    /// The least recently used entry of `segment`.
    pub(super) fn oldest(&self, segment: Segment) -> Option<u32> {
        Some(self.queues[segment.index()].oldest).filter(|&slot| slot != NIL)
    }

    /// The entry used just after `slot` in the same queue.
    pub(super) fn newer(&self, slot: u32) -> Option<u32> {
        Some(self.entry(slot).newer).filter(|&slot| slot != NIL)
    }

    /// Adds a new entry as the most recent of `segment`. The key must not be
    /// present (the caller looked it up first).
    pub(super) fn push(&mut self, key: K, value: V, hash: u64, weight: u64, segment: Segment) {
        debug_assert!(!self.index.contains_key(&key));
        let slot = self.entries.len() as u32;
        self.index.insert(key.clone(), slot);
        self.entries.push(Entry {
            key,
            value,
            hash,
            weight,
            segment,
            older: NIL,
            newer: NIL,
        });
        self.link_newest(slot, segment);
    }

    /// Replaces an entry's value and weight in place.
    pub(super) fn replace(&mut self, slot: u32, value: V, weight: u64) {
        let entry = &mut self.entries[slot as usize];
        let queue = &mut self.queues[entry.segment.index()];
        queue.weight = queue.weight - entry.weight + weight;
        entry.value = value;
        entry.weight = weight;
    }

    /// Makes `slot` the most recent entry of `segment` (its own or another).
    pub(super) fn move_to_newest(&mut self, slot: u32, segment: Segment) {
        self.unlink(slot);
        self.link_newest(slot, segment);
    }

    /// Makes `slot` the least recent entry of `segment`.
    pub(super) fn move_to_oldest(&mut self, slot: u32, segment: Segment) {
        self.unlink(slot);
        let queue = self.queues[segment.index()];
        {
            let entry = &mut self.entries[slot as usize];
            entry.segment = segment;
            entry.older = NIL;
            entry.newer = queue.oldest;
        }
        let weight = self.entry(slot).weight;
        if queue.oldest == NIL {
            self.queues[segment.index()].newest = slot;
        } else {
            self.entries[queue.oldest as usize].older = slot;
        }
        let queue = &mut self.queues[segment.index()];
        queue.oldest = slot;
        queue.weight += weight;
    }

    /// The most recently used entry of `segment`.
    pub(super) fn newest(&self, segment: Segment) -> Option<u32> {
        Some(self.queues[segment.index()].newest).filter(|&slot| slot != NIL)
    }

    /// Takes an entry out of the cache. The last entry moves into its
    /// position, so other positions the caller holds may be stale
    /// afterwards: pass them in `tracked` to have them updated.
    pub(super) fn remove(&mut self, slot: u32, tracked: &mut [u32]) -> Entry<K, V> {
        self.unlink(slot);
        let last = self.entries.len() as u32 - 1;
        if slot != last {
            self.relocate(last, slot);
            for position in tracked.iter_mut().filter(|p| **p == last) {
                *position = slot;
            }
        }
        let entry = self.entries.swap_remove(slot as usize);
        self.index.remove(&entry.key);
        entry
    }

    /// Removes every entry for which `keep` is false; returns how many.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) -> usize {
        let mut removed = 0;
        // Backwards: `remove` fills a hole with the last entry, which this
        // walk has already visited.
        for slot in (0..self.entries.len() as u32).rev() {
            let entry = self.entry(slot);
            if !keep(&entry.key, &entry.value) {
                self.remove(slot, &mut []);
                removed += 1;
            }
        }
        removed
    }

    pub(super) fn clear(&mut self) {
        self.index.clear();
        self.entries.clear();
        self.queues = [QueueEnds::EMPTY; 3];
    }

    /// Every entry, in storage order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Entry<K, V>> {
        self.entries.iter()
    }

    /// Points everything that referred to position `from` at `to`, where the
    /// entry is about to be moved by `swap_remove`.
    fn relocate(&mut self, from: u32, to: u32) {
        let (older, newer, segment) = {
            let entry = self.entry(from);
            (entry.older, entry.newer, entry.segment)
        };
        let queue = &mut self.queues[segment.index()];
        if older == NIL {
            queue.oldest = to;
        } else {
            self.entries[older as usize].newer = to;
        }
        let queue = &mut self.queues[segment.index()];
        if newer == NIL {
            queue.newest = to;
        } else {
            self.entries[newer as usize].older = to;
        }
        let key = &self.entries[from as usize].key;
        if let Some(position) = self.index.get_mut(key) {
            *position = to;
        }
    }

    fn unlink(&mut self, slot: u32) {
        let (older, newer, segment, weight) = {
            let entry = self.entry(slot);
            (entry.older, entry.newer, entry.segment, entry.weight)
        };
        if older == NIL {
            self.queues[segment.index()].oldest = newer;
        } else {
            self.entries[older as usize].newer = newer;
        }
        if newer == NIL {
            self.queues[segment.index()].newest = older;
        } else {
            self.entries[newer as usize].older = older;
        }
        self.queues[segment.index()].weight -= weight;
        let entry = &mut self.entries[slot as usize];
        entry.older = NIL;
        entry.newer = NIL;
    }

    fn link_newest(&mut self, slot: u32, segment: Segment) {
        let queue = self.queues[segment.index()];
        {
            let entry = &mut self.entries[slot as usize];
            entry.segment = segment;
            entry.older = queue.newest;
            entry.newer = NIL;
        }
        let weight = self.entry(slot).weight;
        if queue.newest == NIL {
            self.queues[segment.index()].oldest = slot;
        } else {
            self.entries[queue.newest as usize].newer = slot;
        }
        let queue = &mut self.queues[segment.index()];
        queue.newest = slot;
        queue.weight += weight;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::RandomState;

    fn arena() -> EntryArena<u32, &'static str, RandomState> {
        EntryArena::with_hasher(RandomState::new())
    }

    /// Keys of `segment` from oldest to newest, following the links.
    fn order(arena: &EntryArena<u32, &str, RandomState>, segment: Segment) -> Vec<u32> {
        let mut keys = Vec::new();
        let mut next = arena.oldest(segment);
        while let Some(slot) = next {
            keys.push(arena.entry(slot).key);
            next = arena.newer(slot);
        }
        keys
    }

    #[test]
    fn queues_keep_use_order_and_weights() {
        let mut a = arena();
        for k in 0..4 {
            a.push(k, "v", u64::from(k), 10 + u64::from(k), Segment::Window);
        }
        assert_eq!(order(&a, Segment::Window), [0, 1, 2, 3]);
        let one = a.find(&1).unwrap();
        a.move_to_newest(one, Segment::Window);
        assert_eq!(order(&a, Segment::Window), [0, 2, 3, 1]);
        let two = a.find(&2).unwrap();
        a.move_to_newest(two, Segment::Protected);
        assert_eq!(order(&a, Segment::Window), [0, 3, 1]);
        assert_eq!(order(&a, Segment::Protected), [2]);
        assert_eq!(a.segment_weight(Segment::Window), 10 + 13 + 11);
        assert_eq!(a.segment_weight(Segment::Protected), 12);
        assert_eq!(a.weight(), 46);
    }

    #[test]
    fn removal_moves_the_last_entry_without_breaking_links_or_index() {
        let mut a = arena();
        for k in 0..6 {
            let segment = if k % 2 == 0 {
                Segment::Window
            } else {
                Segment::Probation
            };
            a.push(k, "v", 0, 1, segment);
        }
        // Key 5 is stored last; removing key 0 moves it into slot 0.
        let mut five = [a.find(&5).unwrap()];
        let removed = a.remove(a.find(&0).unwrap(), &mut five);
        assert_eq!(removed.key, 0);
        assert_eq!(a.entry(five[0]).key, 5, "tracked position follows the move");
        assert_eq!(order(&a, Segment::Window), [2, 4]);
        assert_eq!(order(&a, Segment::Probation), [1, 3, 5]);
        for k in 1..6 {
            assert_eq!(a.entry(a.find(&k).unwrap()).key, k);
        }
        assert_eq!(a.find(&0), None);
        assert_eq!(a.len(), 5);
        assert_eq!(a.weight(), 5);
    }

    #[test]
    fn retain_removes_exactly_the_rejected_entries() {
        let mut a = arena();
        for k in 0..100 {
            a.push(k, "v", 0, 1, Segment::Probation);
        }
        assert_eq!(a.retain(|k, _| k % 3 != 0), 34);
        assert_eq!(a.len(), 66);
        assert_eq!(
            order(&a, Segment::Probation),
            (0..100).filter(|k| k % 3 != 0).collect::<Vec<_>>()
        );
    }
}
