//! Seeded synthetic datasets: a mixture of isotropic Gaussian clusters.
//!
//! Cluster centres are uniform in `[-1, 1]^dim` and each cluster gets its own
//! noise level drawn from `[SIGMA_MIN, SIGMA_MAX]`. The spread of centres
//! keeps clusters apart, so the hard part is *within* a cluster: an isotropic
//! Gaussian has no low-dimensional structure for the graph to exploit, and
//! the mixed densities stress HNSW's neighbour selection. This makes recall
//! at small `ef` visibly below 1.0, which a uniform-centre/no-noise set would
//! not.
//!
//! Determinism: the set depends only on (spec, number of queries, seed).
//! Rows are generated in fixed-size blocks, each from its own ChaCha stream,
//! so the output is identical whatever the rayon thread count.

use std::fmt;
use std::str::FromStr;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::dataset::Matrix;

/// Smallest per-cluster noise standard deviation (per coordinate).
pub const SIGMA_MIN: f32 = 0.1;
/// Largest per-cluster noise standard deviation (per coordinate).
pub const SIGMA_MAX: f32 = 0.3;

/// Rows per independently seeded block.
const BLOCK_ROWS: usize = 1024;
/// ChaCha stream for the mixture parameters (centres, sigmas).
const MODEL_STREAM: u64 = 0;
/// First ChaCha stream for base blocks. Base and query streams are far apart
/// so they can never overlap for any realistic row count.
const BASE_STREAM: u64 = 1 << 32;
/// First ChaCha stream for query blocks.
const QUERY_STREAM: u64 = 2 << 32;

/// Shape of a synthetic dataset, parsed from `N,DIM,CLUSTERS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntheticSpec {
    /// Number of base vectors.
    pub n: usize,
    /// Vector dimension.
    pub dim: usize,
    /// Number of Gaussian clusters.
    pub clusters: usize,
}

impl SyntheticSpec {
    /// Dataset name used in reports, e.g. `synthetic-5000-32-10`.
    pub fn name(&self) -> String {
        format!("synthetic-{}-{}-{}", self.n, self.dim, self.clusters)
    }
}

impl fmt::Display for SyntheticSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{},{}", self.n, self.dim, self.clusters)
    }
}

/// Why a `N,DIM,CLUSTERS` string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid synthetic spec {input:?}: {reason} (expected N,DIM,CLUSTERS, e.g. 100000,128,64)")]
pub struct SpecError {
    input: String,
    reason: String,
}

impl FromStr for SyntheticSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fail = |reason: String| SpecError {
            input: s.to_string(),
            reason,
        };
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        if parts.len() != 3 {
            return Err(fail(format!("got {} fields", parts.len())));
        }
        let mut values = [0usize; 3];
        for (value, (part, name)) in values
            .iter_mut()
            .zip(parts.iter().zip(["N", "DIM", "CLUSTERS"]))
        {
            *value = part
                .parse()
                .map_err(|_| fail(format!("{name} = {part:?} is not a whole number")))?;
            if *value == 0 {
                return Err(fail(format!("{name} must be positive")));
            }
        }
        let [n, dim, clusters] = values;
        Ok(Self { n, dim, clusters })
    }
}

/// A generated base set plus queries drawn from the same mixture.
#[derive(Debug, Clone)]
pub struct SyntheticSet {
    /// `spec.n` base vectors.
    pub base: Matrix<f32>,
    /// Query vectors.
    pub queries: Matrix<f32>,
}

/// The mixture the points are sampled from.
struct Mixture {
    dim: usize,
    centres: Vec<f32>,
    sigmas: Vec<f32>,
}

impl Mixture {
    fn new(spec: &SyntheticSpec, seed: u64) -> Self {
        let mut rng = rng_for(seed, MODEL_STREAM);
        let centres = (0..spec.clusters * spec.dim)
            .map(|_| rng.random_range(-1.0f32..=1.0))
            .collect();
        let sigmas = (0..spec.clusters)
            .map(|_| rng.random_range(SIGMA_MIN..=SIGMA_MAX))
            .collect();
        Self {
            dim: spec.dim,
            centres,
            sigmas,
        }
    }

    /// Fills `out` (a multiple of `dim` long) with samples, block by block.
    fn sample_into(&self, out: &mut [f32], seed: u64, first_stream: u64) {
        let clusters = self.sigmas.len();
        out.par_chunks_mut(BLOCK_ROWS * self.dim)
            .enumerate()
            .for_each(|(block, chunk)| {
                let mut rng = rng_for(seed, first_stream + block as u64);
                for row in chunk.chunks_exact_mut(self.dim) {
                    let c = rng.random_range(0..clusters);
                    let centre = &self.centres[c * self.dim..(c + 1) * self.dim];
                    fill_gaussian(&mut rng, row);
                    for (x, &mu) in row.iter_mut().zip(centre) {
                        *x = mu + self.sigmas[c] * *x;
                    }
                }
            });
    }
}

fn rng_for(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// Standard normal samples by Box-Muller; avoids a `rand_distr` dependency
/// for the one distribution we need.
fn fill_gaussian(rng: &mut impl Rng, out: &mut [f32]) {
    for pair in out.chunks_mut(2) {
        // 1 - U maps [0, 1) to (0, 1], keeping ln() finite.
        let u1 = 1.0 - rng.random::<f64>();
        let u2 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let (sin, cos) = (std::f64::consts::TAU * u2).sin_cos();
        pair[0] = (r * cos) as f32;
        if let Some(second) = pair.get_mut(1) {
            *second = (r * sin) as f32;
        }
    }
}

/// Generates `spec.n` base vectors and `n_queries` queries from the same
/// mixture; the queries use separate random streams, so they are not copies
/// of base points.
pub fn generate(spec: &SyntheticSpec, n_queries: usize, seed: u64) -> SyntheticSet {
    let mixture = Mixture::new(spec, seed);
    let mut base = vec![0.0f32; spec.n * spec.dim];
    mixture.sample_into(&mut base, seed, BASE_STREAM);
    let mut queries = vec![0.0f32; n_queries * spec.dim];
    mixture.sample_into(&mut queries, seed, QUERY_STREAM);
    SyntheticSet {
        base: Matrix::new(spec.dim, base),
        queries: Matrix::new(spec.dim, queries),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_spec() {
        let spec: SyntheticSpec = "5000, 32,10".parse().unwrap();
        assert_eq!(
            spec,
            SyntheticSpec {
                n: 5000,
                dim: 32,
                clusters: 10
            }
        );
        assert_eq!(spec.name(), "synthetic-5000-32-10");
        assert_eq!(spec.to_string(), "5000,32,10");
        for bad in ["", "1,2", "1,2,3,4", "a,2,3", "0,2,3", "1,-2,3", "1,2,0"] {
            assert!(bad.parse::<SyntheticSpec>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn deterministic_for_seed_and_thread_count() {
        let spec: SyntheticSpec = "3000,8,4".parse().unwrap();
        let a = generate(&spec, 50, 7);
        let one_thread = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let b = one_thread.install(|| generate(&spec, 50, 7));
        assert_eq!(a.base, b.base);
        assert_eq!(a.queries, b.queries);
        let c = generate(&spec, 50, 8);
        assert_ne!(a.base, c.base);
    }

    #[test]
    fn shapes_and_spread_are_sane() {
        let spec: SyntheticSpec = "4000,16,5".parse().unwrap();
        let set = generate(&spec, 100, 42);
        assert_eq!((set.base.rows(), set.base.dim()), (4000, 16));
        assert_eq!((set.queries.rows(), set.queries.dim()), (100, 16));
        assert!(set.base.as_slice().iter().all(|x| x.is_finite()));
        // Queries are fresh samples, not copies of base rows.
        assert!(set
            .queries
            .iter_rows()
            .all(|q| set.base.iter_rows().all(|b| b != q)));
        // Every point lies near some centre: with sigma <= 0.3 and 16 dims the
        // squared distance to its centre is ~16 * sigma^2 <= 1.44; 4.0 leaves
        // ample room for the Gaussian tail while catching a broken scale.
        let mixture = Mixture::new(&spec, 42);
        for row in set.base.iter_rows() {
            let nearest = mixture
                .centres
                .chunks_exact(16)
                .map(|c| row.iter().zip(c).map(|(a, b)| (a - b).powi(2)).sum::<f32>())
                .fold(f32::INFINITY, f32::min);
            assert!(nearest < 4.0, "point far from every centre: {nearest}");
        }
    }

    #[test]
    fn gaussian_has_unit_variance() {
        let mut rng = rng_for(1, 0);
        let mut v = vec![0.0f32; 100_001];
        fill_gaussian(&mut rng, &mut v);
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = v
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.03, "variance {var}");
    }
}
