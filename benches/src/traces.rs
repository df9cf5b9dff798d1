//! Seeded request traces for the cache benchmark: sequences of key ids whose
//! popularity follows a Zipf law, either fixed for the whole trace or moving
//! to a new set of keys at regular intervals.
//!
//! A trace is a `Vec<u64>` of key ids in `0..keys`. Popularity ranks are
//! mapped to keys through a seeded random permutation, so popular keys are
//! not the small ids (which would flatter any hash that keeps small integers
//! apart).

use std::fmt;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Which popularity law a trace follows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TraceKind {
    /// Zipf with this exponent over all keys, the same popular keys
    /// throughout.
    Zipf {
        /// `s` in `P(rank r) ∝ 1 / r^s`.
        exponent: f64,
    },
    /// Zipf with this exponent, but the rank → key mapping is drawn afresh at
    /// the start of each of `phases` equal parts of the trace: the popular
    /// set moves, and what was learned about the last one is useless.
    Shifting {
        /// `s` in `P(rank r) ∝ 1 / r^s`.
        exponent: f64,
        /// Number of equal parts, each with its own popular set.
        phases: usize,
    },
}

impl TraceKind {
    /// The traces `kyro-bench cache` runs, in report order: Zipf 0.8, 1.0
    /// and 1.2, and Zipf 1.0 whose popular set moves five times.
    pub fn standard() -> [TraceKind; 4] {
        [
            TraceKind::Zipf { exponent: 0.8 },
            TraceKind::Zipf { exponent: 1.0 },
            TraceKind::Zipf { exponent: 1.2 },
            TraceKind::Shifting {
                exponent: 1.0,
                phases: 5,
            },
        ]
    }

    /// Generates `requests` key ids in `0..keys`, the same for the same
    /// seed.
    pub fn generate(&self, keys: usize, requests: usize, seed: u64) -> Vec<u64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        match *self {
            TraceKind::Zipf { exponent } => {
                let sampler = ZipfSampler::new(keys, exponent);
                let ranks_to_keys = random_permutation(keys, &mut rng);
                (0..requests)
                    .map(|_| ranks_to_keys[sampler.sample(&mut rng)])
                    .collect()
            }
            TraceKind::Shifting { exponent, phases } => {
                let sampler = ZipfSampler::new(keys, exponent);
                let phase_length = requests.div_ceil(phases.max(1)).max(1);
                let mut ranks_to_keys = Vec::new();
                (0..requests)
                    .map(|i| {
                        if i % phase_length == 0 {
                            ranks_to_keys = random_permutation(keys, &mut rng);
                        }
                        ranks_to_keys[sampler.sample(&mut rng)]
                    })
                    .collect()
            }
        }
    }
}

/// The report name: `zipf-0.8`, `zipf-1.0`, `zipf-1.2`, `shifting`.
impl fmt::Display for TraceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceKind::Zipf { exponent } => write!(f, "zipf-{exponent:.1}"),
            TraceKind::Shifting { .. } => write!(f, "shifting"),
        }
    }
}

/// Draws popularity ranks `0..n` (0 most popular) with `P(r) ∝ 1/(r+1)^s`,
/// exactly, by binary search in the cumulative distribution.
#[derive(Debug, Clone)]
pub struct ZipfSampler {
    /// `cumulative[r]` = sum of the weights of ranks `0..=r`.
    cumulative: Vec<f64>,
}

impl ZipfSampler {
    /// A sampler over `n` ranks (at least one) with exponent `exponent`.
    pub fn new(n: usize, exponent: f64) -> Self {
        let mut total = 0.0;
        let cumulative = (1..=n.max(1))
            .map(|rank| {
                total += (rank as f64).powf(-exponent);
                total
            })
            .collect();
        Self { cumulative }
    }

    /// One rank, `0..n`.
    pub fn sample(&self, rng: &mut impl Rng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let target = rng.random::<f64>() * total;
        self.cumulative
            .partition_point(|&c| c <= target)
            .min(self.cumulative.len() - 1)
    }
}

fn random_permutation(n: usize, rng: &mut impl Rng) -> Vec<u64> {
    let mut keys: Vec<u64> = (0..n as u64).collect();
    keys.shuffle(rng);
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn same_seed_same_trace_other_seed_other_trace() {
        let kind = TraceKind::Zipf { exponent: 1.0 };
        assert_eq!(kind.generate(100, 1000, 7), kind.generate(100, 1000, 7));
        assert_ne!(kind.generate(100, 1000, 7), kind.generate(100, 1000, 8));
    }

    #[test]
    fn keys_stay_in_range() {
        for kind in TraceKind::standard() {
            let trace = kind.generate(50, 5000, 1);
            assert_eq!(trace.len(), 5000);
            assert!(trace.iter().all(|&k| k < 50), "{kind}");
        }
    }

    #[test]
    fn zipf_rank_frequencies_follow_the_law() {
        let sampler = ZipfSampler::new(1000, 1.0);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut counts = vec![0u32; 1000];
        for _ in 0..200_000 {
            counts[sampler.sample(&mut rng)] += 1;
        }
        // P(rank 1) / P(rank 2) = 2 and P(rank 1) / P(rank 10) = 10.
        let ratio_2 = f64::from(counts[0]) / f64::from(counts[1]);
        let ratio_10 = f64::from(counts[0]) / f64::from(counts[9]);
        assert!((1.85..2.15).contains(&ratio_2), "{ratio_2}");
        assert!((8.5..11.5).contains(&ratio_10), "{ratio_10}");
    }

    #[test]
    fn shifting_trace_moves_its_popular_keys_between_phases() {
        let kind = TraceKind::Shifting {
            exponent: 1.2,
            phases: 2,
        };
        let trace = kind.generate(10_000, 20_000, 5);
        let top = |part: &[u64]| -> HashSet<u64> {
            let mut counts = std::collections::HashMap::new();
            for &k in part {
                *counts.entry(k).or_insert(0u32) += 1;
            }
            let mut by_count: Vec<_> = counts.into_iter().collect();
            by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            by_count.iter().take(10).map(|&(k, _)| k).collect()
        };
        let (first, second) = trace.split_at(10_000);
        let shared = top(first).intersection(&top(second)).count();
        assert!(shared <= 1, "top-10 sets share {shared} keys");
    }

    #[test]
    fn names_match_the_report() {
        let names: Vec<String> = TraceKind::standard()
            .iter()
            .map(|t| t.to_string())
            .collect();
        assert_eq!(names, ["zipf-0.8", "zipf-1.0", "zipf-1.2", "shifting"]);
    }
}
