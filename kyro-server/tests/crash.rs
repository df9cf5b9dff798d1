//! Issue 15's crash test, from outside: the real server with `fsync =
//! "always"`, concurrent gRPC writers (BulkInsert, Insert as upsert,
//! Delete, UpdatePayload) on one tenant, killed with SIGKILL again and
//! again (every fifth stop a SIGTERM, timed). After every restart each
//! acknowledged write is checked — by Get (present, payload as written, or
//! gone when deleted) and by a search with the point's own vector, which
//! must find it: first at the default ef (64), or else within the top 10 at ef 2,000 (a
//! first-place miss there is a recall figure, reported; not being found
//! at all is a failure) — and `Stats` must report no unreachable point.
//!
//! `KYRO_CRASH_KILLS` sets the number of stops (10 by default, the short
//! form run by `scripts/test.sh`); `scripts/crash-test.sh` runs the long
//! form (100 stops, release build) and prints the figures recorded in
//! `docs/benchmarks.md`.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{integer, vector, TestServer, ADMIN, ALICE, TEXT_DIM};
use kyro_proto::v1 as pb;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tonic::Code;

const NAMESPACE: &str = "crash";
const WRITERS: u64 = 4;
/// The deadline of the reads that check the server after a restart.
const CHECK_TIMEOUT: Duration = Duration::from_secs(300);

/// What one doc should look like, as far as the client knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Doc {
    /// Live with the vector of `seed` and payload `{"v": tag}`.
    Live {
        seed: u64,
        tag: i64,
    },
    Deleted,
}

/// The client's record of every acknowledged write.
#[derive(Default)]
struct Model {
    /// Acknowledged state of each doc ever written.
    docs: HashMap<u64, Doc>,
    /// Writes sent and not (yet) acknowledged: after a kill the doc may
    /// show either state. Doc → the state the write would leave.
    pending: HashMap<u64, Doc>,
    /// Docs written since the last check (checked in full every time).
    touched: HashSet<u64>,
    acknowledged: u64,
}

#[derive(Default, Debug)]
struct Figures {
    stops: usize,
    lost: usize,
    unsearchable: usize,
    /// Live docs whose own vector found another doc first at the default ef
    /// (searched again wide; recall, unless also unsearchable).
    first_misses: usize,
    corrupt: usize,
    unreachable_reported: u64,
    /// The largest hot tier a restart rebuilt (points).
    largest_recovered_hot: u64,
    failed_restarts: usize,
    longest_restart: Duration,
    longest_shutdown: Duration,
}

fn config_text() -> String {
    "[instances.text]\nfsync = \"always\"\nhot_max_points = 1500\n".to_owned()
}

fn kills() -> usize {
    std::env::var("KYRO_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

fn point(doc: u64, seed: u64, tag: i64) -> pb::Point {
    pb::Point {
        doc_id: doc,
        vector: vector(TEXT_DIM, seed),
        payload: [("v".to_owned(), integer(tag))].into_iter().collect(),
    }
}

/// Runs writer `writer` until the server stops answering: it owns the docs
/// `d ≡ writer (mod WRITERS)`, so the order of its acknowledgements is the
/// order of its docs' states.
async fn write_until_failure(
    server_addr: std::net::SocketAddr,
    writer: u64,
    model: Arc<Mutex<Model>>,
    seed: u64,
) {
    let mut client = common::connect(server_addr, Some(ALICE.key), None).await;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    loop {
        let (next_doc, owned): (u64, Vec<u64>) = {
            let model = model.lock().unwrap();
            let owned: Vec<u64> = model
                .docs
                .iter()
                .filter(|(d, state)| *d % WRITERS == writer && matches!(state, Doc::Live { .. }))
                .map(|(d, _)| *d)
                .take(64)
                .collect();
            let next = model
                .docs
                .keys()
                .chain(model.pending.keys())
                .filter(|d| *d % WRITERS == writer)
                .max()
                .map_or(writer, |d| d + WRITERS);
            (next, owned)
        };
        let choice = rng.random_range(0..100);
        let version: u64 = rng.random_range(1..1_000_000);
        // (doc, state after) of each write in this call.
        let (writes, outcome): (Vec<(u64, Doc)>, Result<(), tonic::Status>) = if choice < 40
            || owned.is_empty()
        {
            let docs: Vec<u64> = (0..10).map(|i| next_doc + i * WRITERS).collect();
            let writes: Vec<(u64, Doc)> = docs
                .iter()
                .map(|&d| {
                    (
                        d,
                        Doc::Live {
                            seed: d * 1_000_000 + version,
                            tag: version as i64,
                        },
                    )
                })
                .collect();
            mark_pending(&model, &writes);
            let points = writes
                .iter()
                .map(|&(d, state)| match state {
                    Doc::Live { seed, tag } => point(d, seed, tag),
                    Doc::Deleted => unreachable!(),
                })
                .collect();
            let message = pb::BulkInsertRequest {
                namespace: NAMESPACE.into(),
                points,
            };
            let result = client
                .bulk_insert(tokio_stream::iter(vec![message]))
                .await
                .map(|reply| {
                    let reply = reply.into_inner();
                    assert_eq!(reply.failed, 0, "BulkInsert refused points: {reply:?}");
                });
            (writes, result)
        } else {
            let doc = owned[rng.random_range(0..owned.len())];
            if choice < 65 {
                let state = Doc::Live {
                    seed: doc * 1_000_000 + version,
                    tag: version as i64,
                };
                mark_pending(&model, &[(doc, state)]);
                let request = common::insert(
                    NAMESPACE,
                    doc,
                    vector(TEXT_DIM, doc * 1_000_000 + version),
                    &[("v", integer(version as i64))],
                );
                let result = client.insert(request).await.map(|_| ());
                (vec![(doc, state)], result)
            } else if choice < 75 {
                mark_pending(&model, &[(doc, Doc::Deleted)]);
                let result = client
                    .delete(pb::DeleteRequest {
                        namespace: NAMESPACE.into(),
                        doc_ids: vec![doc],
                    })
                    .await
                    .map(|_| ());
                (vec![(doc, Doc::Deleted)], result)
            } else {
                let Some(Doc::Live { seed, .. }) = model.lock().unwrap().docs.get(&doc).copied()
                else {
                    continue;
                };
                let state = Doc::Live {
                    seed,
                    tag: version as i64,
                };
                mark_pending(&model, &[(doc, state)]);
                let result = client
                    .update_payload(pb::UpdatePayloadRequest {
                        namespace: NAMESPACE.into(),
                        doc_id: doc,
                        payload: [("v".to_owned(), integer(version as i64))]
                            .into_iter()
                            .collect(),
                        mode: pb::UpdateMode::Replace as i32,
                    })
                    .await
                    .map(|_| ());
                (vec![(doc, state)], result)
            }
        };
        match outcome {
            Ok(()) => {
                let mut model = model.lock().unwrap();
                for (doc, state) in writes {
                    model.pending.remove(&doc);
                    model.docs.insert(doc, state);
                    model.touched.insert(doc);
                    model.acknowledged += 1;
                }
            }
            // The server went away: the writes stay pending.
            Err(status)
                if matches!(
                    status.code(),
                    Code::Unavailable | Code::Unknown | Code::Cancelled | Code::Internal
                ) =>
            {
                return
            }
            Err(status) => panic!("writer {writer}: unexpected refusal {status:?}"),
        }
    }
}

fn mark_pending(model: &Mutex<Model>, writes: &[(u64, Doc)]) {
    let mut model = model.lock().unwrap();
    for &(doc, state) in writes {
        model.pending.insert(doc, state);
        model.touched.insert(doc);
    }
}

/// What the server holds for `docs`: doc → (payload tag, or None when the
/// doc does not exist).
async fn read_back(client: &mut common::Client, docs: &[u64]) -> HashMap<u64, Option<i64>> {
    let mut found = HashMap::new();
    for chunk in docs.chunks(1_000) {
        let mut request = tonic::Request::new(pb::BulkGetRequest {
            namespace: NAMESPACE.into(),
            doc_ids: chunk.to_vec(),
            with_vector: false,
            with_payload: Some(true),
        });
        request.set_timeout(CHECK_TIMEOUT);
        let reply = client
            .bulk_get(request)
            .await
            .expect("BulkGet after restart")
            .into_inner();
        for point in reply.points {
            let tag = match point.payload.get("v").and_then(|v| v.kind.clone()) {
                Some(pb::value::Kind::IntegerValue(tag)) => tag,
                _ => i64::MIN,
            };
            found.insert(point.doc_id, Some(tag));
        }
        for doc in reply.missing_doc_ids {
            found.insert(doc, None);
        }
    }
    found
}

/// Checks the docs touched since the last check and a sample of the rest
/// (all of them with `full`); settles pending writes to the state found.
async fn check(
    server: &TestServer,
    model: &Mutex<Model>,
    figures: &mut Figures,
    full: bool,
    rng: &mut ChaCha8Rng,
) {
    let mut client = server.text(&ALICE).await;
    let (docs, pending): (Vec<u64>, HashMap<u64, Doc>) = {
        let model = model.lock().unwrap();
        let mut docs: Vec<u64> = model.touched.iter().copied().collect();
        if full {
            docs.extend(model.docs.keys().copied());
        } else {
            let all: Vec<u64> = model.docs.keys().copied().collect();
            for _ in 0..all.len().min(500) {
                docs.push(all[rng.random_range(0..all.len())]);
            }
        }
        docs.sort_unstable();
        docs.dedup();
        (docs, model.pending.clone())
    };
    let found = read_back(&mut client, &docs).await;
    let mut live = Vec::new();
    {
        let mut model = model.lock().unwrap();
        for &doc in &docs {
            let acked = model.docs.get(&doc).copied();
            let got = found.get(&doc).copied().flatten();
            let matches = |state: Option<Doc>| match (state, got) {
                (Some(Doc::Live { tag, .. }), Some(found)) => tag == found,
                (Some(Doc::Deleted) | None, None) => true,
                _ => false,
            };
            let settled = if matches(acked) {
                acked
            } else if pending.get(&doc).is_some_and(|p| matches(Some(*p))) {
                pending.get(&doc).copied()
            } else {
                match (acked, got) {
                    (Some(Doc::Live { .. }), None) => figures.lost += 1,
                    _ => figures.corrupt += 1,
                }
                eprintln!(
                    "doc {doc}: acknowledged {acked:?}, pending {:?}, found {got:?}",
                    pending.get(&doc)
                );
                continue;
            };
            model.pending.remove(&doc);
            match settled {
                Some(state) => {
                    model.docs.insert(doc, state);
                }
                None => {
                    model.docs.remove(&doc);
                }
            }
            if let Some(Doc::Live { seed, .. }) = settled {
                live.push((doc, seed));
            }
        }
        model.touched.clear();
    }
    // First at the instance's default ef (0 in the request: 64), as the
    // issue asks. On these uniform random 384-d vectors (the hardest data
    // for a graph index: no structure for the search to follow) a sound
    // graph of 250,000 points still puts another point first for 1.4 % of
    // its points at ef 64 (3.4 % through a cold segment's i8 walk; hnswlib
    // misses one in seven there: docs/benchmarks.md, "Crash test"). Such a
    // miss is recall, counted; the doc is searched again at ef 2,000, and
    // one not in that top 10 is unsearchable.
    let mut missed: Vec<(u64, u64)> = Vec::new();
    let replies = self_search_all(&client, &live, 0, 1, 256).await;
    {
        let known = model.lock().unwrap();
        for (&(doc, seed), result) in live.iter().zip(&replies) {
            let first = result.hits.first().map(|h| h.doc_id);
            // Another doc with the identical vector first is a tie, not a
            // miss (the issue sets ties aside).
            let tie = |other: u64| matches!(known.docs.get(&other), Some(Doc::Live { seed: s, .. }) if *s == seed);
            if first != Some(doc) && !first.is_some_and(tie) {
                missed.push((doc, seed));
            }
        }
    }
    figures.first_misses += missed.len();
    let replies = self_search_all(&client, &missed, 2_000, 10, 64).await;
    {
        let known = model.lock().unwrap();
        for (&(doc, _), result) in missed.iter().zip(&replies) {
            if result.hits.iter().any(|h| h.doc_id == doc) {
                continue;
            }
            figures.unsearchable += 1;
            // What the first hit is, in the model: a live doc (the search
            // never reached this one) or a deleted one (a tombstone lost)
            // tell different stories.
            let first = result.hits.first();
            let first_state = first.map(|h| match known.docs.get(&h.doc_id) {
                Some(Doc::Live { .. }) => "live",
                Some(Doc::Deleted) => "deleted",
                None => "never written",
            });
            eprintln!(
                "doc {doc}: its own vector at ef 2000 finds {:?} ({first_state:?}, score {:?}) and not it",
                first.map(|h| h.doc_id),
                first.map(|h| h.score)
            );
        }
    }
    let mut admin = server.text(&ADMIN).await;
    let stats = admin
        .stats(pb::StatsRequest {})
        .await
        .expect("Stats")
        .into_inner();
    figures.unreachable_reported += stats.unreachable_points;
}

/// One search per (doc, vector seed) of `docs` with that vector, at `ef`,
/// the `k` nearest; results in the order of `docs`. Two batches of `chunk`
/// searches are in flight at a time (the server runs each batch on one
/// thread; the check is what the long form spends most of its time on).
async fn self_search_all(
    client: &common::Client,
    docs: &[(u64, u64)],
    ef: u32,
    k: u32,
    chunk: usize,
) -> Vec<pb::SearchResponse> {
    let half = docs.len().div_ceil(2);
    let (first, second) = docs.split_at(half);
    let run = |part: &[(u64, u64)]| {
        let mut client = client.clone();
        let part = part.to_vec();
        async move {
            let mut results = Vec::with_capacity(part.len());
            for batch in part.chunks(chunk) {
                results.extend(self_search(&mut client, batch, ef, k).await.results);
            }
            results
        }
    };
    let (mut results, rest) = tokio::join!(run(first), run(second));
    results.extend(rest);
    results
}

/// One search per (doc, vector seed) of `docs` with that vector, at `ef`,
/// the `k` nearest.
async fn self_search(
    client: &mut common::Client,
    docs: &[(u64, u64)],
    ef: u32,
    k: u32,
) -> pb::BatchSearchResponse {
    let searches = docs
        .iter()
        .map(|&(_, seed)| pb::SearchRequest {
            ef,
            ..common::search(NAMESPACE, vector(TEXT_DIM, seed), k)
        })
        .collect();
    // A check, not a timing: a debug build on a loaded machine can need
    // longer than the server's default deadline for 256 searches.
    let mut request = tonic::Request::new(pb::BatchSearchRequest { searches });
    request.set_timeout(CHECK_TIMEOUT);
    client
        .batch_search(request)
        .await
        .expect("BatchSearch after restart")
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_stay_findable_across_repeated_kills() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let config = common::write_config(root.path(), &config_text());
    let model = Arc::new(Mutex::new(Model::default()));
    let mut figures = Figures::default();
    let mut rng = ChaCha8Rng::seed_from_u64(15);
    let stops = kills();
    let run_started = Instant::now();
    for stop in 0..=stops {
        let started = Instant::now();
        let server = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            TestServer::start_with(&data, Some(&config), &[])
        }));
        let Ok(server) = server else {
            figures.failed_restarts += 1;
            break;
        };
        let restart = started.elapsed();
        figures.longest_restart = figures.longest_restart.max(restart);
        let mut admin = server.text(&ADMIN).await;
        let recovered = admin
            .stats(pb::StatsRequest {})
            .await
            .expect("Stats")
            .into_inner();
        figures.largest_recovered_hot = figures.largest_recovered_hot.max(recovered.hot_points);
        let checking = Instant::now();
        check(&server, &model, &mut figures, stop == stops, &mut rng).await;
        let checked = checking.elapsed();
        if stop == stops {
            let stopping = Instant::now();
            let status = server.stop();
            assert!(status.success(), "final SIGTERM: {status:?}");
            figures.longest_shutdown = figures.longest_shutdown.max(stopping.elapsed());
            break;
        }
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                tokio::spawn(write_until_failure(
                    server.text,
                    w,
                    model.clone(),
                    rng.random(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.random_range(1_000..2_500))).await;
        if stop % 5 == 4 {
            // A graceful stop under write load, within the documented bound.
            let stopping = Instant::now();
            let status = tokio::task::spawn_blocking(move || server.stop())
                .await
                .unwrap();
            let took = stopping.elapsed();
            figures.longest_shutdown = figures.longest_shutdown.max(took);
            assert!(status.success(), "SIGTERM under load: {status:?}");
            assert!(took <= Duration::from_secs(30), "SIGTERM took {took:?}");
        } else {
            server.kill();
        }
        figures.stops += 1;
        for writer in writers {
            writer.await.unwrap();
        }
        // Progress for the long form (a line per stop on stderr), with
        // where the stop's time went.
        eprintln!(
            "crash test: stop {}/{stops}, {} acknowledged writes so far, {:?} since start \
             (restart {:.1} s, check {:.1} s, recovered {} points: {} hot, {} cold segments)",
            figures.stops,
            model.lock().unwrap().acknowledged,
            run_started.elapsed(),
            restart.as_secs_f64(),
            checked.as_secs_f64(),
            recovered.points,
            recovered.hot_points,
            recovered.cold_segments,
        );
    }
    let acknowledged = model.lock().unwrap().acknowledged;
    println!(
        "crash test: stops={} acknowledged_writes={} lost={} unsearchable={} first_misses_at_default_ef={} corrupt={} unreachable_reported={} failed_restarts={} longest_restart_s={:.2} longest_shutdown_s={:.2} largest_recovered_hot={}",
        figures.stops,
        acknowledged,
        figures.lost,
        figures.unsearchable,
        figures.first_misses,
        figures.corrupt,
        figures.unreachable_reported,
        figures.failed_restarts,
        figures.longest_restart.as_secs_f64(),
        figures.longest_shutdown.as_secs_f64(),
        figures.largest_recovered_hot,
    );
    assert_eq!(figures.stops, stops);
    assert!(acknowledged > 0);
    assert_eq!(
        (
            figures.lost,
            figures.unsearchable,
            figures.corrupt,
            figures.unreachable_reported,
            figures.failed_restarts
        ),
        (0, 0, 0, 0, 0),
        "{figures:?}"
    );
    // Seals that were due when the process died are redone, so no restart
    // rebuilds a hot tier that grew with the crash history (hot_max_points
    // is 1,500; a few segments may have been waiting to be sealed).
    assert!(
        figures.largest_recovered_hot <= 6 * 1_500,
        "a restart rebuilt {} hot points",
        figures.largest_recovered_hot
    );
}
