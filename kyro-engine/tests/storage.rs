//! The storage engine as a database: tenancy, payloads and filters, tiers,
//! durability across reopen, corruption, snapshots, optimizer and caches.
//! Every test uses a real RocksDB and real segment files in a temp directory.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{clustered_set, ground_truth, recall};
use kyro_engine::payload::{Filter, Payload, PayloadValue, Range};
use kyro_engine::storage::{
    FsyncPolicy, Instance, InstanceConfig, NamespaceRef, PayloadUpdate, PointWrite, QueryPlan,
    SearchRequest, StorageError,
};
use kyro_engine::{Metric, Quantization};

const DIM: usize = 16;
const A: NamespaceRef<'static> = NamespaceRef {
    tenant: "tenant-a",
    namespace: "episodes",
};
const B: NamespaceRef<'static> = NamespaceRef {
    tenant: "tenant-b",
    namespace: "episodes",
};

/// A deterministic configuration: no background thread, small hot tier.
fn config(dim: usize) -> InstanceConfig {
    let mut config = InstanceConfig::new(dim, Metric::Cosine);
    config.optimizer.background = false;
    config.hot_max_points = 1_000_000;
    config.fsync = FsyncPolicy::Never;
    config
}

fn payload(fields: &[(&str, PayloadValue)]) -> Payload {
    let mut payload = Payload::default();
    for (key, value) in fields {
        payload.insert(key.to_string(), value.clone());
    }
    payload
}

fn tag(value: &str) -> Payload {
    payload(&[("tag", PayloadValue::String(value.into()))])
}

fn point(doc_id: u64, vector: &[f32], payload: Payload) -> PointWrite {
    PointWrite {
        doc_id,
        vector: vector.to_vec(),
        payload,
    }
}

/// Inserts `vectors` (row-major) as docs 0.., tagging doc i with `tag_of(i)`.
fn load(
    instance: &Instance,
    target: NamespaceRef<'_>,
    vectors: &[f32],
    tag_of: impl Fn(usize) -> Payload,
) {
    let dim = instance.config().dim;
    let rows: Vec<PointWrite> = vectors
        .chunks(dim)
        .enumerate()
        .map(|(i, v)| point(i as u64, v, tag_of(i)))
        .collect();
    for chunk in rows.chunks(500) {
        let answers = instance.upsert(target, chunk.to_vec()).unwrap();
        assert!(answers.iter().all(Result::is_ok));
    }
}

fn ids(instance: &Instance, target: NamespaceRef<'_>, query: &[f32], k: usize) -> Vec<u64> {
    instance
        .search(target, &SearchRequest::new(query, k))
        .unwrap()
        .hits
        .iter()
        .map(|h| h.doc_id)
        .collect()
}

#[test]
fn written_points_are_searchable_at_once_and_tenants_never_see_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let instance = Instance::open(dir.path(), config(DIM)).unwrap();
    let (base, _) = clustered_set(200, 0, DIM, 8, 1);
    load(&instance, A, &base[..100 * DIM], |_| tag("a"));
    // Tenant B uses the same doc ids with other vectors.
    load(&instance, B, &base[100 * DIM..], |_| tag("b"));

    for doc in [0u64, 42, 99] {
        let row = &base[doc as usize * DIM..(doc as usize + 1) * DIM];
        assert_eq!(ids(&instance, A, row, 1), vec![doc]);
        let hits = instance
            .search(
                B,
                &SearchRequest {
                    with_payload: true,
                    ..SearchRequest::new(row, 100)
                },
            )
            .unwrap();
        assert!(
            hits.hits.iter().all(|h| h.payload == Some(tag("b"))),
            "B saw A's points"
        );
    }
    assert_eq!(instance.count(A, None).unwrap(), 100);
    assert_eq!(instance.count(B, None).unwrap(), 100);
    let other = NamespaceRef::new("tenant-c", "episodes");
    assert!(matches!(
        instance.search(other, &SearchRequest::new(&base[..DIM], 1)),
        Err(StorageError::NamespaceNotFound { .. })
    ));
    assert_eq!(instance.list_namespaces(Some("tenant-a")).len(), 1);
    assert_eq!(instance.list_namespaces(None).len(), 2);
}

#[test]
fn bad_points_are_refused_one_by_one_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let instance = Instance::open(dir.path(), config(4)).unwrap();
    let answers = instance
        .upsert(
            A,
            vec![
                point(1, &[1.0, 0.0, 0.0, 0.0], tag("ok")),
                point(2, &[1.0, 0.0], tag("short")),
                point(3, &[f32::NAN, 0.0, 0.0, 1.0], tag("nan")),
                point(4, &[0.0; 4], tag("zero")),
                point(5, &[0.0, 1.0, 0.0, 0.0], tag("ok")),
            ],
        )
        .unwrap();
    assert!(answers[0].is_ok() && answers[4].is_ok());
    for answer in &answers[1..4] {
        let err = answer.as_ref().unwrap_err().to_string();
        assert!(err.starts_with("vector"), "{err}");
    }
    assert_eq!(instance.count(A, None).unwrap(), 2);
    let err = instance
        .search(A, &SearchRequest::new(&[1.0, 0.0, 0.0, 0.0], 0))
        .unwrap_err();
    assert!(err.to_string().starts_with('k'), "{err}");
    let bad_name = NamespaceRef::new("tenant a", "x");
    assert!(instance
        .insert(bad_name, point(1, &[1.0, 0.0, 0.0, 0.0], tag("x")))
        .unwrap_err()
        .to_string()
        .starts_with("tenant"));
}

#[test]
fn get_update_delete_count_and_scroll_behave_like_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let instance = Instance::open(dir.path(), config(DIM)).unwrap();
    let (base, _) = clustered_set(50, 0, DIM, 4, 2);
    load(&instance, A, &base, |i| {
        payload(&[
            (
                "tag",
                PayloadValue::String(if i % 2 == 0 { "even" } else { "odd" }.into()),
            ),
            ("n", PayloadValue::Integer(i as i64)),
        ])
    });

    let got = instance.get(A, &[3, 999], true, true).unwrap();
    let three = got[0].as_ref().unwrap();
    assert_eq!(
        three.payload.as_ref().unwrap().get("n"),
        Some(&PayloadValue::Integer(3))
    );
    assert_eq!(three.vector.as_ref().unwrap().len(), DIM);
    assert!(got[1].is_none());

    instance
        .update_payload(
            A,
            3,
            payload(&[("fixed", PayloadValue::Bool(true))]),
            PayloadUpdate::Merge,
        )
        .unwrap();
    let merged = instance.get(A, &[3], false, true).unwrap()[0]
        .clone()
        .unwrap()
        .payload
        .unwrap();
    assert_eq!(merged.get("n"), Some(&PayloadValue::Integer(3)));
    assert_eq!(merged.get("fixed"), Some(&PayloadValue::Bool(true)));
    instance
        .update_payload(A, 3, tag("replaced"), PayloadUpdate::Replace)
        .unwrap();
    let replaced = instance.get(A, &[3], false, true).unwrap()[0]
        .clone()
        .unwrap()
        .payload
        .unwrap();
    assert_eq!(replaced, tag("replaced"));
    assert!(matches!(
        instance.update_payload(A, 12345, tag("x"), PayloadUpdate::Merge),
        Err(StorageError::DocNotFound { doc_id: 12345, .. })
    ));

    let odd = Filter::eq("tag", "odd");
    assert_eq!(instance.count(A, Some(&odd)).unwrap(), 24); // 25 odd docs, doc 3 re-tagged
    assert_eq!(instance.delete(A, &[1, 1, 5, 777]).unwrap(), 2);
    assert_eq!(instance.count(A, Some(&odd)).unwrap(), 22);
    assert_eq!(instance.delete_by_filter(A, &odd).unwrap(), 22);
    assert_eq!(instance.count(A, Some(&odd)).unwrap(), 0);
    assert_eq!(instance.count(A, None).unwrap(), 26);

    // Scroll visits every remaining doc once, in doc order, page by page.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = instance.scroll(A, None, after, 7, false, true).unwrap();
        assert!(page.points.len() <= 7);
        seen.extend(page.points.iter().map(|p| p.doc_id));
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let mut expected: Vec<u64> = (0..50).filter(|i| i % 2 == 0).collect();
    expected.push(3);
    expected.sort_unstable();
    assert_eq!(seen, expected);
    let even = Filter::eq("tag", "even");
    let page = instance
        .scroll(A, Some(&even), Some(10), 100, false, false)
        .unwrap();
    assert!(page
        .points
        .iter()
        .all(|p| p.doc_id > 10 && p.doc_id % 2 == 0));
    // The next page of the same filter sees a change made in between (the
    // filter's result is cached per namespace until a write).
    let scroll_even = |after| {
        let page = instance.scroll(A, Some(&even), after, 100, false, false);
        page.unwrap()
            .points
            .iter()
            .map(|p| p.doc_id)
            .collect::<Vec<u64>>()
    };
    assert!(scroll_even(Some(10)).contains(&12));
    instance
        .update_payload(A, 12, tag("odd"), PayloadUpdate::Replace)
        .unwrap();
    assert!(!scroll_even(Some(10)).contains(&12));
    assert_eq!(instance.count(A, Some(&even)).unwrap(), 24);
    assert!(instance.scroll(A, None, None, 0, false, false).is_err());
}

#[test]
fn upsert_replaces_the_point_in_the_hot_and_the_cold_tier() {
    let dir = tempfile::tempdir().unwrap();
    let instance = Instance::open(dir.path(), config(4)).unwrap();
    instance
        .insert(A, point(7, &[1.0, 0.0, 0.0, 0.0], tag("v1")))
        .unwrap();
    instance.flush(Some(A)).unwrap();
    instance
        .insert(A, point(7, &[0.0, 1.0, 0.0, 0.0], tag("v2")))
        .unwrap();
    let old = ids(&instance, A, &[1.0, 0.0, 0.0, 0.0], 10);
    assert_eq!(old, vec![7], "one point per doc id");
    let hit = instance
        .search(
            A,
            &SearchRequest {
                with_payload: true,
                ..SearchRequest::new(&[0.0, 1.0, 0.0, 0.0], 1)
            },
        )
        .unwrap()
        .hits[0]
        .clone();
    assert_eq!(hit.payload, Some(tag("v2")));
    assert!((hit.score - 1.0).abs() < 1e-5);
    instance
        .insert(A, point(7, &[0.0, 0.0, 1.0, 0.0], tag("v3")))
        .unwrap();
    assert_eq!(instance.count(A, None).unwrap(), 1);
    let got = instance.get(A, &[7], true, true).unwrap()[0]
        .clone()
        .unwrap();
    assert_eq!(got.payload, Some(tag("v3")));
    assert_eq!(got.vector, Some(vec![0.0, 0.0, 1.0, 0.0]));
}

/// Graph-plan answers (filtered and not) before and after sealing the hot
/// tier into a cold segment; returns how many of 50 queries agree exactly
/// (same docs, same distance bits) in each mode.
fn hot_and_cold_agreement(quantization: Quantization) -> (usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(DIM);
    // Force graph searches, filtered or not.
    config.planner.exact_namespace_points = 0;
    config.planner.exact_filter_matches = 0;
    config.planner.exact_filter_selectivity = 0.0;
    config.cold_quantization = quantization;
    let instance = Instance::open(dir.path(), config).unwrap();
    let (base, queries) = clustered_set(3_000, 50, DIM, 20, 3);
    load(&instance, A, &base, |i| {
        tag(if i % 3 == 0 { "x" } else { "y" })
    });
    let filter = Filter::eq("tag", "x");
    let run = |filtered: bool| -> Vec<Vec<(u64, u32)>> {
        queries
            .chunks(DIM)
            .map(|q| {
                let request = SearchRequest {
                    filter: filtered.then_some(&filter),
                    ..SearchRequest::new(q, 10)
                };
                let response = instance.search(A, &request).unwrap();
                assert_eq!(response.plan, QueryPlan::Graph);
                response
                    .hits
                    .iter()
                    .map(|h| (h.doc_id, h.distance.to_bits()))
                    .collect()
            })
            .collect()
    };
    let hot = (run(false), run(true));
    assert_eq!(instance.flush(Some(A)).unwrap(), 1);
    let info = &instance.list_namespaces(Some(A.tenant))[0];
    assert_eq!((info.hot_points, info.cold_segments), (0, 1));
    let cold = (run(false), run(true));
    let agree = |a: &[Vec<(u64, u32)>], b: &[Vec<(u64, u32)>]| {
        a.iter().zip(b).filter(|(x, y)| x == y).count()
    };
    (agree(&hot.0, &cold.0), agree(&hot.1, &cold.1))
}

#[test]
fn results_are_identical_whether_points_sit_in_the_hot_or_the_cold_tier() {
    // The cold segment is the hot graph written out and searched by the same
    // code from the mmap: every answer is the same, to the distance bit.
    assert_eq!(hot_and_cold_agreement(Quantization::None), (50, 50));
}

#[test]
fn i8_cold_traversal_rescored_in_f32_finds_what_the_hot_tier_finds() {
    // Traversal on the i8 copy may take another path through the graph;
    // rescoring keeps distances exact, so answers agree almost always.
    let (unfiltered, filtered) = hot_and_cold_agreement(Quantization::I8);
    assert!(
        unfiltered >= 48,
        "only {unfiltered}/50 unfiltered answers agree"
    );
    assert!(filtered >= 48, "only {filtered}/50 filtered answers agree");
}

#[test]
fn exact_plan_for_small_namespaces_and_selective_filters_gives_recall_one() {
    let dir = tempfile::tempdir().unwrap();
    let instance = Instance::open(dir.path(), config(DIM)).unwrap();
    let (base, queries) = clustered_set(5_000, 30, DIM, 10, 4);
    load(&instance, A, &base, |i| {
        payload(&[("bucket", PayloadValue::Integer((i % 100) as i64))])
    });
    instance.flush(Some(A)).unwrap();
    let truth = ground_truth(Metric::Cosine, DIM, &base, &queries, 10, |_| true);
    let mut results = Vec::new();
    for q in queries.chunks(DIM) {
        let response = instance.search(A, &SearchRequest::new(q, 10)).unwrap();
        assert_eq!(response.plan, QueryPlan::Exact);
        results.push(response.hits.iter().map(|h| h.doc_id).collect());
    }
    assert_eq!(recall(&results, &truth), 1.0);
    let filter = Filter::range("bucket", Range::new().gte(10i64).lt(13i64));
    let truth = ground_truth(Metric::Cosine, DIM, &base, &queries, 10, |i| {
        (10..13).contains(&(i % 100))
    });
    let results: Vec<Vec<u64>> = queries
        .chunks(DIM)
        .map(|q| {
            let request = SearchRequest {
                filter: Some(&filter),
                ..SearchRequest::new(q, 10)
            };
            let response = instance.search(A, &request).unwrap();
            assert_eq!(response.candidates, 150);
            response.hits.iter().map(|h| h.doc_id).collect()
        })
        .collect();
    assert_eq!(recall(&results, &truth), 1.0);
}

#[test]
fn filtered_recall_holds_at_every_selectivity_through_the_planner() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(DIM);
    config.hot_max_points = 8_000; // several cold segments plus a hot one
    let instance = Instance::open(dir.path(), config).unwrap();
    let n = 20_000;
    let (base, queries) = clustered_set(n, 40, DIM, 40, 5);
    // Label i matches selectivity s when (i * 7919 % 1000) < s * 1000.
    let rank = |i: usize| (i * 7919 % 1000) as i64;
    load(&instance, A, &base, |i| {
        payload(&[("rank", PayloadValue::Integer(rank(i)))])
    });
    assert!(instance.list_namespaces(None)[0].cold_segments >= 2);
    for selectivity in [0.001, 0.01, 0.1, 0.5, 1.0] {
        let limit = (selectivity * 1000.0) as i64;
        let filter = Filter::range("rank", Range::new().lt(limit));
        let truth = ground_truth(Metric::Cosine, DIM, &base, &queries, 10, |i| {
            rank(i) < limit
        });
        let mut plans = HashSet::new();
        let results: Vec<Vec<u64>> = queries
            .chunks(DIM)
            .map(|q| {
                let request = SearchRequest {
                    filter: Some(&filter),
                    ef: Some(64),
                    ..SearchRequest::new(q, 10)
                };
                let response = instance.search(A, &request).unwrap();
                plans.insert(response.plan);
                response.hits.iter().map(|h| h.doc_id).collect()
            })
            .collect();
        let r = recall(&results, &truth);
        assert!(
            r >= 0.95,
            "selectivity {selectivity}: recall {r:.3} with {plans:?}"
        );
    }
}

#[test]
fn acknowledged_writes_survive_dropping_the_instance_without_flush() {
    let dir = tempfile::tempdir().unwrap();
    let (base, _) = clustered_set(600, 0, DIM, 8, 6);
    {
        let mut config = config(DIM);
        config.hot_max_points = 250;
        let instance = Instance::open(dir.path(), config).unwrap();
        load(&instance, A, &base, |i| {
            payload(&[("n", PayloadValue::Integer(i as i64))])
        });
        instance.delete(A, &[10, 20, 300]).unwrap();
        instance
            .update_payload(A, 30, tag("updated"), PayloadUpdate::Replace)
            .unwrap();
        load(&instance, B, &base[..5 * DIM], |_| tag("b"));
        // Dropped without a flush: nothing is sealed, the hot tier lives
        // only in the write log. (tests/crash.rs SIGKILLs a real process.)
        drop(instance);
    }
    let instance = Instance::open(dir.path(), config(DIM)).unwrap();
    assert_eq!(instance.count(A, None).unwrap(), 597);
    assert_eq!(instance.count(B, None).unwrap(), 5);
    for doc in [0u64, 299, 599] {
        let row = &base[doc as usize * DIM..(doc as usize + 1) * DIM];
        assert_eq!(ids(&instance, A, row, 1), vec![doc]);
    }
    for deleted in [10u64, 20, 300] {
        let row = &base[deleted as usize * DIM..(deleted as usize + 1) * DIM];
        assert!(
            !ids(&instance, A, row, 50).contains(&deleted),
            "deleted doc {deleted} came back"
        );
        assert!(instance.get(A, &[deleted], false, false).unwrap()[0].is_none());
    }
    let thirty = instance.get(A, &[30], false, true).unwrap()[0]
        .clone()
        .unwrap();
    assert_eq!(thirty.payload, Some(tag("updated")));
    // New writes after recovery get fresh point ids and replace correctly.
    instance
        .insert(A, point(0, &base[DIM..2 * DIM], tag("moved")))
        .unwrap();
    assert_eq!(instance.count(A, None).unwrap(), 597);
}

#[test]
fn a_corrupt_segment_file_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let (base, _) = clustered_set(300, 0, DIM, 4, 7);
    {
        let instance = Instance::open(dir.path(), config(DIM)).unwrap();
        load(&instance, A, &base, |_| Payload::default());
        instance.flush(None).unwrap();
    }
    let segment = std::fs::read_dir(dir.path().join("segments"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let file = segment.join("vectors.f32");
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() - 5;
    bytes[at] ^= 0x40;
    std::fs::write(&file, &bytes).unwrap();
    let err = Instance::open(dir.path(), config(DIM))
        .err()
        .expect("corrupt segment must be refused")
        .to_string();
    assert!(
        err.contains("vectors.f32") && err.contains("checksum"),
        "{err}"
    );

    // A torn (truncated) file is refused too.
    bytes[at] ^= 0x40;
    std::fs::write(&file, &bytes[..bytes.len() - 100]).unwrap();
    let err = Instance::open(dir.path(), config(DIM))
        .err()
        .expect("torn segment must be refused")
        .to_string();
    assert!(err.contains("vectors.f32"), "{err}");
}

#[test]
fn reopening_with_another_dimension_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    Instance::open(dir.path(), config(DIM))
        .unwrap()
        .close()
        .unwrap();
    let err = Instance::open(dir.path(), config(DIM + 1)).err().unwrap();
    assert!(matches!(err, StorageError::ConfigMismatch { .. }), "{err}");
}

#[test]
fn a_snapshot_restores_the_state_it_was_taken_at() {
    let dir = tempfile::tempdir().unwrap();
    let (base, _) = clustered_set(400, 0, DIM, 8, 8);
    let snapshot = dir.path().join("snap");
    let data = dir.path().join("data");
    {
        let instance = Instance::open(&data, config(DIM)).unwrap();
        load(&instance, A, &base[..200 * DIM], |_| tag("before"));
        instance.flush(None).unwrap();
        load(&instance, A, &base[..10 * DIM], |_| tag("hot-before")); // docs 0..10 replaced, hot
        instance.create_snapshot(&snapshot).unwrap();
        assert!(
            instance.create_snapshot(&snapshot).is_err(),
            "snapshot target must be new"
        );
        // After the snapshot: more writes, a delete and a merge.
        instance.delete(A, &[100, 101]).unwrap();
        instance.flush(None).unwrap();
        instance.optimize(A, true).unwrap();
        let rest: Vec<f32> = base[200 * DIM..].to_vec();
        let rows: Vec<PointWrite> = rest
            .chunks(DIM)
            .enumerate()
            .map(|(i, v)| point(200 + i as u64, v, tag("after")))
            .collect();
        instance.upsert(A, rows).unwrap();
        assert_eq!(instance.count(A, None).unwrap(), 398);
    }
    let restored = dir.path().join("restored");
    Instance::restore_snapshot(&snapshot, &restored).unwrap();
    assert!(
        Instance::restore_snapshot(&snapshot, &restored).is_err(),
        "restore target must be empty"
    );
    let instance = Instance::open(&restored, config(DIM)).unwrap();
    assert_eq!(instance.count(A, None).unwrap(), 200);
    let got = instance.get(A, &[5, 100, 250], false, true).unwrap();
    assert_eq!(got[0].clone().unwrap().payload, Some(tag("hot-before")));
    assert_eq!(got[1].clone().unwrap().payload, Some(tag("before")));
    assert!(got[2].is_none());
    let row = &base[150 * DIM..151 * DIM];
    assert_eq!(ids(&instance, A, row, 1), vec![150]);
}

#[test]
fn the_optimizer_merges_small_segments_and_drops_deleted_points() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(DIM);
    config.hot_max_points = 500;
    config.optimizer.merge_min_segments = 3;
    config.planner.exact_namespace_points = 0;
    let instance = Instance::open(dir.path(), config.clone()).unwrap();
    let (base, queries) = clustered_set(2_000, 20, DIM, 10, 9);
    load(&instance, A, &base, |_| Payload::default());
    assert_eq!(instance.list_namespaces(None)[0].cold_segments, 4);
    let deleted: Vec<u64> = (0..2_000).filter(|i| i % 4 == 0).collect();
    instance.delete(A, &deleted).unwrap();
    let report = instance.optimize(A, false).unwrap();
    assert_eq!(report.segments_in, 4);
    assert_eq!((report.segments_out, report.points), (1, 1_500));
    let info = &instance.list_namespaces(None)[0];
    assert_eq!((info.cold_segments, info.points), (1, 1_500));
    let segment_dirs = std::fs::read_dir(dir.path().join("segments"))
        .unwrap()
        .count();
    assert_eq!(segment_dirs, 1, "replaced segments are removed");

    let truth = ground_truth(Metric::Cosine, DIM, &base, &queries, 10, |i| i % 4 != 0);
    let results: Vec<Vec<u64>> = queries
        .chunks(DIM)
        .map(|q| ids(&instance, A, q, 10))
        .collect();
    assert!(recall(&results, &truth) >= 0.95);
    assert!(results.iter().flatten().all(|d| d % 4 != 0));
    drop(instance);
    let instance = Instance::open(dir.path(), config).unwrap();
    assert_eq!(instance.count(A, None).unwrap(), 1_500);
    let reopened: Vec<Vec<u64>> = queries
        .chunks(DIM)
        .map(|q| ids(&instance, A, q, 10))
        .collect();
    assert_eq!(reopened, results);
}

#[test]
fn the_background_thread_seals_and_merges_while_writes_continue() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(DIM);
    config.optimizer.background = true;
    config.optimizer.interval = Duration::from_millis(50);
    config.optimizer.merge_min_segments = 3;
    config.hot_max_points = 300;
    let instance = Instance::open(dir.path(), config).unwrap();
    let (base, _) = clustered_set(3_000, 0, DIM, 10, 10);
    for (i, row) in base.chunks(DIM).enumerate() {
        instance
            .insert(A, point(i as u64, row, Payload::default()))
            .unwrap();
        if i % 500 == 0 {
            let probe = &base[..DIM];
            assert_eq!(ids(&instance, A, probe, 1), vec![0]);
        }
    }
    // Settled: the hot tier sealed, and merged down until no size tier
    // (a factor of 3 in live points: merge_min_segments) holds 3 segments.
    // Ten seals of 300 points without merges would leave ten segments.
    let settled = |info: &kyro_engine::storage::NamespaceInfo| {
        let mut per_tier = std::collections::HashMap::new();
        for &points in &info.cold_segment_points {
            let tier = ((points.max(1) as f64).ln() / 3f64.ln()).floor() as u32;
            *per_tier.entry(tier).or_insert(0) += 1;
        }
        info.hot_points < 300 && info.cold_segments < 10 && per_tier.values().all(|&n| n < 3)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let info = instance.list_namespaces(None)[0].clone();
        if settled(&info) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "background work never settled: {info:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(instance.count(A, None).unwrap(), 3_000);
    for doc in [0u64, 1_234, 2_999] {
        let row = &base[doc as usize * DIM..(doc as usize + 1) * DIM];
        assert_eq!(ids(&instance, A, row, 1), vec![doc]);
    }
}

#[test]
fn cached_answers_are_reused_and_never_outlive_a_write() {
    let dir = tempfile::tempdir().unwrap();
    let instance = Instance::open(dir.path(), config(4)).unwrap();
    instance
        .insert(A, point(1, &[1.0, 0.0, 0.0, 0.0], tag("x")))
        .unwrap();
    instance.flush(None).unwrap();
    let query = [0.9, 0.1, 0.0, 0.0];
    let request = SearchRequest {
        with_payload: true,
        ..SearchRequest::new(&query, 5)
    };
    let first = instance.search(A, &request).unwrap();
    let second = instance.search(A, &request).unwrap();
    assert!(!first.cached && second.cached);
    assert_eq!(first.hits, second.hits);
    // A write to the namespace: the next answer includes it.
    instance
        .insert(A, point(2, &[0.9, 0.1, 0.0, 0.0], tag("y")))
        .unwrap();
    let third = instance.search(A, &request).unwrap();
    assert!(!third.cached);
    assert_eq!(third.hits[0].doc_id, 2);
    // A payload update: the next answer shows it (query and point caches).
    instance
        .update_payload(A, 1, tag("z"), PayloadUpdate::Replace)
        .unwrap();
    let fourth = instance.search(A, &request).unwrap();
    let one = fourth.hits.iter().find(|h| h.doc_id == 1).unwrap();
    assert_eq!(one.payload, Some(tag("z")));
    // A write elsewhere does not invalidate this namespace.
    instance
        .insert(B, point(1, &[1.0, 0.0, 0.0, 0.0], tag("b")))
        .unwrap();
    assert!(instance.search(A, &request).unwrap().cached);
    let stats = instance.stats();
    assert!(stats.query_cache.hits >= 2);
    assert!(stats.point_cache.hits + stats.point_cache.misses >= 1);
}

#[test]
fn dropping_a_namespace_removes_its_points_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let (base, _) = clustered_set(100, 0, DIM, 4, 11);
    {
        let instance = Instance::open(dir.path(), config(DIM)).unwrap();
        load(&instance, A, &base, |_| tag("a"));
        instance.flush(None).unwrap();
        load(&instance, A, &base[..10 * DIM], |_| tag("hot"));
        load(&instance, B, &base, |_| tag("b"));
        assert!(instance.drop_namespace(A).unwrap());
        assert!(!instance.drop_namespace(A).unwrap());
        assert!(instance.count(A, None).is_err());
    }
    let instance = Instance::open(dir.path(), config(DIM)).unwrap();
    assert!(matches!(
        instance.count(A, None),
        Err(StorageError::NamespaceNotFound { .. })
    ));
    assert_eq!(instance.count(B, None).unwrap(), 100);
    // Re-creating it starts empty.
    instance
        .insert(A, point(1, &base[..DIM], tag("new")))
        .unwrap();
    assert_eq!(instance.count(A, None).unwrap(), 1);
    assert!(std::fs::read_dir(dir.path().join("segments"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn concurrent_writers_and_readers_lose_nothing_under_fsync_always() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(DIM);
    config.fsync = FsyncPolicy::Always;
    config.hot_max_points = 400;
    config.optimizer.background = true;
    config.optimizer.interval = Duration::from_millis(20);
    let instance = Instance::open(dir.path(), config).unwrap();
    let (base, _) = clustered_set(1_600, 0, DIM, 10, 12);
    let rows = &base;
    std::thread::scope(|scope| {
        for writer in 0..8 {
            let instance = &instance;
            scope.spawn(move || {
                for i in (writer..1_600).step_by(8) {
                    let row = &rows[i * DIM..(i + 1) * DIM];
                    instance.insert(A, point(i as u64, row, tag("w"))).unwrap();
                }
            });
        }
        let instance = &instance;
        scope.spawn(move || {
            for _ in 0..50 {
                if let Ok(response) = instance.search(A, &SearchRequest::new(&rows[..DIM], 5)) {
                    assert!(response.hits.len() <= 5);
                }
            }
        });
    });
    assert_eq!(instance.count(A, None).unwrap(), 1_600);
    let sync = instance.stats().sync;
    assert!(sync.synced_writes >= 1_600, "{sync:?}");
    drop(instance);
    let instance = Instance::open(dir.path(), self::config(DIM)).unwrap();
    assert_eq!(instance.count(A, None).unwrap(), 1_600);
    for doc in [0u64, 777, 1_599] {
        let row = &base[doc as usize * DIM..(doc as usize + 1) * DIM];
        assert_eq!(ids(&instance, A, row, 1), vec![doc]);
    }
}
