//! [`AdaptiveCache`]: a byte-bounded cache with W-TinyLFU admission and
//! eviction, whose window size is tuned online by hill climbing.
//!
//! The capacity is split in two:
//!
//! - the **admission window**, a small LRU that every new entry enters. It
//!   lets entries requested in a burst earn their hits before they are
//!   judged;
//! - the **main space**, a segmented LRU: *probation* holds entries not
//!   requested since they entered main, *protected* (up to 80 % of main)
//!   those requested again. A hit in probation promotes to protected; the
//!   protected overflow is demoted back to probation's recent end.
//!
//! When the window overflows, its least recent entries become *candidates*
//! for main. If the cache is over capacity, each candidate meets the
//! victims main would give up to make room for it (probation's least recent
//! entries): it is admitted only if the [`FrequencySketch`] says it was
//! requested more often than all of them together, otherwise it is dropped.
//! A burst of one-hit keys therefore passes through the window without
//! displacing the popular entries in main (scan resistance).
//!
//! The hill climber (`climber.rs`) moves the window/main split after every
//! sample of requests in the direction that raised the hit ratio, so
//! recency-biased workloads get a large window and frequency-biased ones a
//! small one. It also reports a *collapse* of the hit ratio; if the keys
//! missing then are ones requested before (the popular set moved, rather
//! than a scan passing through), the cache forgets what it learned: it
//! clears the sketch and demotes every protected entry to probation.

use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};

use parking_lot::Mutex;

use super::arena::{EntryArena, Segment};
use super::climber::HillClimber;
use super::sketch::FrequencySketch;
use super::stats::CacheStats;

/// Share of the capacity the window starts with.
const INITIAL_WINDOW_PERCENT: u64 = 1;
/// Share of the main space the protected segment may fill.
const PROTECTED_PERCENT: u64 = 80;
/// Entries the sketch is first sized for when the capacity allows more:
/// with byte weights the entry count is unknown until entries arrive, and
/// the sketch grows with it.
const INITIAL_SKETCH_ENTRIES: u64 = 4096;
/// Requests per climber sample, per entry the cache holds when full
/// (Caffeine's choice)...
const CLIMBER_SAMPLE_PER_ENTRY: u64 = 10;
/// ... but at least this many: the difference of two samples' hit ratios
/// then has a standard error of at most 0.55 points, small enough that a
/// small cache's climber is not steered by chance (with 5,000-request
/// samples a 0.5 %-of-keys cache's window drifted to half the cache on the
/// shifting benchmark trace).
const MIN_CLIMBER_SAMPLE: u64 = 16_384;
/// Fewest requests in a collapse probe: a 5-point drop of the hit ratio
/// over 4096 requests is at least 6 standard errors, never noise.
const MIN_PROBE_REQUESTS: u64 = 4096;
/// A collapse makes the cache forget only if at least this share of recent
/// newcomers had been requested before: keys keep coming back, so the
/// popular set changed. A collapse made of first-time keys is a scan, and
/// nothing learned is stale.
const RETURNING_NEWCOMERS_TO_FORGET: f64 = 0.15;
/// Most victims weighed against one candidate; a candidate that needs more
/// room than that many victims free is refused, which bounds the work of
/// one insert.
const MAX_VICTIMS_PER_CANDIDATE: usize = 64;
/// Most entries moved between segments when the climber resizes the window;
/// any remaining difference is settled by later inserts and hits.
const MAX_TRANSFERS_PER_RESIZE: usize = 1024;

/// A thread-safe cache holding at most `capacity` bytes, with admission and
/// eviction driven by learned access frequencies (W-TinyLFU) and a window
/// size adapted to the workload by hill climbing.
///
/// Each entry is inserted with a weight, the bytes it is charged for; the
/// sum of the weights never exceeds the capacity once a call returns. Values
/// are cloned out on `get`, so store cheap handles (`Arc<T>`). Keys are
/// stored twice (in the hash index and next to the value), so prefer compact
/// keys (an id, or a fixed-size hash of a query).
///
/// Every method takes one internal lock for the duration of the call (the
/// `state` field documents what it guards).
///
/// Bookkeeping is not charged against the capacity: per entry, roughly 100
/// bytes (the entry record, its index slot, 16–32 bytes of frequency sketch
/// and as much doorkeeper) plus the key a second time.
///
/// The hasher `S` keys the hash index and the frequency sketch. The default,
/// [`RandomState`], is seeded per cache, so that nobody can choose keys that
/// collide in the sketch and make themselves look popular; a fixed hasher
/// makes a run reproducible (benchmarks and tests use one).
pub struct AdaptiveCache<K, V, S = RandomState> {
    /// Bytes the cache may hold.
    capacity: u64,
    /// Guards all mutable state: entries, queues, sketch, climber and
    /// counters. `get` takes it too, because a hit reorders the queues and
    /// counts in the sketch. It is the only lock, held for the whole call
    /// and never while calling user code other than `Hash`/`Eq`/`Clone` of
    /// keys and values and the `retain` predicate.
    state: Mutex<CacheState<K, V, S>>,
}

/// Everything behind the lock.
struct CacheState<K, V, S> {
    entries: EntryArena<K, V, S>,
    sketch: FrequencySketch,
    climber: HillClimber,
    /// Bytes the window may hold; the rest of the capacity is main space.
    window_max: u64,
    /// Bytes the protected segment may hold.
    protected_max: u64,
    /// Whether the cache has been full. The climber judges only a full
    /// cache: while it fills, the hit ratio rises whatever the window size.
    warmed: bool,
    stats: CacheStats,
    /// Reused buffer of victim positions for admission contests.
    victims: Vec<u32>,
    /// Collapses of the hit ratio that made the cache forget.
    workload_changes: u64,
    /// New keys inserted during the climber's current probe, and how many
    /// of them the sketch had seen before. Returning newcomers are keys that
    /// keep being requested yet are not cached (stale frequencies keep them
    /// out); during a scan of one-hit keys there are none.
    probe_newcomers: u64,
    probe_returning: u64,
}

impl<K, V> AdaptiveCache<K, V, RandomState>
where
    K: Hash + Eq + Clone,
    V: Clone,
{
    /// An empty cache that holds at most `capacity_bytes` bytes of entries.
    /// A capacity of 0 gives a cache that stores nothing.
    pub fn new(capacity_bytes: u64) -> Self {
        Self::with_hasher(capacity_bytes, RandomState::new())
    }
}

impl<K, V, S> AdaptiveCache<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    /// An empty cache of `capacity_bytes` bytes that hashes keys with
    /// `hasher` (for the index and the frequency sketch).
    pub fn with_hasher(capacity_bytes: u64, hasher: S) -> Self {
        let window_max = capacity_bytes * INITIAL_WINDOW_PERCENT / 100;
        let sketch_entries = capacity_bytes.clamp(1, INITIAL_SKETCH_ENTRIES) as usize;
        let state = CacheState {
            entries: EntryArena::with_hasher(hasher),
            sketch: FrequencySketch::new(sketch_entries),
            climber: HillClimber::new(capacity_bytes),
            window_max,
            protected_max: protected_max(capacity_bytes, window_max),
            warmed: false,
            stats: CacheStats::default(),
            victims: Vec::with_capacity(MAX_VICTIMS_PER_CANDIDATE),
            workload_changes: 0,
            probe_newcomers: 0,
            probe_returning: 0,
        };
        Self {
            capacity: capacity_bytes,
            state: Mutex::new(state),
        }
    }

    /// The cached value of `key`, counting a hit or a miss. A hit also
    /// counts as a request of `key` for the frequency sketch and refreshes
    /// the entry's recency.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut state = self.state.lock();
        let value = match state.entries.find(key) {
            Some(slot) => {
                let hash = state.entries.entry(slot).hash;
                state.sketch.increment(hash);
                state.on_access(slot);
                Some(state.entries.entry(slot).value.clone())
            }
            None => None,
        };
        state.record_request(value.is_some(), self.capacity);
        value
    }

    /// The cached value of `key` without counting a request: no statistics,
    /// recency or frequency change (for the engine's own bookkeeping reads,
    /// which are not demand).
    pub fn peek<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let state = self.state.lock();
        state
            .entries
            .find(key)
            .map(|slot| state.entries.entry(slot).value.clone())
    }

    /// Whether `key` is cached. Unlike [`get`](Self::get) this is not a
    /// request: no statistics, recency or frequency change.
    pub fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.state.lock().entries.find(key).is_some()
    }

    /// Caches `value` under `key`, charged `weight` bytes (0 is charged as
    /// 1, so that every entry counts against the capacity). Replaces any
    /// value cached under `key`.
    ///
    /// The call counts as a request of `key` for the frequency sketch. A new
    /// entry enters the admission window; whether it reaches the main space
    /// is decided when it leaves the window. Entries heavier than the whole
    /// capacity are refused (and a value previously cached under `key` is
    /// removed, since it is stale).
    pub fn insert(&self, key: K, value: V, weight: u64) {
        let weight = weight.max(1);
        let mut state = self.state.lock();
        if weight > self.capacity {
            if let Some(slot) = state.entries.find(&key) {
                state.entries.remove(slot, &mut []);
            }
            state.stats.rejected += 1;
            return;
        }
        let hash = state.entries.hash_of(&key);
        let seen_before = state.sketch.frequency(hash) > 0;
        state.sketch.increment(hash);
        match state.entries.find(&key) {
            Some(slot) => {
                state.entries.replace(slot, value, weight);
                state.on_access(slot);
            }
            None => {
                state
                    .entries
                    .push(key, value, hash, weight, Segment::Window);
                state.stats.insertions += 1;
                state.note_newcomer(seen_before);
                state.grow_sketch_if_needed(self.capacity);
            }
        }
        state.evict(self.capacity);
    }

    /// Removes `key`, returning its value if it was cached.
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut state = self.state.lock();
        let slot = state.entries.find(key)?;
        Some(state.entries.remove(slot, &mut []).value)
    }

    /// Removes every entry for which `keep` returns false; returns how many
    /// were removed. Visits every entry (O(len)) under the lock: meant for
    /// invalidation, not for the request path.
    pub fn retain(&self, keep: impl FnMut(&K, &V) -> bool) -> usize {
        self.state.lock().entries.retain(keep)
    }

    /// Removes every entry. Statistics and the learned frequencies are kept:
    /// they describe the workload, not the contents.
    pub fn clear(&self) {
        let mut state = self.state.lock();
        state.entries.clear();
        state.climber.reset_sample();
    }

    /// Number of cached entries.
    pub fn len(&self) -> usize {
        self.state.lock().entries.len()
    }

    /// Whether the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sum of the weights of the cached entries, in bytes; never more than
    /// [`capacity`](Self::capacity).
    pub fn weighted_size(&self) -> u64 {
        self.state.lock().entries.weight()
    }

    /// Bytes the cache may hold.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Bytes the admission window may currently hold, as last set by hill
    /// climbing (for metrics and tuning).
    pub fn window_capacity(&self) -> u64 {
        self.state.lock().window_max
    }

    /// Counters since the cache was created.
    pub fn stats(&self) -> CacheStats {
        self.state.lock().stats
    }
}

impl<K, V, S> CacheState<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    /// Counts a `get` and lets the climber resize the window at the end of a
    /// sample.
    fn record_request(&mut self, hit: bool, capacity: u64) {
        if hit {
            self.stats.hits += 1;
        } else {
            self.stats.misses += 1;
        }
        if !self.warmed {
            return;
        }
        let sample_size =
            (self.sketch.entries() as u64 * CLIMBER_SAMPLE_PER_ENTRY).max(MIN_CLIMBER_SAMPLE);
        let decision = self.climber.record(hit, sample_size, self.probe_size());
        if let Some(adjustment) = decision {
            if adjustment.collapsed
                && self.probe_returning as f64
                    >= self.probe_newcomers as f64 * RETURNING_NEWCOMERS_TO_FORGET
            {
                self.forget_workload();
            }
            self.resize_window(adjustment.window_change, capacity);
        }
        if self.climber.probe_is_empty() {
            self.probe_newcomers = 0;
            self.probe_returning = 0;
        }
    }

    /// Requests in a collapse probe.
    fn probe_size(&self) -> u64 {
        (self.sketch.entries() as u64).max(MIN_PROBE_REQUESTS)
    }

    /// Counts a new key's arrival for the current probe.
    fn note_newcomer(&mut self, seen_before: bool) {
        self.probe_newcomers += 1;
        self.probe_returning += u64::from(seen_before);
    }

    /// The hit ratio collapsed: the popular keys changed, and what the cache
    /// learned about the old ones would keep the new ones out of main for
    /// many ageing periods (their counts saturated at 15, and protected
    /// entries are only displaced by promotions). Forget the frequencies and
    /// demote every protected entry to probation's least recent end, where
    /// newcomers meet them first. O(protected entries), once per collapse.
    fn forget_workload(&mut self) {
        self.workload_changes += 1;
        self.sketch.clear();
        while let Some(newest) = self.entries.newest(Segment::Protected) {
            self.entries.move_to_oldest(newest, Segment::Probation);
        }
    }

    /// Recency bookkeeping of a hit or an update.
    fn on_access(&mut self, slot: u32) {
        match self.entries.entry(slot).segment {
            Segment::Window => self.entries.move_to_newest(slot, Segment::Window),
            Segment::Probation => {
                self.entries.move_to_newest(slot, Segment::Protected);
                self.demote_protected_overflow(usize::MAX);
            }
            Segment::Protected => self.entries.move_to_newest(slot, Segment::Protected),
        }
    }

    /// Moves the protected segment's least recent entries back to probation
    /// until it fits its share (or `limit` entries were moved).
    fn demote_protected_overflow(&mut self, limit: usize) {
        let mut moved = 0;
        while self.entries.segment_weight(Segment::Protected) > self.protected_max && moved < limit
        {
            let Some(oldest) = self.entries.oldest(Segment::Protected) else {
                break;
            };
            self.entries.move_to_newest(oldest, Segment::Probation);
            moved += 1;
        }
    }

    /// Applies a climber decision: the window grows (or shrinks) by `change`
    /// bytes, main shrinks (or grows) by as much.
    fn resize_window(&mut self, change: i64, capacity: u64) {
        let window = self.window_max.min(i64::MAX as u64) as i64;
        let limit = capacity.min(i64::MAX as u64) as i64;
        self.window_max = window.saturating_add(change).clamp(0, limit) as u64;
        self.protected_max = protected_max(capacity, self.window_max);
        // A smaller window hands its least recent entries to main without a
        // contest: they were admitted under the old split.
        let mut moved = 0;
        while self.entries.segment_weight(Segment::Window) > self.window_max
            && moved < MAX_TRANSFERS_PER_RESIZE
        {
            let Some(oldest) = self.entries.oldest(Segment::Window) else {
                break;
            };
            self.entries.move_to_newest(oldest, Segment::Probation);
            moved += 1;
        }
        // A larger window leaves less room in main: protected gives up its
        // overflow to probation, where the next evictions find it.
        self.demote_protected_overflow(MAX_TRANSFERS_PER_RESIZE);
    }

    /// Brings the cache back within `capacity`: the window's overflow
    /// becomes candidates for main, each candidate meets the victims it
    /// would displace, and whatever remains over capacity is evicted from
    /// the least valuable end (probation, then protected, then the window).
    fn evict(&mut self, capacity: u64) {
        // The window's least recent entries join probation's recent end, in
        // order; the first one moved is the oldest candidate.
        let mut candidate = None;
        while self.entries.segment_weight(Segment::Window) > self.window_max {
            let Some(oldest) = self.entries.oldest(Segment::Window) else {
                break;
            };
            self.entries.move_to_newest(oldest, Segment::Probation);
            candidate.get_or_insert(oldest);
        }

        while self.entries.weight() > capacity {
            self.warmed = true;
            if let Some(slot) = candidate {
                candidate = self.contest(slot, capacity);
                continue;
            }
            let victim = self
                .entries
                .oldest(Segment::Probation)
                .or_else(|| self.entries.oldest(Segment::Protected))
                .or_else(|| self.entries.oldest(Segment::Window));
            let Some(victim) = victim else {
                break;
            };
            self.entries.remove(victim, &mut []);
            self.stats.evictions += 1;
        }
    }

    /// TinyLFU admission of the candidate at `slot` (in probation, newer
    /// than every main entry it may displace): it stays, and its victims
    /// go, if it was requested more often than the victims together;
    /// otherwise it goes. Returns the next candidate (the next newer entry
    /// in probation), if any.
    fn contest(&mut self, slot: u32, capacity: u64) -> Option<u32> {
        let candidate = self.entries.entry(slot);
        let needed = (self.entries.weight() - capacity).min(candidate.weight);
        let candidate_frequency = u32::from(self.sketch.frequency(candidate.hash));

        // Victims: probation from its least recent end up to the candidate,
        // then protected from its least recent end, until they free enough.
        self.victims.clear();
        let mut freed = 0;
        let mut victims_frequency = 0u32;
        let mut next = self.entries.oldest(Segment::Probation);
        let mut in_protected = false;
        while freed < needed
            && victims_frequency < candidate_frequency
            && self.victims.len() < MAX_VICTIMS_PER_CANDIDATE
        {
            let victim = match next {
                Some(victim) if victim != slot => victim,
                _ if !in_protected => {
                    in_protected = true;
                    next = self.entries.oldest(Segment::Protected);
                    continue;
                }
                _ => break,
            };
            let entry = self.entries.entry(victim);
            freed += entry.weight;
            victims_frequency += u32::from(self.sketch.frequency(entry.hash));
            self.victims.push(victim);
            next = self.entries.newer(victim);
        }

        if freed >= needed && candidate_frequency > victims_frequency {
            // Highest positions first: a removal moves the last entry into
            // the hole, and the last entry is then never a pending victim.
            let mut victims = std::mem::take(&mut self.victims);
            victims.sort_unstable_by(|a, b| b.cmp(a));
            let mut tracked = [slot];
            for &victim in &victims {
                self.entries.remove(victim, &mut tracked);
                self.stats.evictions += 1;
            }
            // Hand the buffer back, so its allocation is reused.
            self.victims = victims;
            self.entries.newer(tracked[0])
        } else {
            let mut tracked = [self.entries.newer(slot).unwrap_or(u32::MAX)];
            self.entries.remove(slot, &mut tracked);
            self.stats.rejected += 1;
            Some(tracked[0]).filter(|&next| next != u32::MAX)
        }
    }

    /// Resizes the sketch when the cache holds more entries than it was
    /// sized for, carrying the resident entries' estimates over (the rest of
    /// the history is lost, as with an ageing step).
    fn grow_sketch_if_needed(&mut self, capacity: u64) {
        let len = self.entries.len();
        if len <= self.sketch.entries() {
            return;
        }
        // Size for the entries the cache will hold when full at the current
        // mean weight, and at least double, so growth happens O(log n) times.
        let weight = self.entries.weight().max(1);
        let when_full = u128::from(capacity) * len as u128 / u128::from(weight);
        let target = (when_full as u64)
            .max(len as u64 * 2)
            .min(capacity)
            .max(len as u64);
        let mut grown = FrequencySketch::new(target as usize);
        for entry in self.entries.iter() {
            grown.seed(entry.hash, self.sketch.frequency(entry.hash));
        }
        self.sketch = grown;
    }
}

/// The protected segment's share of the main space.
fn protected_max(capacity: u64, window_max: u64) -> u64 {
    (capacity - window_max) / 100 * PROTECTED_PERCENT
        + (capacity - window_max) % 100 * PROTECTED_PERCENT / 100
}

impl<K, V, S> fmt::Debug for AdaptiveCache<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.lock();
        f.debug_struct("AdaptiveCache")
            .field("capacity", &self.capacity)
            .field("window_max", &state.window_max)
            .field("protected_max", &state.protected_max)
            .field("stats", &state.stats)
            .field("workload_changes", &state.workload_changes)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;
    use std::collections::{HashMap, VecDeque};
    use std::hash::BuildHasherDefault;
    use std::sync::Arc;

    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A fixed hasher, so that every run sees the same sketch collisions.
    type Fixed = BuildHasherDefault<DefaultHasher>;

    fn cache<V: Clone>(capacity: u64) -> AdaptiveCache<u64, V, Fixed> {
        AdaptiveCache::with_hasher(capacity, Fixed::default())
    }

    /// A read that fills the cache on a miss, as callers use it; returns
    /// whether it hit.
    fn request(cache: &AdaptiveCache<u64, u64, Fixed>, key: u64) -> bool {
        let hit = cache.get(&key).is_some();
        if !hit {
            cache.insert(key, key, 1);
        }
        hit
    }

    fn set_window(cache: &AdaptiveCache<u64, u64, Fixed>, window: u64) {
        let mut state = cache.state.lock();
        state.window_max = window;
        state.protected_max = protected_max(cache.capacity, window);
    }

    /// Draws ranks `0..n` with P(r) ∝ 1/(r+1).
    fn zipf_sampler(n: usize) -> impl FnMut(&mut ChaCha8Rng) -> u64 {
        let mut total = 0.0;
        let cumulative: Vec<f64> = (1..=n)
            .map(|r| {
                total += 1.0 / r as f64;
                total
            })
            .collect();
        move |rng| {
            let target = rng.random::<f64>() * total;
            cumulative.partition_point(|&c| c <= target) as u64
        }
    }

    #[test]
    fn never_holds_more_than_its_capacity_under_random_weighted_inserts() {
        let capacity = 10_000;
        let cache = cache::<u64>(capacity);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut latest = HashMap::new();
        for step in 0..50_000u64 {
            let key = rng.random_range(0..2_000);
            match rng.random_range(0..10) {
                0..=5 => {
                    // Weights from 0 (charged as 1) to 700 bytes.
                    cache.insert(key, step, rng.random_range(0..=700));
                    latest.insert(key, step);
                }
                6..=8 => {
                    if let Some(value) = cache.get(&key) {
                        assert_eq!(Some(&value), latest.get(&key), "stale value for {key}");
                    }
                }
                _ => {
                    cache.remove(&key);
                }
            }
            assert!(cache.weighted_size() <= capacity, "step {step}");
        }
        let state = cache.state.lock();
        let total: u64 = state.entries.iter().map(|e| e.weight).sum();
        assert_eq!(total, state.entries.weight(), "queue weights add up");
        assert!(total > capacity / 2, "the cache is in use: {total}");
    }

    #[test]
    fn frequently_read_keys_survive_a_scan_of_one_hit_keys() {
        let cache = cache::<u64>(100);
        let hot = 0..20u64;
        for _ in 0..5 {
            for key in hot.clone() {
                request(&cache, key);
            }
        }
        // Plain LRU of the same size, fed the same requests.
        let mut lru: VecDeque<u64> = hot.clone().collect();
        for key in 1_000..11_000u64 {
            request(&cache, key);
            lru.push_back(key);
            if lru.len() > 100 {
                lru.pop_front();
            }
        }
        for key in hot {
            assert!(
                cache.contains(&key),
                "hot key {key} was evicted by the scan"
            );
            assert!(!lru.contains(&key), "LRU would have kept {key} too");
        }
    }

    #[test]
    fn admission_rejects_a_cold_candidate_against_a_hot_victim() {
        let cache = cache::<u64>(100);
        // Every cached key has been requested five times.
        for _ in 0..5 {
            for key in 0..100 {
                request(&cache, key);
            }
        }
        request(&cache, 1_000);
        let before = cache.stats();
        // Key 1,000, requested once, leaves the window when 1,001 arrives and
        // meets a victim requested five times: refused.
        request(&cache, 1_001);
        assert!(!cache.contains(&1_000));
        assert!(cache.contains(&1_001), "the newcomer is in the window");
        assert_eq!(cache.stats().rejected, before.rejected + 1);
        assert_eq!(cache.stats().evictions, before.evictions);
        assert_eq!(cache.len(), 100);
    }

    #[test]
    fn admission_admits_a_candidate_hotter_than_the_victim() {
        let cache = cache::<u64>(100);
        for key in 0..100 {
            request(&cache, key);
        }
        // Key 500 is requested twice while in the window, then pushed out of
        // it by another newcomer: with two requests it beats main's least
        // recent entry, which was requested once.
        request(&cache, 500);
        assert!(request(&cache, 500), "hit in the window");
        let before = cache.stats();
        request(&cache, 501);
        assert!(cache.contains(&500));
        assert_eq!(cache.stats().evictions, before.evictions + 1);
        assert_eq!(cache.stats().rejected, before.rejected);
        assert_eq!(cache.len(), 100);
    }

    #[test]
    fn hill_climbing_grows_the_window_on_a_recency_biased_trace() {
        // Keys arrive one every three requests and are requested again only
        // while they are among the 400 newest: recency is everything, and
        // frequency says nothing (every key ends up requested ~3 times).
        let cache = cache::<u64>(1_000);
        let initial = cache.window_capacity();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut newest = 400u64;
        for step in 0..400_000u64 {
            if step % 3 == 0 {
                newest += 1;
            }
            request(&cache, newest - rng.random_range(0..400));
        }
        let window = cache.window_capacity();
        assert!(window >= initial + 200, "window {initial} -> {window}");
    }

    #[test]
    fn hill_climbing_shrinks_the_window_on_a_frequency_biased_trace() {
        // Half the requests go to a stable set of 900 keys, half to keys
        // never seen again: a cache that gives most of its room to the
        // frequency-guarded main space keeps the whole set.
        let cache = cache::<u64>(1_000);
        set_window(&cache, 500);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut one_hit = 1_000_000u64;
        for _ in 0..400_000 {
            if rng.random_bool(0.5) {
                request(&cache, rng.random_range(0..900));
            } else {
                one_hit += 1;
                request(&cache, one_hit);
            }
        }
        let window = cache.window_capacity();
        assert!(window <= 250, "window 500 -> {window}");
    }

    #[test]
    fn a_shift_of_the_popular_keys_makes_the_cache_forget_and_recover() {
        let cache = cache::<u64>(1_000);
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut zipf = zipf_sampler(50_000);
        let phase = |cache: &AdaptiveCache<u64, u64, Fixed>,
                     rng: &mut ChaCha8Rng,
                     zipf: &mut dyn FnMut(&mut ChaCha8Rng) -> u64,
                     offset: u64| {
            let mut hits = 0;
            for i in 0..200_000 {
                let hit = request(cache, zipf(rng) + offset);
                if i >= 150_000 && hit {
                    hits += 1;
                }
            }
            hits as f64 / 50_000.0
        };
        let settled = phase(&cache, &mut rng, &mut zipf, 0);
        assert_eq!(
            cache.state.lock().workload_changes,
            0,
            "a stable workload is no change"
        );
        // The same popularity law over other keys.
        let shifted = phase(&cache, &mut rng, &mut zipf, 1_000_000);
        assert!(cache.state.lock().workload_changes >= 1);
        assert!(
            shifted >= settled - 0.02,
            "hit ratio at the end of the second phase {shifted:.3}, of the first {settled:.3}"
        );
    }

    #[test]
    fn a_scan_is_not_mistaken_for_a_workload_change() {
        let cache = cache::<u64>(1_000);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut zipf = zipf_sampler(50_000);
        for _ in 0..200_000 {
            let key = zipf(&mut rng);
            request(&cache, key);
        }
        // The hit ratio collapses during a long scan, but the keys never
        // come back: nothing learned about the popular keys is stale.
        for key in 1_000_000..1_050_000 {
            request(&cache, key);
        }
        assert_eq!(cache.state.lock().workload_changes, 0);
        for key in 0..10 {
            assert!(cache.contains(&key), "popular key {key} lost to the scan");
        }
    }

    #[test]
    fn remove_and_retain_really_remove() {
        let cache = cache::<u64>(1_000);
        for key in 0..100 {
            cache.insert(key, key * 10, 5);
        }
        assert_eq!(cache.remove(&7), Some(70));
        assert_eq!(cache.remove(&7), None);
        assert_eq!(cache.get(&7), None);
        assert_eq!(cache.retain(|key, _| key % 2 == 0), 49);
        assert_eq!(cache.len(), 50);
        assert_eq!(cache.weighted_size(), 250);
        for key in 0..100 {
            assert_eq!(cache.contains(&key), key % 2 == 0 && key != 7, "{key}");
        }
        cache.clear();
        assert!(cache.is_empty());
        assert_eq!(cache.weighted_size(), 0);
        assert_eq!(cache.get(&0), None);
    }

    #[test]
    fn stats_count_hits_misses_and_insertions() {
        let cache = cache::<u64>(100);
        assert_eq!(cache.get(&1), None);
        cache.insert(1, 10, 1);
        cache.insert(1, 11, 1); // an update, not an insertion
        assert_eq!(cache.get(&1), Some(11));
        assert_eq!(cache.get(&1), Some(11));
        assert_eq!(cache.get(&2), None);
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses, stats.insertions), (2, 2, 1));
        assert_eq!(stats.hit_ratio(), 0.5);
        // `contains` and `peek` are not requests.
        assert!(cache.contains(&1));
        assert_eq!(cache.peek(&1), Some(11));
        assert_eq!(cache.peek(&2), None);
        assert_eq!(cache.stats().requests(), 4);
    }

    #[test]
    fn an_entry_heavier_than_the_capacity_is_rejected_and_drops_the_stale_value() {
        let cache = cache::<u64>(1_000);
        cache.insert(1, 1, 10);
        cache.insert(1, 2, 1_001);
        assert_eq!(cache.get(&1), None, "the old value is stale");
        assert_eq!(cache.stats().rejected, 1);
        assert_eq!(cache.weighted_size(), 0);
        cache.insert(2, 2, 1_000);
        assert_eq!(
            cache.get(&2),
            Some(2),
            "an entry of exactly the capacity fits"
        );
    }

    #[test]
    fn updates_replace_the_value_and_the_weight() {
        let cache = cache::<u64>(100);
        cache.insert(1, 1, 10);
        cache.insert(1, 2, 30);
        assert_eq!(cache.get(&1), Some(2));
        assert_eq!(cache.weighted_size(), 30);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_zero_capacity_cache_stores_nothing() {
        let cache = cache::<u64>(0);
        cache.insert(1, 1, 1);
        assert!(cache.is_empty());
        assert_eq!(cache.get(&1), None);
    }

    #[test]
    fn borrowed_keys_find_owned_ones() {
        let cache: AdaptiveCache<String, Arc<str>> = AdaptiveCache::new(1 << 20);
        cache.insert("query-7".to_string(), Arc::from("result"), 64);
        assert_eq!(cache.get("query-7").as_deref(), Some("result"));
        assert_eq!(cache.remove("query-7").as_deref(), Some("result"));
    }

    #[test]
    fn concurrent_use_keeps_the_byte_bound() {
        let cache = Arc::new(cache::<u64>(5_000));
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let cache = Arc::clone(&cache);
                std::thread::spawn(move || {
                    let mut rng = ChaCha8Rng::seed_from_u64(t);
                    for _ in 0..20_000 {
                        let key = rng.random_range(0..3_000u64);
                        if cache.get(&key).is_none() {
                            cache.insert(key, key, rng.random_range(1..=50));
                        }
                        assert!(cache.weighted_size() <= 5_000);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("worker panicked");
        }
        let stats = cache.stats();
        assert_eq!(stats.requests(), 80_000);
        assert!(stats.hits > 0);
    }
}
