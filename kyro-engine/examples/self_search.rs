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
//! Arguments: `n`, the build's `findable_ef` (0: no findability pass;
//! default 64, the storage engine's default `ef`), then the `ef`s to search
//! at. With `KYRO_BUILD_I8=1` the graph is built with its `i8` copy, as a
//! merge builds it, so the findability pass checks the `i8` walk.
//!
//! ```sh
//! cargo run --release -p kyro-engine --example self_search -- 150000 64 64 256
//! ```

use std::time::Instant;

use kyro_engine::segment::ColdSegment;
use kyro_engine::{HnswIndex, HnswParams, IndexConfig, Metric};

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
    let (n, findable_ef, efs) = match args.as_slice() {
        [n, findable_ef] => (*n, *findable_ef, vec![64, 256]),
        [n, findable_ef, efs @ ..] => (*n, *findable_ef, efs.to_vec()),
        [n] => (*n, HnswParams::default().findable_ef, vec![64, 256]),
        [] => (150_000, HnswParams::default().findable_ef, vec![64, 256]),
    };
    let mut vectors = Vec::with_capacity(n * DIM);
    for i in 0..n as u64 {
        vectors.extend(uniform(i * 1_000_000 + 7));
    }
    let started = Instant::now();
    let mut config = IndexConfig::new(DIM, Metric::Cosine);
    config.hnsw.findable_ef = findable_ef;
    // KYRO_BUILD_I8=1: the graph is built with its own `i8` copy, so the
    // findability pass walks in `i8` as the cold segment will (which then
    // keeps that copy) and the in-memory column is an `i8` walk too.
    let build_i8 = std::env::var("KYRO_BUILD_I8").is_ok_and(|v| v == "1");
    if build_i8 {
        config.quantization = kyro_engine::Quantization::I8;
    }
    let index = HnswIndex::build_parallel(config, &vectors, None, 2, &|_| {})?;
    let relinked = index.reconnect_unreachable();
    println!(
        "built {n} points (findable_ef {findable_ef}, i8 build {build_i8}) in {:.1} s ({relinked} relinked)",
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
    // The searches run on two threads, each over half of the points.
    let half = n.div_ceil(2);
    for ef in efs {
        let counts = std::thread::scope(|scope| {
            let workers: Vec<_> = vectors
                .chunks(half * DIM)
                .enumerate()
                .map(|(part, rows)| {
                    let (index, cold) = (&index, &cold);
                    scope.spawn(move || misses(index, cold, rows, (part * half) as u64, ef))
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("search thread"))
                .collect::<Result<Vec<_>, _>>()
        })?;
        let (graph_misses, cold_misses, lost) = counts
            .iter()
            .fold((0, 0, 0), |t, c| (t.0 + c.0, t.1 + c.1, t.2 + c.2));
        println!(
            "n {n} ef {ef}: misses graph (f32) {graph_misses}, cold segment (i8) {cold_misses}; not in the top 10 at ef 2000: {lost}"
        );
    }
    Ok(())
}

/// First-place misses of the points in `rows` (ids from `first_id`) at
/// `ef`: (in-memory graph, cold segment, cold misses not in the top 10 at
/// ef 2,000), the last printed.
fn misses(
    index: &HnswIndex,
    cold: &ColdSegment,
    rows: &[f32],
    first_id: u64,
    ef: usize,
) -> Result<(usize, usize, usize), kyro_engine::EngineError> {
    let (mut graph_misses, mut cold_misses, mut lost) = (0, 0, 0);
    let first = |hits: &[kyro_engine::Neighbor]| hits.first().map(|h| h.id);
    for (i, row) in rows.chunks_exact(DIM).enumerate() {
        let id = first_id + i as u64;
        if first(&index.search_by_label(row, 1, ef, None)?) != Some(id) {
            graph_misses += 1;
        }
        if first(&cold.search_by_label(row, 1, ef, None)?) != Some(id) {
            cold_misses += 1;
            let wide = cold.search_by_label(row, 10, 2_000, None)?;
            if !wide.iter().any(|h| h.id == id) {
                lost += 1;
                println!("point {id}: not in the top 10 at ef 2000");
            }
        }
    }
    Ok((graph_misses, cold_misses, lost))
}
