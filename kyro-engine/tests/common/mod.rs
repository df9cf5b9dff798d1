//! Shared test fixtures: seeded data sets, exact ground truth, recall.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use kyro_engine::distance::distance;
use kyro_engine::Metric;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A standard normal sample (Box–Muller).
pub fn gaussian(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// Spread of the easy clustered sets: tight clusters, far apart.
pub const EASY_NOISE: f32 = 0.25;
/// Spread at which clusters overlap and neighbours crowd together: hnswlib
/// reaches recall@10 ≈ 0.97 at ef=64 on such a 10k×64 set.
pub const HARD_NOISE: f32 = 1.0;

/// `n` base points and `queries` query points of `dim` components, drawn
/// around the same `clusters` random centres, row-major (easy spread).
pub fn clustered_set(
    n: usize,
    queries: usize,
    dim: usize,
    clusters: usize,
    seed: u64,
) -> (Vec<f32>, Vec<f32>) {
    clustered_set_with_noise(n, queries, dim, clusters, seed, EASY_NOISE)
}

/// As [`clustered_set`], with gaussian noise of standard deviation `noise`
/// around each centre.
pub fn clustered_set_with_noise(
    n: usize,
    queries: usize,
    dim: usize,
    clusters: usize,
    seed: u64,
    noise: f32,
) -> (Vec<f32>, Vec<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<f32> = (0..clusters * dim)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let mut draw = |count: usize| {
        let mut out = Vec::with_capacity(count * dim);
        for _ in 0..count {
            let c = rng.random_range(0..clusters);
            for d in 0..dim {
                out.push(centres[c * dim + d] + noise * gaussian(&mut rng));
            }
        }
        out
    };
    let base = draw(n);
    let queries = draw(queries);
    (base, queries)
}

/// `n` clustered points (see [`clustered_set`]).
pub fn clustered(n: usize, dim: usize, clusters: usize, seed: u64) -> Vec<f32> {
    clustered_set(n, 0, dim, clusters, seed).0
}

/// Exact `k` nearest row numbers of `base` for each query, optionally only
/// among rows for which `keep` holds.
pub fn ground_truth(
    metric: Metric,
    dim: usize,
    base: &[f32],
    queries: &[f32],
    k: usize,
    keep: impl Fn(usize) -> bool + Sync,
) -> Vec<Vec<u64>> {
    use rayon::prelude::*;
    queries
        .par_chunks(dim)
        .map(|q| {
            let mut scored: Vec<(f32, u64)> = base
                .chunks(dim)
                .enumerate()
                .filter(|(i, _)| keep(*i))
                .map(|(i, v)| (distance(metric, q, v), i as u64))
                .collect();
            scored.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            scored.into_iter().take(k).map(|(_, i)| i).collect()
        })
        .collect()
}

/// Mean fraction of each truth list found in the matching result list.
pub fn recall(results: &[Vec<u64>], truth: &[Vec<u64>]) -> f64 {
    let total: f64 = results
        .iter()
        .zip(truth)
        .map(|(found, want)| {
            if want.is_empty() {
                return 1.0;
            }
            let hits = want.iter().filter(|id| found.contains(id)).count();
            hits as f64 / want.len() as f64
        })
        .sum();
    total / truth.len() as f64
}

/// The shared MiniLM data set, when this checkout sits beside it.
pub fn minilm_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets/minilm-npm-50k");
    dir.join("base.fvecs").is_file().then_some(dir)
}

/// Says loudly that `test` did not run for want of the shared data set (the
/// line shows in `cargo test` output even when the test passes), and fails
/// under `CI=true` when `../shared` exists but the set cannot be read there:
/// CI has the set beside the checkout, so a miss there is a broken setup.
pub fn skip_without_minilm(test: &str) {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared");
    let message = format!(
        "SKIPPED {test}: {} not found",
        shared.join("datasets/minilm-npm-50k/base.fvecs").display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") && shared.is_dir() {
        panic!("{message} although {} exists", shared.display());
    }
    // Printed on stdout as well as stderr: libtest captures both for passing
    // tests, so also say it where `--nocapture` is not needed.
    println!("{message}");
    eprintln!("{message}");
}

/// Reads a TEXMEX `.fvecs` (or `.ivecs`, as raw 4-byte words) file.
pub fn read_vecs(path: &Path) -> (usize, Vec<[u8; 4]>) {
    let bytes = std::fs::read(path).expect("read vecs file");
    let dim = u32::from_le_bytes(bytes[..4].try_into().expect("header")) as usize;
    let row = 4 * (dim + 1);
    assert_eq!(bytes.len() % row, 0, "{} is truncated", path.display());
    let words = bytes
        .chunks_exact(row)
        .flat_map(|r| r[4..].chunks_exact(4).map(|w| [w[0], w[1], w[2], w[3]]))
        .collect();
    (dim, words)
}

pub fn read_fvecs(path: &Path) -> (usize, Vec<f32>) {
    let (dim, words) = read_vecs(path);
    (dim, words.into_iter().map(f32::from_le_bytes).collect())
}

pub fn read_ivecs(path: &Path) -> (usize, Vec<i32>) {
    let (dim, words) = read_vecs(path);
    (dim, words.into_iter().map(i32::from_le_bytes).collect())
}
