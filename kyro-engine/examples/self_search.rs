//! Self-search recall on the crash test's vectors: `n` points drawn uniform
//! in [-1, 1)^384 (the crash test's generator), one graph built on two
//! threads with the default parameters and written as an `i8` cold segment;
//! then every point is searched with its own vector and the misses counted
//! (another point first), for the in-memory graph (`f32`) and the cold
//! segment (`i8` traversal, `f32` rescoring), at each `ef`. A miss at
//! `ef` 256 is searched again at `ef` 2,000: one not in that top 10 is
//! printed. `benches/anchors/self_search_hnswlib.py` measures hnswlib on the
//! same vectors with the same parameters.
//!
//! ```sh
//! cargo run --release -p kyro-engine --example self_search -- 150000 64 256
//! ```

use std::time::Instant;

use kyro_engine::segment::ColdSegment;
use kyro_engine::{HnswIndex, IndexConfig, Metric};

const DIM: usize = 384;

/// The crash test's vector of `seed` (`kyro-server/tests/common`).
fn uniform(seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    (0..DIM)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 2000) as f32 / 1000.0 - 1.0
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let (n, efs) = match args.split_first() {
        Some((&n, efs)) if !efs.is_empty() => (n, efs.to_vec()),
        Some((&n, _)) => (n, vec![64, 256]),
        None => (150_000, vec![64, 256]),
    };
    let mut vectors = Vec::with_capacity(n * DIM);
    for i in 0..n as u64 {
        vectors.extend(uniform(i * 1_000_000 + 7));
    }
    let started = Instant::now();
    let index = HnswIndex::build_parallel(
        IndexConfig::new(DIM, Metric::Cosine),
        &vectors,
        None,
        2,
        &|_| {},
    )?;
    let relinked = index.reconnect_unreachable();
    println!(
        "built {n} points in {:.1} s ({relinked} relinked)",
        started.elapsed().as_secs_f64()
    );
    let dir = tempfile::tempdir()?;
    ColdSegment::write_with(&index, dir.path(), true)?;
    let cold = ColdSegment::open(dir.path())?;
    println!(
        "unreachable: graph {}, cold segment {}",
        index.unreachable_ids().len(),
        cold.unreachable_ids().len()
    );
    for ef in efs {
        let (mut graph_misses, mut cold_misses, mut lost) = (0, 0, 0);
        for (i, row) in vectors.chunks_exact(DIM).enumerate() {
            let id = i as u64;
            let first = |hits: &[kyro_engine::Neighbor]| hits.first().map(|h| h.id);
            if first(&index.search_by_label(row, 1, ef, None)?) != Some(id) {
                graph_misses += 1;
            }
            if first(&cold.search_by_label(row, 1, ef, None)?) != Some(id) {
                cold_misses += 1;
                let wide = cold.search_by_label(row, 10, 2_000, None)?;
                if !wide.iter().any(|h| h.id == id) {
                    lost += 1;
                    println!("point {i}: not in the top 10 at ef 2000");
                }
            }
        }
        println!(
            "n {n} ef {ef}: misses graph (f32) {graph_misses}, cold segment (i8) {cold_misses}; not in the top 10 at ef 2000: {lost}"
        );
    }
    Ok(())
}
