//! The frequency sketch behind TinyLFU admission: an estimate of how often
//! each key was requested lately, in a few bytes per cached entry.
//!
//! A count-min sketch of depth 4 with 4-bit counters, sixteen to a `u64`.
//! A key's estimate is the smallest of its four counters, so collisions can
//! only make a key look more popular than it is, never less. Increments are
//! *conservative*: only the counters that hold the current minimum are
//! raised, which keeps keys that share a counter with a popular key from
//! inheriting all of its count.
//!
//! Counts age: after a sample of `sample_size` increments every counter is
//! halved, so the sketch describes recent traffic and a key that was popular
//! long ago fades out. A *doorkeeper* (a Bloom filter, cleared at every
//! ageing) absorbs each key's first request of a period, so the one-hit keys
//! that make up most of a long-tailed workload never reach the counters and
//! do not crowd them.
//!
//! The sample is long — 128 requests per cached entry, where TinyLFU's paper
//! and Caffeine use 10 — because telling the keys at the edge of the cache
//! from the ones just outside it takes many sightings of each: on a Zipf
//! workload the longer memory is worth 1–4 points of hit ratio at cache sizes
//! of 0.5–1 % of the keys (`docs/benchmarks.md`). The price, slow
//! forgetting, is paid back by the cache, which [`clear`s](FrequencySketch::clear)
//! the sketch when its hit ratio collapses.

/// Counters a key touches, one per row.
const DEPTH: usize = 4;
/// Largest value a 4-bit counter holds.
const COUNTER_MAX: u8 = 15;
/// Counters per row, per entry the sketch is sized for (rounded up to a
/// power of two): 16 bytes per entry. With the long sample, four (Caffeine's
/// width) cost about 0.2 points of hit ratio at 1 % on Zipf 1.0; sixteen
/// gained nothing consistent.
const COUNTERS_PER_ENTRY_PER_ROW: usize = 8;
/// Ageing period, in increments per entry the sketch is sized for: TinyLFU's
/// sample size `W` (see the module documentation for why it is long).
const SAMPLE_SIZE_PER_ENTRY: u64 = 128;
/// Doorkeeper bits per increment of the ageing period (16 bytes per entry).
/// The doorkeeper is worth up to 0.15 points of hit ratio on the benchmark's
/// Zipf traces; four bits per increment instead of one changed nothing.
const DOORKEEPER_BITS_PER_SAMPLE: usize = 1;
/// Every counter's low three bits, for halving sixteen packed counters at once.
const HALVING_MASK: u64 = 0x7777_7777_7777_7777;

/// How often each key (by its 64-bit hash) was seen lately; estimates range
/// from 0 to 15.
///
/// Not synchronised: the cache that owns it keeps it behind its own lock.
#[derive(Debug, Clone)]
pub struct FrequencySketch {
    /// `DEPTH` rows of `counters_per_row` 4-bit counters, row after row,
    /// sixteen counters to a word.
    words: Box<[u64]>,
    /// `counters_per_row - 1`; rows are a power of two long.
    counter_mask: u64,
    /// `log2(words per row)`.
    row_words_log2: u32,
    /// Increments between two halvings.
    sample_size: u64,
    /// Increments since the last halving, itself halved at each halving so
    /// that the mass in the sketch stays below `sample_size`.
    increments: u64,
    /// Entries the sketch was sized for.
    entries: usize,
    doorkeeper: Doorkeeper,
}

impl FrequencySketch {
    /// A sketch sized for a cache of about `entries` entries (at least 16):
    /// 32 counters per entry (rounded up to a power of two) and a
    /// doorkeeper bit per increment of the period, ageing every
    /// `128 × entries` increments.
    pub fn new(entries: usize) -> Self {
        let entries = entries.clamp(16, 1 << 30);
        let counters_per_row = entries.next_power_of_two() * COUNTERS_PER_ENTRY_PER_ROW;
        let words_per_row = counters_per_row / 16;
        let sample_size = entries as u64 * SAMPLE_SIZE_PER_ENTRY;
        Self {
            words: vec![0; words_per_row * DEPTH].into_boxed_slice(),
            counter_mask: counters_per_row as u64 - 1,
            row_words_log2: words_per_row.trailing_zeros(),
            sample_size,
            increments: 0,
            entries,
            doorkeeper: Doorkeeper::new(sample_size as usize * DOORKEEPER_BITS_PER_SAMPLE),
        }
    }

    /// The number of entries the sketch is sized for.
    pub fn entries(&self) -> usize {
        self.entries
    }

    /// Increments between two halvings of every counter.
    pub fn sample_size(&self) -> u64 {
        self.sample_size
    }

    /// The estimated number of recent requests of `hash`, at most 15.
    pub fn frequency(&self, hash: u64) -> u8 {
        let slots = self.slots(hash);
        let counted = slots
            .iter()
            .map(|&(word, shift)| self.counter(word, shift))
            .min()
            .unwrap_or(0);
        let first_sighting = u8::from(self.doorkeeper.contains(hash));
        (counted + first_sighting).min(COUNTER_MAX)
    }

    /// Records one request of `hash`, halving every count when the ageing
    /// period is over.
    pub fn increment(&mut self, hash: u64) {
        if self.doorkeeper.insert(hash) {
            let slots = self.slots(hash);
            let least = slots
                .iter()
                .map(|&(word, shift)| self.counter(word, shift))
                .min()
                .unwrap_or(COUNTER_MAX);
            if least < COUNTER_MAX {
                for &(word, shift) in &slots {
                    if self.counter(word, shift) == least {
                        self.words[word] += 1 << shift;
                    }
                }
            }
        }
        self.increments += 1;
        if self.increments >= self.sample_size {
            self.age();
        }
    }

    /// Adds `count` requests of `hash` at once, without ageing; used to carry
    /// resident entries' estimates into a larger sketch.
    pub fn seed(&mut self, hash: u64, count: u8) {
        for _ in 0..count.min(COUNTER_MAX + 1) {
            if self.doorkeeper.insert(hash) {
                let slots = self.slots(hash);
                for &(word, shift) in &slots {
                    if self.counter(word, shift) < COUNTER_MAX {
                        self.words[word] += 1 << shift;
                    }
                }
            }
        }
    }

    /// Forgets everything: every key's estimate becomes 0. For when the
    /// workload has changed and what was learned describes another one.
    pub fn clear(&mut self) {
        self.words.fill(0);
        self.doorkeeper.clear();
        self.increments = 0;
    }

    /// Halves every counter and clears the doorkeeper: the ageing step that
    /// lets old popularity fade, run every `sample_size` increments.
    fn age(&mut self) {
        for word in self.words.iter_mut() {
            *word = (*word >> 1) & HALVING_MASK;
        }
        self.doorkeeper.clear();
        self.increments /= 2;
    }

    fn counter(&self, word: usize, shift: u32) -> u8 {
        ((self.words[word] >> shift) & 0xF) as u8
    }

    /// `(word, bit shift)` of `hash`'s counter in each row. Rows use
    /// independent positions (double hashing over a mixed hash), so two keys
    /// that collide in one row rarely collide in another.
    fn slots(&self, hash: u64) -> [(usize, u32); DEPTH] {
        let mixed = mix64(hash);
        let first = mixed & 0xFFFF_FFFF;
        let step = (mixed >> 32) | 1;
        std::array::from_fn(|row| {
            let counter = first.wrapping_add(step.wrapping_mul(row as u64)) & self.counter_mask;
            let word = (row << self.row_words_log2) + (counter >> 4) as usize;
            (word, ((counter & 15) << 2) as u32)
        })
    }
}

/// A Bloom filter of the keys seen once in the current ageing period.
#[derive(Debug, Clone)]
struct Doorkeeper {
    bits: Box<[u64]>,
    /// `number of bits - 1`; a power of two.
    bit_mask: u64,
}

impl Doorkeeper {
    fn new(bits: usize) -> Self {
        let bits = bits.clamp(64, 1 << 36).next_power_of_two();
        Self {
            bits: vec![0; bits / 64].into_boxed_slice(),
            bit_mask: bits as u64 - 1,
        }
    }

    /// Two bit positions, from a hash mixed differently from the sketch's.
    fn positions(&self, hash: u64) -> [u64; 2] {
        let mixed = mix64(hash ^ 0x5851_F42D_4C95_7F2D);
        [mixed & self.bit_mask, (mixed >> 32) & self.bit_mask]
    }

    fn contains(&self, hash: u64) -> bool {
        self.positions(hash)
            .iter()
            .all(|&bit| self.bits[(bit >> 6) as usize] & (1 << (bit & 63)) != 0)
    }

    /// Sets `hash`'s bits; returns whether they were all set already (the key
    /// had been seen this period).
    fn insert(&mut self, hash: u64) -> bool {
        let mut seen = true;
        for bit in self.positions(hash) {
            let word = &mut self.bits[(bit >> 6) as usize];
            let mask = 1 << (bit & 63);
            seen &= *word & mask != 0;
            *word |= mask;
        }
        seen
    }

    fn clear(&mut self) {
        self.bits.fill(0);
    }
}

/// A 64-bit finaliser (MurmurHash3's `fmix64`): spreads every input bit over
/// the output, so that weak caller hashes (an identity hash of integer keys,
/// say) still give well-spread sketch positions.
fn mix64(mut z: u64) -> u64 {
    z ^= z >> 33;
    z = z.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    z ^= z >> 33;
    z = z.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    z ^ (z >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_hash(i: u64) -> u64 {
        // Distinct, deliberately regular hashes: the sketch must spread them.
        i
    }

    #[test]
    fn unseen_key_has_zero_frequency() {
        let sketch = FrequencySketch::new(1024);
        assert_eq!(sketch.frequency(key_hash(7)), 0);
    }

    #[test]
    fn frequency_counts_requests_up_to_fifteen() {
        let mut sketch = FrequencySketch::new(1024);
        for expected in 1..=15u8 {
            sketch.increment(key_hash(42));
            assert_eq!(sketch.frequency(key_hash(42)), expected);
        }
        for _ in 0..10 {
            sketch.increment(key_hash(42));
        }
        assert_eq!(sketch.frequency(key_hash(42)), 15);
    }

    #[test]
    fn popular_keys_rank_above_rare_keys_among_many() {
        let mut sketch = FrequencySketch::new(1024);
        // 1,000 keys seen once, 50 keys seen 8 times, interleaved.
        for round in 0..8 {
            for hot in 0..50 {
                sketch.increment(key_hash(1_000_000 + hot));
            }
            for cold in 0..125 {
                sketch.increment(key_hash(round * 125 + cold));
            }
        }
        let hot_min = (0..50)
            .map(|k| sketch.frequency(key_hash(1_000_000 + k)))
            .min();
        let cold_max = (0..1000).map(|k| sketch.frequency(key_hash(k))).max();
        assert!(hot_min >= Some(8), "hot keys estimated {hot_min:?}");
        assert!(cold_max <= Some(3), "cold keys estimated {cold_max:?}");
    }

    #[test]
    fn counts_halve_after_a_sample_size_of_increments() {
        let mut sketch = FrequencySketch::new(16);
        let sample = sketch.sample_size();
        for _ in 0..12 {
            sketch.increment(key_hash(1));
        }
        assert_eq!(sketch.frequency(key_hash(1)), 12);
        // Fill the rest of the period with other keys; the period ends on the
        // last of them and every count is halved.
        for k in 0..sample - 12 {
            sketch.increment(key_hash(100 + k % 64));
        }
        // The doorkeeper held the first request and the counters the other
        // eleven; halving leaves 5 in the counters and clears the doorkeeper.
        assert_eq!(sketch.frequency(key_hash(1)), 5);
    }

    #[test]
    fn seed_restores_a_count_in_a_new_sketch() {
        let mut sketch = FrequencySketch::new(4096);
        sketch.seed(key_hash(9), 11);
        assert_eq!(sketch.frequency(key_hash(9)), 11);
        assert_eq!(sketch.frequency(key_hash(10)), 0);
    }

    #[test]
    fn clear_forgets_every_key() {
        let mut sketch = FrequencySketch::new(64);
        for _ in 0..5 {
            sketch.increment(key_hash(3));
        }
        sketch.clear();
        assert_eq!(sketch.frequency(key_hash(3)), 0);
    }

    #[test]
    fn sample_size_is_proportional_to_entries() {
        assert_eq!(FrequencySketch::new(1000).sample_size(), 128_000);
        assert_eq!(FrequencySketch::new(0).entries(), 16);
    }
}
