//! HNSW behaviour: recall, parallel build, determinism, filters, deletes,
//! upserts, and agreement with the exact index.

mod common;

use common::{
    clustered, clustered_set, clustered_set_with_noise, ground_truth, recall, HARD_NOISE,
};
use kyro_engine::{
    FlatIndex, HnswIndex, HnswParams, IndexConfig, Metric, Quantization, SearchParams, VectorIndex,
};

const DIM: usize = 64;

fn config(metric: Metric) -> IndexConfig {
    IndexConfig::new(DIM, metric)
}

fn search_all(
    index: &dyn VectorIndex,
    queries: &[f32],
    dim: usize,
    k: usize,
    ef: usize,
) -> Vec<Vec<u64>> {
    queries
        .chunks(dim)
        .map(|q| {
            index
                .search(q, k, ef)
                .expect("search")
                .into_iter()
                .map(|n| n.id)
                .collect()
        })
        .collect()
}

#[test]
fn recall_at_10_is_at_least_095_on_clustered_10k_by_64_for_every_metric() {
    let (base, queries) = clustered_set(10_000, 200, DIM, 20, 1);
    for metric in Metric::ALL {
        let index =
            HnswIndex::build_parallel(config(metric), &base, None, 2, &|_| {}).expect("build");
        assert_eq!(index.len(), 10_000);
        let truth = ground_truth(metric, DIM, &base, &queries, 10, |_| true);
        let found = search_all(&index, &queries, DIM, 10, 64);
        let r = recall(&found, &truth);
        assert!(r >= 0.95, "{metric}: recall@10 {r:.4} at ef=64");
    }
}

#[test]
fn i8_traversal_with_f32_rescoring_keeps_recall_and_exact_distances() {
    let (base, queries) = clustered_set(10_000, 200, DIM, 20, 1);
    let metric = Metric::L2;
    let mut cfg = config(metric);
    cfg.quantization = Quantization::I8;
    let index = HnswIndex::build_parallel(cfg, &base, None, 2, &|_| {}).expect("build");
    let truth = ground_truth(metric, DIM, &base, &queries, 10, |_| true);
    let found = search_all(&index, &queries, DIM, 10, 64);
    let r = recall(&found, &truth);
    assert!(r >= 0.95, "i8 recall@10 {r:.4} at ef=64");
    // Returned distances are the exact f32 ones, not the quantised estimates.
    let q = &queries[..DIM];
    for n in index.search(q, 10, 64).expect("search") {
        let row = &base[n.id as usize * DIM..(n.id as usize + 1) * DIM];
        let exact = kyro_engine::distance::distance(metric, q, row);
        assert!(
            (n.distance - exact).abs() <= 1e-4 * exact.max(1.0),
            "{} vs {exact}",
            n.distance
        );
    }
}

#[test]
fn results_are_sorted_nearest_first_and_hold_k_distinct_ids() {
    let base = clustered(2_000, DIM, 10, 5);
    let index =
        HnswIndex::build_parallel(config(Metric::Cosine), &base, None, 2, &|_| {}).expect("build");
    let results = index.search(&base[..DIM], 25, 50).expect("search");
    assert_eq!(results.len(), 25);
    assert!(results.windows(2).all(|w| w[0].distance <= w[1].distance));
    let mut ids: Vec<u64> = results.iter().map(|n| n.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 25);
    // A point is its own nearest neighbour.
    assert_eq!(results[0].id, 0);
    assert!(results[0].distance.abs() < 1e-5);
}

#[test]
fn single_threaded_builds_with_the_same_seed_give_the_same_graph() {
    let (base, queries) = clustered_set(3_000, 50, DIM, 10, 9);
    let build = |seed| {
        let mut cfg = config(Metric::L2);
        cfg.hnsw = HnswParams {
            seed,
            ..HnswParams::default()
        };
        HnswIndex::build_parallel(cfg, &base, None, 1, &|_| {}).expect("build")
    };
    let (a, b) = (build(7), build(7));
    let answers = |index: &HnswIndex| {
        queries
            .chunks(DIM)
            .map(|q| index.search(q, 10, 16).expect("search"))
            .collect::<Vec<_>>()
    };
    assert_eq!(answers(&a), answers(&b));
    assert_eq!(a.memory_usage(), b.memory_usage());
}

#[test]
fn concurrent_inserts_and_searches_from_several_threads_lose_nothing() {
    let (base, queries) = clustered_set(8_000, 100, DIM, 16, 11);
    let index = HnswIndex::new(config(Metric::L2)).expect("index");
    std::thread::scope(|s| {
        for t in 0..4 {
            let index = &index;
            let base = &base;
            s.spawn(move || {
                for row in (t..8_000).step_by(4) {
                    index
                        .insert(row as u64, &base[row * DIM..(row + 1) * DIM])
                        .expect("insert");
                    if row % 97 == 0 {
                        index.search(&base[..DIM], 5, 20).expect("search");
                    }
                }
            });
        }
    });
    assert_eq!(index.len(), 8_000);
    let truth = ground_truth(Metric::L2, DIM, &base, &queries, 10, |_| true);
    let r = recall(&search_all(&index, &queries, DIM, 10, 64), &truth);
    assert!(r >= 0.95, "recall after concurrent inserts {r:.4}");
}

#[test]
fn filtered_search_keeps_recall_at_50_10_and_1_percent_selectivity_on_20k() {
    let n = 20_000;
    let (base, queries) = clustered_set_with_noise(n, 100, DIM, 20, 21, HARD_NOISE);
    let index =
        HnswIndex::build_parallel(config(Metric::L2), &base, None, 2, &|_| {}).expect("build");
    for (selectivity, modulus) in [(0.5, 2u64), (0.1, 10), (0.01, 100)] {
        // Labels spread pseudo-randomly over the set, unrelated to geometry.
        let matches = |row: u64| (row.wrapping_mul(2_654_435_761) >> 7).is_multiple_of(modulus);
        // The filter sees internal ids: translate the matching rows to them.
        let mut slot_bitmap = vec![false; n];
        for row in (0..n as u64).filter(|&r| matches(r)) {
            let slot = index.internal_id(row).expect("every row is indexed");
            slot_bitmap[slot as usize] = true;
        }
        let slot_matches = |slot: u32| slot_bitmap[slot as usize];
        let truth = ground_truth(Metric::L2, DIM, &base, &queries, 10, |row| {
            matches(row as u64)
        });
        let found: Vec<Vec<u64>> = queries
            .chunks(DIM)
            .map(|q| {
                let params = SearchParams::new(10, 128).with_filter(&slot_matches);
                let hits = index.search_with(q, &params).expect("search");
                assert!(
                    hits.iter().all(|h| matches(h.id)),
                    "a filtered-out point was returned"
                );
                hits.into_iter().map(|h| h.id).collect()
            })
            .collect();
        let r = recall(&found, &truth);
        eprintln!("selectivity {selectivity}: recall@10 {r:.4}");
        assert!(r >= 0.95, "selectivity {selectivity}: recall@10 {r:.4}");

        // The exact path over a candidate list is exact.
        let candidates: Vec<u32> = (0..n as u32).filter(|&s| slot_matches(s)).collect();
        let exact: Vec<Vec<u64>> = queries
            .chunks(DIM)
            .map(|q| {
                index
                    .search_candidates(q, 10, &candidates)
                    .expect("exact")
                    .into_iter()
                    .map(|h| h.id)
                    .collect()
            })
            .collect();
        assert_eq!(
            recall(&exact, &truth),
            1.0,
            "selectivity {selectivity}: exact scan"
        );
    }
}

#[test]
fn deleted_points_are_never_returned_and_recall_holds_after_deleting_30_percent() {
    let n = 10_000;
    let (base, queries) = clustered_set_with_noise(n, 200, DIM, 20, 31, HARD_NOISE);
    let mut index =
        HnswIndex::build_parallel(config(Metric::L2), &base, None, 2, &|_| {}).expect("build");
    let deleted = |row: u64| (row.wrapping_mul(0x9E37_79B9) >> 5) % 10 < 3;
    for row in 0..n as u64 {
        if deleted(row) {
            assert!(index.delete(row));
        }
    }
    assert!(
        !index.delete(deleted_row(&deleted)),
        "second delete finds nothing"
    );
    let live = (0..n as u64).filter(|&r| !deleted(r)).count();
    assert_eq!(index.len(), live);
    let truth = ground_truth(Metric::L2, DIM, &base, &queries, 10, |row| {
        !deleted(row as u64)
    });

    // Before repair: tombstones route but are never returned.
    let before = search_all(&index, &queries, DIM, 10, 128);
    assert!(before.iter().flatten().all(|&id| !deleted(id)));

    // After repair: the graph no longer needs them and stays navigable.
    let report = index.consolidate_deletes();
    assert_eq!(report.freed_slots, n - live);
    assert!(report.repaired_nodes > 0);
    let after = search_all(&index, &queries, DIM, 10, 128);
    assert!(after.iter().flatten().all(|&id| !deleted(id)));
    let r = recall(&after, &truth);
    eprintln!("recall after deleting 30% and repairing: {r:.4}");
    assert!(r >= 0.95, "recall after deleting 30% and repairing: {r:.4}");

    // Freed slots are reused: re-inserting the deleted points does not grow
    // the index, and they are found again.
    let bytes_before = index.memory_usage().vector_bytes;
    for row in (0..n as u64).filter(|&r| deleted(r)) {
        let r = row as usize;
        index
            .insert(row, &base[r * DIM..(r + 1) * DIM])
            .expect("reinsert");
    }
    assert_eq!(index.len(), n);
    assert_eq!(index.memory_usage().vector_bytes, bytes_before);
    let truth_all = ground_truth(Metric::L2, DIM, &base, &queries, 10, |_| true);
    let r = recall(&search_all(&index, &queries, DIM, 10, 128), &truth_all);
    assert!(
        r >= 0.95,
        "recall after re-inserting into freed slots: {r:.4}"
    );
}

fn deleted_row(deleted: &impl Fn(u64) -> bool) -> u64 {
    (0..).find(|&r| deleted(r)).expect("some row is deleted")
}

#[test]
fn upsert_replaces_the_vector_under_the_same_id() {
    let base = clustered(2_000, DIM, 10, 41);
    let index =
        HnswIndex::build_parallel(config(Metric::L2), &base, None, 2, &|_| {}).expect("build");
    // Move point 5 onto point 1000's position.
    let target = &base[1000 * DIM..1001 * DIM];
    let mut moved = target.to_vec();
    moved[0] += 1e-3;
    index.insert(5, &moved).expect("upsert");
    assert_eq!(index.len(), 2_000, "upsert does not add a point");
    let hits = index.search(target, 2, 64).expect("search");
    let ids: Vec<u64> = hits.iter().map(|h| h.id).collect();
    assert!(ids.contains(&5) && ids.contains(&1000), "{ids:?}");
    // The old position no longer answers with id 5.
    let old = &base[5 * DIM..6 * DIM];
    let hits = index.search(old, 1, 64).expect("search");
    assert_ne!(hits[0].id, 5);
}

#[test]
fn exact_scoring_of_given_or_kept_ids_returns_their_k_nearest_in_order() {
    let (base, queries) = clustered_set(3_000, 20, DIM, 10, 53);
    let metric = Metric::L2;
    let index = HnswIndex::build_parallel(config(metric), &base, None, 2, &|_| {}).expect("build");
    // Every third point, some of them deleted, and ids never inserted.
    for id in (0..3_000).step_by(30) {
        assert!(index.delete(id));
    }
    let allowed: Vec<usize> = (0..3_000).filter(|i| i % 3 == 0 && i % 30 != 0).collect();
    for q in queries.chunks(DIM) {
        let mut truth: Vec<f32> = allowed
            .iter()
            .map(|&i| kyro_engine::distance::distance(metric, q, &base[i * DIM..(i + 1) * DIM]))
            .collect();
        truth.sort_by(f32::total_cmp);
        let prepared = config(metric).prepare_once(q).expect("prepare");
        let every_third = |id: u64| id.is_multiple_of(3);
        for k in [1, 10, 500, 899, 900, 5_000] {
            let mut ids = (0..3_000u64).step_by(3).chain(10_000..10_010);
            let given = index.score_labels(q, k, &mut ids).expect("score");
            // The same points, scored from the whole index and kept by label.
            let kept = index.score_prepared_all(&prepared, k, &every_third);
            for got in [given, kept] {
                assert_eq!(got.len(), k.min(allowed.len()), "k = {k}");
                let mut seen = std::collections::HashSet::new();
                for (rank, n) in got.iter().enumerate() {
                    assert!(n.id % 3 == 0 && n.id % 30 != 0 && n.id < 3_000, "{}", n.id);
                    assert!(seen.insert(n.id), "{} twice", n.id);
                    // The rank-th nearest distance (the same value whichever of
                    // two tied points came first).
                    let want = truth[rank];
                    assert!(
                        (n.distance - want).abs() <= 1e-3 * want.abs().max(1.0),
                        "k = {k}, rank {rank}: {} against {want}",
                        n.distance
                    );
                }
            }
        }
    }
}

#[test]
fn flat_index_is_exact_and_agrees_with_ground_truth() {
    let (base, queries) = clustered_set(3_000, 50, DIM, 10, 51);
    for metric in Metric::ALL {
        let flat = FlatIndex::new(config(metric)).expect("flat");
        for (row, v) in base.chunks(DIM).enumerate() {
            flat.insert(row as u64, v).expect("insert");
        }
        let truth = ground_truth(metric, DIM, &base, &queries, 10, |_| true);
        let r = recall(&search_all(&flat, &queries, DIM, 10, 0), &truth);
        assert_eq!(r, 1.0, "{metric}");
        assert!(flat.delete(truth[0][0]));
        let again = flat.search(&queries[..DIM], 10, 0).expect("search");
        assert!(again.iter().all(|n| n.id != truth[0][0]));
    }
}

#[test]
fn empty_index_answers_with_no_results() {
    let index = HnswIndex::new(config(Metric::Dot)).expect("index");
    assert!(index
        .search(&[0.1; DIM], 10, 10)
        .expect("search")
        .is_empty());
    assert!(index.is_empty());
}

#[test]
fn recall_on_the_shared_minilm_set_at_ef_64_is_at_least_095() {
    let Some(dir) = common::minilm_dir() else {
        common::skip_without_minilm("recall_on_the_shared_minilm_set_at_ef_64_is_at_least_095");
        return;
    };
    let (dim, base) = common::read_fvecs(&dir.join("base.fvecs"));
    let (_, queries) = common::read_fvecs(&dir.join("query.fvecs"));
    let (gt_width, gt) = common::read_ivecs(&dir.join("groundtruth.ivecs"));
    let config = IndexConfig::new(dim, Metric::Cosine);
    let index = HnswIndex::build_parallel(config, &base, None, 2, &|_| {}).expect("build");
    let truth: Vec<Vec<u64>> = gt
        .chunks(gt_width)
        .map(|row| row[..10].iter().map(|&i| i as u64).collect())
        .collect();
    let found = search_all(&index, &queries, dim, 10, 64);
    let r = recall(&found, &truth);
    assert!(r >= 0.95, "MiniLM recall@10 at ef=64: {r:.4}");
}

/// `n` points of `dim` independent standard normal components.
fn random_points(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n * dim).map(|_| common::gaussian(&mut rng)).collect()
}

/// Ids of the points whose own vector does not find them first.
fn points_not_finding_themselves(
    index: &HnswIndex,
    base: &[f32],
    dim: usize,
    ef: usize,
) -> Vec<u64> {
    base.chunks(dim)
        .enumerate()
        .filter(|(id, vector)| {
            let hits = index.search(vector, 1, ef).expect("search");
            hits.first().map(|h| h.id) != Some(*id as u64)
        })
        .map(|(id, _)| id as u64)
        .collect()
}

#[test]
fn a_parallel_build_leaves_every_point_reachable_and_finding_itself() {
    // Issue 15: concurrent inserts published a node on an upper layer while
    // its lower lists were still empty; an insert descending there linked
    // only to it and lost that only in-link. More threads than cores make
    // the interleavings likely.
    const DIM: usize = 24;
    let n = 12_000;
    for seed in [1, 2, 3] {
        let base = random_points(n, DIM, seed);
        let mut cfg = IndexConfig::new(DIM, Metric::L2);
        cfg.hnsw.ef_construction = 100;
        cfg.hnsw.seed = seed;
        let index = HnswIndex::build_parallel(cfg, &base, None, 12, &|_| {}).expect("build");
        let unreachable = index.unreachable_ids();
        assert!(
            unreachable.is_empty(),
            "seed {seed}: {} of {n} points unreachable: {:?}",
            unreachable.len(),
            &unreachable[..unreachable.len().min(10)]
        );
        // Reachable is not always found: on random 24-d points a search at
        // ef=128 misses its own point about once in 10,000 (single-threaded
        // builds alike). More than that would mean a damaged graph.
        let lost = points_not_finding_themselves(&index, &base, DIM, 128);
        assert!(
            lost.len() <= n / 2_000,
            "seed {seed}: {} points not first for their own vector at ef=128: {:?}",
            lost.len(),
            &lost[..lost.len().min(10)]
        );
    }
}

#[test]
fn after_a_build_every_point_finds_itself_at_the_findable_ef() {
    // Issue 15: on structureless high-dimensional points a sound, fully
    // reachable graph still hides some points from a search with their own
    // vector (at 250,000 uniform 384-d points one was not in the top 10 even
    // at ef 2,000). The build's findability pass links each such point in
    // from where its search ended. A tiny ef here makes misses common.
    const DIM: usize = 96;
    const EF: usize = 2;
    let n = 4_000;
    let base = random_points(n, DIM, 11);
    let build = |findable_ef| {
        let mut cfg = IndexConfig::new(DIM, Metric::Cosine);
        cfg.hnsw.findable_ef = findable_ef;
        // One thread: the same graph every run, so the assertion below is
        // about the pass and not about one interleaving of a parallel build.
        HnswIndex::build_parallel(cfg, &base, None, 1, &|_| {}).expect("build")
    };
    let without = points_not_finding_themselves(&build(0), &base, DIM, EF);
    assert!(
        without.len() >= 20,
        "the test needs points a plain build hides at ef {EF}: only {} of {n}",
        without.len()
    );
    let with = points_not_finding_themselves(&build(EF), &base, DIM, EF);
    assert_eq!(
        with,
        Vec::<u64>::new(),
        "{} of {n} points not first for their own vector at ef {EF} after the findability pass ({} without it)",
        with.len(),
        without.len()
    );
}

#[test]
fn concurrent_inserts_deletes_and_upserts_leave_every_live_point_reachable() {
    const DIM: usize = 24;
    let n = 8_000;
    let base = random_points(n, DIM, 7);
    let replacement = random_points(n, DIM, 8);
    let index = HnswIndex::new(IndexConfig::new(DIM, Metric::Cosine)).expect("index");
    std::thread::scope(|scope| {
        for thread in 0..8 {
            let (index, base, replacement) = (&index, &base, &replacement);
            scope.spawn(move || {
                for id in (thread..n).step_by(8) {
                    let row = &base[id * DIM..(id + 1) * DIM];
                    index.insert(id as u64, row).expect("insert");
                    if id % 7 == 3 {
                        index.delete(id as u64);
                    } else if id % 5 == 1 {
                        let row = &replacement[id * DIM..(id + 1) * DIM];
                        index.insert(id as u64, row).expect("upsert");
                    }
                }
            });
        }
    });
    assert_eq!(index.unreachable_ids(), Vec::<u64>::new());
    for id in 0..n {
        if id % 7 == 3 {
            continue;
        }
        let source = if id % 5 == 1 { &replacement } else { &base };
        let hits = index
            .search(&source[id * DIM..(id + 1) * DIM], 1, 128)
            .expect("search");
        assert_eq!(hits.first().map(|h| h.id), Some(id as u64), "point {id}");
    }
}
