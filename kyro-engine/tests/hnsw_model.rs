//! Model test: long random sequences of inserts, upserts, deletes, searches
//! and consolidations, checked against the exact index as the model.

mod common;

use std::collections::HashMap;

use kyro_engine::{FlatIndex, HnswIndex, IndexConfig, Metric, VectorIndex};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DIM: usize = 8;

fn random_vector(rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..DIM).map(|_| rng.random_range(-1.0..1.0)).collect()
}

#[test]
fn random_operation_sequences_agree_with_the_exact_index() {
    for seed in 0..4u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let metric = Metric::ALL[seed as usize % 3];
        let config = IndexConfig::new(DIM, metric);
        let mut hnsw = HnswIndex::new(config).expect("index");
        let flat = FlatIndex::new(config).expect("index");
        let mut live: HashMap<u64, Vec<f32>> = HashMap::new();
        let (mut hits, mut wanted) = (0usize, 0usize);

        for step in 0..3_000 {
            // Ids come from a small range so that upserts and deletes of
            // existing points are frequent.
            let id = rng.random_range(0..400u64);
            match rng.random_range(0..10) {
                0..=4 => {
                    let v = random_vector(&mut rng);
                    hnsw.insert(id, &v).expect("insert");
                    flat.insert(id, &v).expect("insert");
                    live.insert(id, v);
                }
                5..=6 => {
                    let expected = live.remove(&id).is_some();
                    assert_eq!(
                        hnsw.delete(id),
                        expected,
                        "seed {seed} step {step}: delete {id}"
                    );
                    assert_eq!(flat.delete(id), expected);
                }
                7 if step % 50 == 0 => {
                    hnsw.consolidate_deletes();
                }
                _ => {
                    let q = random_vector(&mut rng);
                    let got = hnsw.search(&q, 10, 200).expect("search");
                    let want = flat.search(&q, 10, 0).expect("search");
                    let mut ids: Vec<u64> = got.iter().map(|n| n.id).collect();
                    assert!(
                        ids.iter().all(|i| live.contains_key(i)),
                        "seed {seed} step {step}: a deleted id was returned"
                    );
                    assert!(got.windows(2).all(|w| w[0].distance <= w[1].distance));
                    ids.sort_unstable();
                    ids.dedup();
                    assert_eq!(ids.len(), got.len(), "duplicate ids");
                    assert_eq!(
                        got.len(),
                        want.len().min(10),
                        "seed {seed} step {step}: result count"
                    );
                    hits += want.iter().filter(|n| ids.contains(&n.id)).count();
                    wanted += want.len();
                }
            }
            assert_eq!(
                hnsw.len(),
                live.len(),
                "seed {seed} step {step}: live count"
            );
        }
        // Each point's stored vector is the one last written under its id:
        // searching with it finds the same best distance as the exact index.
        for v in live.values().take(20) {
            let top = hnsw.search(v, 1, 200).expect("search");
            let exact = flat.search(v, 1, 0).expect("search");
            assert!((top[0].distance - exact[0].distance).abs() <= 1e-5);
        }
        let recall = hits as f64 / wanted.max(1) as f64;
        assert!(
            recall >= 0.99,
            "seed {seed} ({metric}): recall vs exact {recall:.4}"
        );
    }
}
