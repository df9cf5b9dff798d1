//! Graceful shutdown (issue 15, item 3): readiness answers 503 (not a
//! refused connection) while calls drain, and a SIGTERM that lands during a
//! long background merge cancels it and exits within the documented 30 s,
//! with every point served after the restart.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{vector, wait_exit, write_config, TestServer, ADMIN, ALICE, TEXT_DIM};
use kyro_proto::v1 as pb;

/// The documented bound of a graceful stop (docs/operations.md).
const SHUTDOWN_BOUND: Duration = Duration::from_secs(30);

fn batch(namespace: &str, first: u64, count: u64) -> pb::BulkInsertRequest {
    pb::BulkInsertRequest {
        namespace: namespace.into(),
        points: (first..first + count)
            .map(|doc_id| pb::Point {
                doc_id,
                vector: vector(TEXT_DIM, doc_id),
                payload: Default::default(),
            })
            .collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_answers_503_while_in_flight_calls_drain() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(&dir.path().join("data"));
    assert_eq!(server.http_get("/health/ready").0, 200);
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::BulkInsertRequest>(1);
    let mut streamer = server.text(&ALICE).await;
    let stream = tokio::spawn(async move {
        streamer
            .bulk_insert(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    tx.send(batch("drain", 0, 5)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.signal("TERM");
    // The stream is still open, so the drain goes on: the probe must get
    // an answer, and that answer is 503.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (status, body) = loop {
        let (status, body) = server.http_get("/health/ready");
        if status != 200 || Instant::now() > deadline {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("not ready"), "{body}");
    assert_eq!(
        server.http_get("/health/live").0,
        200,
        "still alive while draining"
    );
    tx.send(batch("drain", 5, 5)).await.unwrap();
    drop(tx);
    let reply = stream
        .await
        .unwrap()
        .expect("the stream completes")
        .into_inner();
    assert_eq!(reply.inserted, 10);
    let status = wait_exit(&mut server.child, SHUTDOWN_BOUND);
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_long_merge_exits_within_the_bound_and_keeps_every_point() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // No merge before all 40 segments exist: then one merge of all of them.
    let config = write_config(
        dir.path(),
        "[instances.text]\nmerge_min_segments = 40\noptimizer_interval_ms = 200\n",
    );
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let server = TestServer::start_logging(&data, Some(&config), &[], "info", Stdio::from(log));
    let mut alice = server.text(&ALICE).await;
    let mut admin = server.text(&ADMIN).await;
    // 40 segments of 500 points, one size tier: the optimizer merges all of
    // them at once, a build of 20,000 points.
    let (segments, per_segment) = (40u64, 500u64);
    for segment in 0..segments {
        let reply = alice
            .bulk_insert(tokio_stream::iter(vec![batch(
                "merge",
                segment * per_segment,
                per_segment,
            )]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.failed, 0);
        admin
            .flush(pb::FlushRequest {
                namespace: "merge".into(),
                tenant: ALICE.tenant.into(),
            })
            .await
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if text.contains("merging cold segments") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the optimizer never started a merge:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stopping = Instant::now();
    let status = tokio::task::spawn_blocking(move || server.stop())
        .await
        .unwrap();
    let took = stopping.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(took <= SHUTDOWN_BOUND, "SIGTERM took {took:?}");
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        text.contains("merge cancelled") || text.contains("optimized cold segments"),
        "the merge neither finished nor was cancelled:\n{text}"
    );

    let server = TestServer::start_with(&data, Some(&config), &[]);
    let mut alice = server.text(&ALICE).await;
    let count = alice
        .count(pb::CountRequest {
            namespace: "merge".into(),
            filter: None,
        })
        .await
        .unwrap()
        .into_inner()
        .count;
    assert_eq!(count, segments * per_segment);
    for doc in (0..segments * per_segment).step_by(997) {
        let hits = alice
            .search(common::search("merge", vector(TEXT_DIM, doc), 1))
            .await
            .unwrap()
            .into_inner()
            .hits;
        assert_eq!(hits[0].doc_id, doc);
    }
}
