//! Every RPC of `kyro.v1.Kyro` against the real server, one behaviour per
//! test. Each test starts its own server with the same data: doc 1
//! (`tool = cargo`, `exit = 101`) and docs 100..=199 (`tool` npm for even
//! ids, pip for odd) written by one BulkInsert, whose doc 120 has a
//! 3-dimensional vector and is refused.

mod common;

use common::*;
use kyro_proto::v1 as pb;
use tonic::Code;

const NS: &str = "episodes";

fn code<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> (Code, String) {
    let status = result.expect_err("the call should fail");
    (status.code(), status.message().to_owned())
}

/// The standard data's writes: an Insert of doc 1, then a BulkInsert of
/// two messages (docs 100..=199, doc 120 refused).
async fn write_standard_data(alice: &mut Client) -> (pb::InsertResponse, pb::BulkInsertResponse) {
    let ns = NS;
    let inserted = alice
        .insert(insert(
            ns,
            1,
            vector(TEXT_DIM, 1),
            &[("tool", string("cargo")), ("exit", integer(101))],
        ))
        .await
        .unwrap()
        .into_inner();
    let mut messages = Vec::new();
    for batch in 0..2u64 {
        let points = (0..50u64)
            .map(|i| {
                let doc_id = 100 + batch * 50 + i;
                let tool = if doc_id % 2 == 0 { "npm" } else { "pip" };
                pb::Point {
                    doc_id,
                    vector: if doc_id == 120 {
                        vec![1.0; 3]
                    } else {
                        vector(TEXT_DIM, doc_id)
                    },
                    payload: [
                        ("tool".to_owned(), string(tool)),
                        ("exit".to_owned(), integer(doc_id as i64)),
                    ]
                    .into_iter()
                    .collect(),
                }
            })
            .collect();
        messages.push(pb::BulkInsertRequest {
            namespace: ns.to_owned(),
            points,
        });
    }
    let bulk = alice
        .bulk_insert(tokio_stream::iter(messages))
        .await
        .unwrap()
        .into_inner();
    (inserted, bulk)
}

/// A server with the standard data, and clients for alice and the admin.
async fn seeded(dir: &tempfile::TempDir) -> (TestServer, Client, Client) {
    let server = TestServer::start(&dir.path().join("data"));
    let mut alice = server.text(&ALICE).await;
    let admin = server.text(&ADMIN).await;
    write_standard_data(&mut alice).await;
    (server, alice, admin)
}

fn get(doc_id: u64) -> pb::GetRequest {
    pb::GetRequest {
        namespace: NS.into(),
        doc_id,
        with_vector: false,
        with_payload: None,
    }
}

fn count(filter: Option<pb::Filter>) -> pb::CountRequest {
    pb::CountRequest {
        namespace: NS.into(),
        filter,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_and_bulk_insert_answer_for_every_point() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("data"));
    let mut alice = server.text(&ALICE).await;
    let (reply, bulk) = write_standard_data(&mut alice).await;
    assert_eq!(reply.doc_id, 1);
    let reply = bulk;
    assert_eq!(reply.inserted, 99);
    assert_eq!(reply.failed, 1);
    assert_eq!(reply.errors[0].doc_id, 120);
    assert_eq!(reply.errors[0].index, 20);
    assert!(
        reply.errors[0].message.starts_with("vector"),
        "{}",
        reply.errors[0].message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_bulk_get_return_points_and_name_the_missing() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, mut alice, _admin) = seeded(&dir).await;
    let ns = NS;
    // Get and BulkGet.
    let point = alice
        .get(pb::GetRequest {
            namespace: ns.into(),
            doc_id: 1,
            with_vector: true,
            with_payload: None,
        })
        .await
        .unwrap()
        .into_inner()
        .point
        .unwrap();
    assert_eq!(point.doc_id, 1);
    assert_eq!(point.vector.len(), TEXT_DIM);
    assert_eq!(point.payload["tool"], string("cargo"));
    let reply = alice
        .bulk_get(pb::BulkGetRequest {
            namespace: ns.into(),
            doc_ids: vec![1, 120, 101, 9999],
            with_vector: false,
            with_payload: Some(false),
        })
        .await
        .unwrap()
        .into_inner();
    let found: Vec<u64> = reply.points.iter().map(|p| p.doc_id).collect();
    assert_eq!(found, vec![1, 101]);
    assert!(reply
        .points
        .iter()
        .all(|p| p.payload.is_empty() && p.vector.is_empty()));
    assert_eq!(reply.missing_doc_ids, vec![120, 9999]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_payload_merges_or_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, mut alice, _admin) = seeded(&dir).await;
    let ns = NS;
    // UpdatePayload: merge keeps other keys, replace drops them.
    alice
        .update_payload(pb::UpdatePayloadRequest {
            namespace: ns.into(),
            doc_id: 1,
            payload: [("fixed".to_owned(), string("yes"))].into_iter().collect(),
            mode: pb::UpdateMode::Merge as i32,
        })
        .await
        .unwrap();
    let payload = alice
        .get(get(1))
        .await
        .unwrap()
        .into_inner()
        .point
        .unwrap()
        .payload;
    assert_eq!(payload.len(), 3);
    alice
        .update_payload(pb::UpdatePayloadRequest {
            namespace: ns.into(),
            doc_id: 1,
            payload: [("fixed".to_owned(), string("no"))].into_iter().collect(),
            mode: pb::UpdateMode::Replace as i32,
        })
        .await
        .unwrap();
    let payload = alice
        .get(get(1))
        .await
        .unwrap()
        .into_inner()
        .point
        .unwrap()
        .payload;
    assert_eq!(payload.len(), 1);
    assert_eq!(payload["fixed"], string("no"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_a_points_own_vector_first_and_honours_filters() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, mut alice, _admin) = seeded(&dir).await;
    let ns = NS;
    // Search: the inserted vector is its own nearest neighbour.
    let reply = alice
        .search(search(ns, vector(TEXT_DIM, 137), 5))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.hits.len(), 5);
    assert_eq!(reply.hits[0].doc_id, 137);
    assert!(reply.hits[0].score > 0.999, "{}", reply.hits[0].score);
    assert_eq!(reply.hits[0].payload["tool"], string("pip"));
    assert!(reply.hits.windows(2).all(|w| w[0].score >= w[1].score));
    // Filtered search only returns matching points.
    let mut filtered = search(ns, vector(TEXT_DIM, 137), 10);
    filtered.filter = Some(eq("tool", "npm"));
    let reply = alice.search(filtered).await.unwrap().into_inner();
    assert_eq!(reply.hits.len(), 10);
    assert!(reply
        .hits
        .iter()
        .all(|h| h.doc_id % 2 == 0 && h.payload["tool"] == string("npm")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_search_answers_in_request_order() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, mut alice, _admin) = seeded(&dir).await;
    let ns = NS;
    // BatchSearch answers in order.
    let reply = alice
        .batch_search(pb::BatchSearchRequest {
            searches: (140..145)
                .map(|d| search(ns, vector(TEXT_DIM, d), 1))
                .collect(),
        })
        .await
        .unwrap()
        .into_inner();
    let tops: Vec<u64> = reply.results.iter().map(|r| r.hits[0].doc_id).collect();
    assert_eq!(tops, vec![140, 141, 142, 143, 144]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_counts_with_and_without_a_filter() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, mut alice, _admin) = seeded(&dir).await;
    // Count, with and without a filter.
    assert_eq!(
        alice.count(count(None)).await.unwrap().into_inner().count,
        100
    );
    assert_eq!(
        alice
            .count(count(Some(eq("tool", "pip"))))
            .await
            .unwrap()
            .into_inner()
            .count,
        50
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scroll_pages_through_every_point_in_doc_id_order() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, mut alice, _admin) = seeded(&dir).await;
    let ns = NS;
    // Scroll pages through everything in doc id order.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = alice
            .scroll(pb::ScrollRequest {
                namespace: ns.into(),
                after_doc_id: after,
                limit: 30,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.points.iter().map(|p| p.doc_id));
        match page.next_after_doc_id {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 100);
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_and_delete_by_filter_remove_points_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, mut alice, _admin) = seeded(&dir).await;
    let ns = NS;
    // Delete and DeleteByFilter.
    let reply = alice
        .delete(pb::DeleteRequest {
            namespace: ns.into(),
            doc_ids: vec![1, 2, 3],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.deleted, 1);
    let reply = alice
        .delete_by_filter(pb::DeleteByFilterRequest {
            namespace: ns.into(),
            filter: Some(eq("tool", "pip")),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.deleted, 50);
    assert_eq!(
        alice.count(count(None)).await.unwrap().into_inner().count,
        49
    );
    let (status, _) = code(alice.get(get(1)).await);
    assert_eq!(status, Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_namespaces_and_stats_see_the_tenants_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, mut alice, _admin) = seeded(&dir).await;
    let ns = NS;
    // ListNamespaces and Stats see the tenant's namespace.
    let namespaces = alice
        .list_namespaces(pb::ListNamespacesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .namespaces;
    assert_eq!(namespaces.len(), 1);
    assert_eq!(
        (
            namespaces[0].tenant.as_str(),
            namespaces[0].namespace.as_str()
        ),
        ("acme", ns)
    );
    assert_eq!(namespaces[0].points, 100);
    let stats = alice.stats(pb::StatsRequest {}).await.unwrap().into_inner();
    assert_eq!((stats.dim, stats.points, stats.namespaces), (384, 100, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_moves_points_to_the_cold_tier_where_search_still_finds_them() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, mut alice, mut admin) = seeded(&dir).await;
    let ns = NS;
    // Admin: Flush seals the hot tier, CreateSnapshot writes a snapshot,
    // GetConfig returns the effective configuration, Stats the whole instance.
    let reply = admin
        .flush(pb::FlushRequest {
            namespace: ns.into(),
            tenant: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(reply.segments_sealed >= 1, "{reply:?}");
    let stats = admin.stats(pb::StatsRequest {}).await.unwrap().into_inner();
    assert!(stats.cold_segments >= 1 && stats.points == 100, "{stats:?}");
    assert!(stats.query_cache.is_some());
    // Searches still find points after they moved to the cold tier.
    let reply = alice
        .search(search(ns, vector(TEXT_DIM, 138), 1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.hits[0].doc_id, 138);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_snapshot_writes_once_per_name() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, _alice, mut admin) = seeded(&dir).await;
    let snapshot = admin
        .create_snapshot(pb::CreateSnapshotRequest {
            name: "nightly".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        std::path::Path::new(&snapshot.path)
            .join("KYRO_SNAPSHOT")
            .exists(),
        "{snapshot:?}"
    );
    let (status, message) = code(
        admin
            .create_snapshot(pb::CreateSnapshotRequest {
                name: "nightly".into(),
            })
            .await,
    );
    assert_eq!(status, Code::AlreadyExists, "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_config_returns_the_effective_configuration_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, _alice, mut admin) = seeded(&dir).await;
    let config = admin
        .get_config(pb::GetConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!((config.instance.as_str(), config.dim), ("text", 384));
    assert!(
        config.config_toml.contains("[instances.image]"),
        "{}",
        config.config_toml
    );
    assert!(!config
        .config_toml
        .contains(&kyro_server::auth::hash_key(ALICE.key)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_namespace_removes_the_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, mut alice, _admin) = seeded(&dir).await;
    let ns = NS;
    // DropNamespace.
    let reply = alice
        .drop_namespace(pb::DropNamespaceRequest {
            namespace: ns.into(),
            tenant: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(reply.dropped);
    let (status, _) = code(alice.count(count(None)).await);
    assert_eq!(status, Code::NotFound);
}
