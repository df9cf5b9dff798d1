//! The real `kyro-server` binary over loopback gRPC: every RPC, the auth
//! matrix, bad inputs, both instances, load shedding, deadlines, metrics and
//! health, restart persistence and graceful shutdown.

mod common;

use std::time::Duration;

use common::*;
use kyro_proto::v1 as pb;
use tonic::Code;

fn code<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> (Code, String) {
    let status = result.expect_err("the call should fail");
    (status.code(), status.message().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_reach_only_their_tenant_and_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("data"));
    let mut alice = server.text(&ALICE).await;
    let mut bob = server.text(&BOB).await;
    let mut reader = server.text(&ALICE_READER).await;
    let mut admin = server.text(&ADMIN).await;

    alice
        .insert(insert(
            "shared",
            1,
            vector(TEXT_DIM, 1),
            &[("owner", string("alice"))],
        ))
        .await
        .unwrap();
    bob.insert(insert(
        "shared",
        1,
        vector(TEXT_DIM, 2),
        &[("owner", string("bob"))],
    ))
    .await
    .unwrap();

    // Same namespace name, different tenants: each sees only its own point.
    let get = pb::GetRequest {
        namespace: "shared".into(),
        doc_id: 1,
        with_vector: false,
        with_payload: None,
    };
    let mine = alice
        .get(get.clone())
        .await
        .unwrap()
        .into_inner()
        .point
        .unwrap();
    assert_eq!(mine.payload["owner"], string("alice"));
    let theirs = bob
        .get(get.clone())
        .await
        .unwrap()
        .into_inner()
        .point
        .unwrap();
    assert_eq!(theirs.payload["owner"], string("bob"));
    alice
        .insert(insert("alice-only", 1, vector(TEXT_DIM, 3), &[]))
        .await
        .unwrap();
    let (status, _) = code(
        bob.search(search("alice-only", vector(TEXT_DIM, 3), 1))
            .await,
    );
    assert_eq!(
        status,
        Code::NotFound,
        "bob must not reach alice's namespace"
    );
    let listed: Vec<String> = bob
        .list_namespaces(pb::ListNamespacesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .namespaces
        .into_iter()
        .map(|n| format!("{}/{}", n.tenant, n.namespace))
        .collect();
    assert_eq!(listed, vec!["globex/shared"]);

    // Scopes: read-only keys read but do not write; only admin flushes.
    assert!(reader.get(get.clone()).await.is_ok());
    let (status, message) = code(
        reader
            .insert(insert("shared", 2, vector(TEXT_DIM, 4), &[]))
            .await,
    );
    assert_eq!(status, Code::PermissionDenied, "{message}");
    assert!(message.contains("write"), "{message}");
    let (status, _) = code(alice.flush(pb::FlushRequest::default()).await);
    assert_eq!(status, Code::PermissionDenied);
    let (status, _) = code(alice.get_config(pb::GetConfigRequest {}).await);
    assert_eq!(status, Code::PermissionDenied);
    let (status, _) = code(
        alice
            .create_snapshot(pb::CreateSnapshotRequest::default())
            .await,
    );
    assert_eq!(status, Code::PermissionDenied);
    // Another tenant's namespace: only admin may drop or list it.
    let (status, _) = code(
        alice
            .drop_namespace(pb::DropNamespaceRequest {
                namespace: "shared".into(),
                tenant: "globex".into(),
            })
            .await,
    );
    assert_eq!(status, Code::PermissionDenied);
    let (status, _) = code(
        alice
            .list_namespaces(pb::ListNamespacesRequest { tenant: "*".into() })
            .await,
    );
    assert_eq!(status, Code::PermissionDenied);
    let all = admin
        .list_namespaces(pb::ListNamespacesRequest { tenant: "*".into() })
        .await
        .unwrap()
        .into_inner()
        .namespaces;
    assert_eq!(all.len(), 3);
    let dropped = admin
        .drop_namespace(pb::DropNamespaceRequest {
            namespace: "shared".into(),
            tenant: "globex".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(dropped.dropped);
    let (status, _) = code(bob.get(get.clone()).await);
    assert_eq!(status, Code::NotFound);
    assert!(
        alice.get(get.clone()).await.is_ok(),
        "alice's namespace of the same name survives"
    );

    // No key, a wrong key: UNAUTHENTICATED.
    let mut anonymous = connect(server.text, None, None).await;
    let (status, _) = code(anonymous.get(get.clone()).await);
    assert_eq!(status, Code::Unauthenticated);
    let mut forged = connect(server.text, Some("kyro_sk_not-a-real-key"), None).await;
    let (status, _) = code(forged.get(get.clone()).await);
    assert_eq!(status, Code::Unauthenticated);

    // A service key acts for the tenant it names; other keys may not.
    let mut gateway_as_alice = connect(server.text, Some(GATEWAY.key), Some("acme")).await;
    let point = gateway_as_alice
        .get(get.clone())
        .await
        .unwrap()
        .into_inner()
        .point
        .unwrap();
    assert_eq!(point.payload["owner"], string("alice"));
    let mut bob_as_alice = connect(server.text, Some(BOB.key), Some("acme")).await;
    let (status, _) = code(bob_as_alice.get(get.clone()).await);
    assert_eq!(status, Code::PermissionDenied);

    // Health and reflection answer without a key.
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel(server.text).await);
    let reply = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "kyro.v1.Kyro".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reply.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    let whole = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        whole.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    let services = list_services_by_reflection(server.text).await;
    assert!(
        services.contains(&"kyro.v1.Kyro".to_owned()),
        "{services:?}"
    );
    assert!(
        services.contains(&"grpc.health.v1.Health".to_owned()),
        "{services:?}"
    );
}

async fn list_services_by_reflection(address: std::net::SocketAddr) -> Vec<String> {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let mut client = ServerReflectionClient::new(channel(address).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = client
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    match reply.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection reply {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_file_reloads_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = TestServer::start(&data);
    let output = std::process::Command::new(binary())
        .arg("--data-dir")
        .arg(&data)
        .args([
            "keys",
            "create",
            "--tenant",
            "initech",
            "--scopes",
            "read,write",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let key = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("kyro_sk_"), "{key}");
    let stored = std::fs::read_to_string(data.join("keys.toml")).unwrap();
    assert!(!stored.contains(&key), "the keys file holds hashes only");

    let mut client = connect(server.text, Some(&key), None).await;
    let (status, _) = code(
        client
            .insert(insert("n", 1, vector(TEXT_DIM, 1), &[]))
            .await,
    );
    assert_eq!(status, Code::Unauthenticated, "not loaded before SIGHUP");
    server.signal("HUP");
    let mut accepted = false;
    for _ in 0..200 {
        if client
            .insert(insert("n", 1, vector(TEXT_DIM, 1), &[]))
            .await
            .is_ok()
        {
            accepted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(accepted, "the new key works after SIGHUP");
    let listed = client
        .list_namespaces(pb::ListNamespacesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .namespaces;
    assert_eq!(listed[0].tenant, "initech");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_invalid_argument_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("data"));
    let mut alice = server.text(&ALICE).await;
    alice
        .insert(insert("ns", 1, vector(TEXT_DIM, 1), &[]))
        .await
        .unwrap();

    let mut nan = vector(TEXT_DIM, 2);
    nan[7] = f32::NAN;
    let too_long = "x".repeat(5000);
    let cases: Vec<(&str, pb::InsertRequest)> = vec![
        ("vector", insert("ns", 2, vector(3, 2), &[])),
        ("vector", insert("ns", 2, nan, &[])),
        ("vector", insert("ns", 2, vec![0.0; TEXT_DIM], &[])),
        (
            "namespace",
            insert("bad namespace!", 2, vector(TEXT_DIM, 2), &[]),
        ),
        ("namespace", insert("", 2, vector(TEXT_DIM, 2), &[])),
        (
            "payload",
            insert("ns", 2, vector(TEXT_DIM, 2), &[("note", string(&too_long))]),
        ),
        (
            "payload",
            insert("ns", 2, vector(TEXT_DIM, 2), &[("bad key", string("x"))]),
        ),
        (
            "payload.tool",
            insert(
                "ns",
                2,
                vector(TEXT_DIM, 2),
                &[("tool", pb::Value { kind: None })],
            ),
        ),
    ];
    for (field, request) in cases {
        let (status, message) = code(alice.insert(request).await);
        assert_eq!(status, Code::InvalidArgument, "{message}");
        assert!(message.starts_with(field), "expected {field}: {message}");
    }
    let mut many_fields = Vec::new();
    for i in 0..65 {
        many_fields.push((format!("f{i}"), integer(i)));
    }
    let mut request = insert("ns", 2, vector(TEXT_DIM, 2), &[]);
    request.payload = many_fields.into_iter().collect();
    let (status, message) = code(alice.insert(request).await);
    assert_eq!(status, Code::InvalidArgument);
    assert!(message.starts_with("payload"), "{message}");

    let searches: Vec<(&str, pb::SearchRequest)> = vec![
        ("k", search("ns", vector(TEXT_DIM, 1), 0)),
        ("k", search("ns", vector(TEXT_DIM, 1), 10_001)),
        ("vector", search("ns", vector(TEXT_DIM + 1, 1), 5)),
        (
            "ef",
            pb::SearchRequest {
                ef: 200_000,
                ..search("ns", vector(TEXT_DIM, 1), 5)
            },
        ),
        (
            "min_score",
            pb::SearchRequest {
                min_score: Some(f32::NAN),
                ..search("ns", vector(TEXT_DIM, 1), 5)
            },
        ),
        (
            "filter",
            pb::SearchRequest {
                filter: Some(pb::Filter { kind: None }),
                ..search("ns", vector(TEXT_DIM, 1), 5)
            },
        ),
        (
            "filter.all_of",
            pb::SearchRequest {
                filter: Some(pb::Filter {
                    kind: Some(pb::filter::Kind::AllOf(pb::FilterList {
                        conditions: vec![],
                    })),
                }),
                ..search("ns", vector(TEXT_DIM, 1), 5)
            },
        ),
    ];
    for (field, request) in searches {
        let (status, message) = code(alice.search(request).await);
        assert_eq!(status, Code::InvalidArgument, "{message}");
        assert!(message.starts_with(field), "expected {field}: {message}");
    }
    let (status, message) = code(
        alice
            .batch_search(pb::BatchSearchRequest { searches: vec![] })
            .await,
    );
    assert_eq!(
        (status, message.starts_with("searches")),
        (Code::InvalidArgument, true),
        "{message}"
    );
    let (status, message) = code(
        alice
            .batch_search(pb::BatchSearchRequest {
                searches: vec![
                    search("ns", vector(TEXT_DIM, 1), 1),
                    search("ns", vector(TEXT_DIM, 1), 0),
                ],
            })
            .await,
    );
    assert_eq!(status, Code::InvalidArgument);
    assert!(message.starts_with("searches[1].k"), "{message}");
    let (status, message) = code(
        alice
            .scroll(pb::ScrollRequest {
                namespace: "ns".into(),
                limit: 20_000,
                ..Default::default()
            })
            .await,
    );
    assert_eq!(status, Code::InvalidArgument);
    assert!(message.starts_with("limit"), "{message}");
    let (status, message) = code(
        alice
            .delete(pb::DeleteRequest {
                namespace: "ns".into(),
                doc_ids: (0..10_001).collect(),
            })
            .await,
    );
    assert_eq!(status, Code::InvalidArgument);
    assert!(message.starts_with("doc_ids"), "{message}");
    let (status, message) = code(
        alice
            .delete_by_filter(pb::DeleteByFilterRequest {
                namespace: "ns".into(),
                filter: None,
            })
            .await,
    );
    assert_eq!(status, Code::InvalidArgument);
    assert!(message.starts_with("filter"), "{message}");
    let (status, message) = code(
        alice
            .update_payload(pb::UpdatePayloadRequest {
                namespace: "ns".into(),
                doc_id: 1,
                payload: Default::default(),
                mode: 7,
            })
            .await,
    );
    assert_eq!(status, Code::InvalidArgument);
    assert!(message.starts_with("mode"), "{message}");
    let (status, _) = code(
        alice
            .update_payload(pb::UpdatePayloadRequest {
                namespace: "ns".into(),
                doc_id: 99,
                payload: Default::default(),
                mode: 0,
            })
            .await,
    );
    assert_eq!(status, Code::NotFound);

    // Nothing bad was stored, and the server still answers.
    assert_eq!(
        alice
            .count(pb::CountRequest {
                namespace: "ns".into(),
                filter: None
            })
            .await
            .unwrap()
            .into_inner()
            .count,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_instances_serve_their_own_dimension_and_data() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("data"));
    let mut text = server.text(&ALICE).await;
    let mut image = server.image(&ALICE).await;
    image
        .insert(insert("photos", 7, vector(IMAGE_DIM, 7), &[]))
        .await
        .unwrap();
    let (status, message) = code(
        image
            .insert(insert("photos", 8, vector(TEXT_DIM, 8), &[]))
            .await,
    );
    assert_eq!(status, Code::InvalidArgument);
    assert!(message.contains("512"), "{message}");
    let reply = image
        .search(search("photos", vector(IMAGE_DIM, 7), 1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.hits[0].doc_id, 7);
    let (status, _) = code(text.search(search("photos", vector(TEXT_DIM, 7), 1)).await);
    assert_eq!(
        status,
        Code::NotFound,
        "the text instance has no photos namespace"
    );
    let stats = image.stats(pb::StatsRequest {}).await.unwrap().into_inner();
    assert_eq!(
        (stats.instance.as_str(), stats.dim, stats.points),
        ("image", 512, 1)
    );
    assert!(server.data_dir.join("text").is_dir() && server.data_dir.join("image").is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_survive_graceful_restart_and_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = TestServer::start(&data);
    let mut alice = server.text(&ALICE).await;
    for doc_id in 0..200 {
        alice
            .insert(insert(
                "memory",
                doc_id,
                vector(TEXT_DIM, doc_id),
                &[("n", integer(doc_id as i64))],
            ))
            .await
            .unwrap();
    }
    let status = server.stop();
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");

    let server = TestServer::start(&data);
    let mut alice = server.text(&ALICE).await;
    let count = pb::CountRequest {
        namespace: "memory".into(),
        filter: None,
    };
    assert_eq!(
        alice.count(count.clone()).await.unwrap().into_inner().count,
        200
    );
    let reply = alice
        .search(search("memory", vector(TEXT_DIM, 42), 1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.hits[0].doc_id, 42);
    assert_eq!(reply.hits[0].payload["n"], integer(42));
    // Acknowledged writes survive SIGKILL (no shutdown path at all).
    for doc_id in 200..300 {
        alice
            .insert(insert("memory", doc_id, vector(TEXT_DIM, doc_id), &[]))
            .await
            .unwrap();
    }
    server.kill();

    let server = TestServer::start(&data);
    let mut alice = server.text(&ALICE).await;
    assert_eq!(alice.count(count).await.unwrap().into_inner().count, 300);
    let reply = alice
        .search(search("memory", vector(TEXT_DIM, 250), 1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.hits[0].doc_id, 250);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excess_load_is_shed_and_deadlines_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), "[limits]\nmax_concurrent_requests = 1\n");
    let server = TestServer::start_with(&data, Some(&config), &[]);
    let mut alice = server.text(&ALICE).await;
    alice
        .insert(insert("ns", 1, vector(TEXT_DIM, 1), &[]))
        .await
        .unwrap();

    // An open BulkInsert stream holds the only permit...
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::BulkInsertRequest>(1);
    let mut streamer = server.text(&ALICE).await;
    let stream = tokio::spawn(async move {
        streamer
            .bulk_insert(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    tx.send(pb::BulkInsertRequest {
        namespace: "ns".into(),
        points: vec![pb::Point {
            doc_id: 2,
            vector: vector(TEXT_DIM, 2),
            payload: Default::default(),
        }],
    })
    .await
    .unwrap();
    // Let the stream be admitted before anything else competes for the permit.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !stream.is_finished(),
        "the stream was admitted and is still open"
    );
    // ...so another call is refused at once rather than queued.
    let mut shed = None;
    for _ in 0..200 {
        match alice.search(search("ns", vector(TEXT_DIM, 1), 1)).await {
            Err(status) if status.code() == Code::ResourceExhausted => {
                shed = Some(status);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    let shed = shed.expect("a call beyond the limit is shed");
    assert!(shed.message().contains("concurrent"), "{}", shed.message());
    drop(tx);
    let reply = stream.await.unwrap().unwrap().into_inner();
    assert_eq!(reply.inserted, 1);
    // With the permit back, calls succeed again.
    assert!(alice
        .search(search("ns", vector(TEXT_DIM, 1), 1))
        .await
        .is_ok());

    // A deadline that has passed is not worked on.
    let mut request = tonic::Request::new(search("ns", vector(TEXT_DIM, 1), 1));
    request.set_timeout(Duration::from_nanos(1));
    let (status, message) = code(alice.search(request).await);
    assert!(
        matches!(status, Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}: {message}"
    );

    // Shedding shows in the metrics: the counter (registered at zero when
    // the instance starts) went up, and the shed call is counted by code.
    let (http_status, body) = server.http_get("/metrics");
    assert_eq!(http_status, 200);
    let value = |series: &str| -> f64 {
        body.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{body}"))
    };
    assert!(value("kyro_requests_shed_total{instance=\"text\"}") >= 1.0);
    assert!(
        value("kyro_requests_total{instance=\"text\",rpc=\"Search\",code=\"RESOURCE_EXHAUSTED\"}")
            >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("data"));
    let mut alice = server.text(&ALICE).await;
    alice
        .insert(insert("ns", 1, vector(TEXT_DIM, 1), &[]))
        .await
        .unwrap();
    for _ in 0..3 {
        alice
            .search(search("ns", vector(TEXT_DIM, 1), 1))
            .await
            .unwrap();
    }
    let _ = alice.search(search("ns", vector(3, 1), 1)).await;

    let (status, body) = server.http_get("/health/live");
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.http_get("/health/ready");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"ready\""), "{body}");

    let (status, body) = server.http_get("/metrics");
    assert_eq!(status, 200);
    for needle in [
        "kyro_requests_total{instance=\"text\",rpc=\"Search\",code=\"OK\"} 3",
        "kyro_requests_total{instance=\"text\",rpc=\"Search\",code=\"INVALID_ARGUMENT\"} 1",
        "kyro_requests_total{instance=\"text\",rpc=\"Insert\",code=\"OK\"} 1",
        "kyro_request_duration_seconds_bucket{instance=\"text\",rpc=\"Search\"",
        "kyro_cache_hit_ratio{instance=\"text\",cache=\"query\"}",
        "kyro_hot_points{instance=\"text\"} 1",
        "kyro_cold_segments{instance=\"image\"} 0",
        "kyro_wal_fsync_mean_seconds{instance=\"text\"}",
        "kyro_process_resident_bytes",
    ] {
        assert!(body.contains(needle), "missing {needle} in\n{body}");
    }
    // The query cache answered the repeated searches.
    let ratio_line = body
        .lines()
        .find(|l| l.starts_with("kyro_cache_hit_ratio{instance=\"text\",cache=\"query\"}"))
        .unwrap();
    let ratio: f64 = ratio_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(ratio > 0.0, "{ratio_line}");
    let (status, _) = server.http_get("/nope");
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_also_serves_on_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("text.sock");
    // A socket file an earlier run left behind is replaced.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let config = write_config(dir.path(), "");
    let flag = format!("instances.text.listen_unix={}", socket.display());
    let server = TestServer::start_with(&dir.path().join("data"), Some(&config), &["--set", &flag]);
    let announced = format!("listening: text grpc unix:{}", socket.display());
    assert!(
        server.startup_lines.contains(&announced),
        "{:?}",
        server.startup_lines
    );

    let mut over_unix = connect_unix(&socket, Some(ALICE.key)).await;
    over_unix
        .insert(insert("notes", 11, vector(TEXT_DIM, 11), &[]))
        .await
        .unwrap();
    let hits = over_unix
        .search(search("notes", vector(TEXT_DIM, 11), 1))
        .await
        .unwrap()
        .into_inner()
        .hits;
    assert_eq!(hits[0].doc_id, 11);
    // The same instance behind both listeners, with the same keys.
    let mut over_tcp = server.text(&ALICE).await;
    let count = over_tcp
        .count(pb::CountRequest {
            namespace: "notes".to_owned(),
            filter: None,
        })
        .await
        .unwrap()
        .into_inner()
        .count;
    assert_eq!(count, 1);
    let mut anonymous = connect_unix(&socket, None).await;
    let (status, _) = code(
        anonymous
            .search(search("notes", vector(TEXT_DIM, 11), 1))
            .await,
    );
    assert_eq!(status, Code::Unauthenticated);
    let mut bob = connect_unix(&socket, Some(BOB.key)).await;
    let (status, _) = code(bob.search(search("notes", vector(TEXT_DIM, 11), 1)).await);
    assert_eq!(
        status,
        Code::NotFound,
        "another tenant's namespace stays out of reach"
    );

    assert!(server.stop().success());
    assert!(!socket.exists(), "the socket is removed at shutdown");
}

#[test]
fn a_unix_socket_path_held_by_another_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let taken = dir.path().join("notes.txt");
    std::fs::write(&taken, "not a socket").unwrap();
    let output = server_command(&dir.path().join("data"))
        .arg("--set")
        .arg(format!("instances.image.listen_unix={}", taken.display()))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("instances.image.listen_unix") && stderr.contains("not a socket"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&taken).unwrap(), "not a socket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_without_keys_prints_an_admin_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = TestServer::start_with(&data, None, &[]);
    let key = server
        .bootstrap_key
        .clone()
        .expect("an admin key is printed");
    let stored = std::fs::read_to_string(data.join("keys.toml")).unwrap();
    assert!(!stored.contains(&key) && stored.contains(&kyro_server::auth::hash_key(&key)));
    let mut admin = connect(server.text, Some(&key), None).await;
    admin.get_config(pb::GetConfigRequest {}).await.unwrap();
    assert!(server.stop().success());

    let server = TestServer::start_with(&data, None, &[]);
    assert!(
        server.bootstrap_key.is_none(),
        "the key is generated only once"
    );
    let mut admin = connect(server.text, Some(&key), None).await;
    admin.get_config(pb::GetConfigRequest {}).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_can_be_switched_off_explicitly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = TestServer::start_with(&data, None, &["--set", "auth.enabled=false"]);
    assert!(server.bootstrap_key.is_none());
    assert!(
        server
            .startup_lines
            .iter()
            .any(|l| l.starts_with("WARNING: authentication is DISABLED")),
        "{:?}",
        server.startup_lines
    );
    let mut anonymous = connect(server.text, None, None).await;
    anonymous
        .insert(insert("dev", 1, vector(TEXT_DIM, 1), &[]))
        .await
        .unwrap();
    let listed = anonymous
        .list_namespaces(pb::ListNamespacesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .namespaces;
    assert_eq!(listed[0].tenant, "default");
}

#[test]
fn print_config_shows_layered_settings_and_bad_settings_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kyro.toml");
    std::fs::write(
        &file,
        "[instances.text]\nfsync = \"always\"\ndefault_ef = 50\n",
    )
    .unwrap();
    let output = std::process::Command::new(binary())
        .args(["--config"])
        .arg(&file)
        .args(["--set", "instances.text.default_ef=70", "--print-config"])
        .env("KYRO__LIMITS__MAX_CONCURRENT_REQUESTS", "12")
        .env("KYRO__INSTANCES__TEXT__DEFAULT_EF", "60")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: toml::Table = toml::from_str(&String::from_utf8(output.stdout).unwrap()).unwrap();
    let text = &printed["instances"]["text"];
    assert_eq!(text["fsync"].as_str(), Some("always"), "from the file");
    assert_eq!(
        text["default_ef"].as_integer(),
        Some(70),
        "flags beat env beat file"
    );
    assert_eq!(
        printed["limits"]["max_concurrent_requests"].as_integer(),
        Some(12),
        "from env"
    );
    assert_eq!(printed["instances"]["image"]["dim"].as_integer(), Some(512));

    let output = std::process::Command::new(binary())
        .args(["--set", "instances.text.metric=hamming", "--print-config"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("instances.text.metric"), "{stderr}");
}

mod tls {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

    fn authority(name: &str) -> CertifiedIssuer<'static, KeyPair> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
    }

    /// A certificate for `name` signed by `issuer`: (cert PEM, key PEM).
    fn leaf(issuer: &CertifiedIssuer<'static, KeyPair>, name: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .signed_by(&key, issuer)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    async fn tls_client(
        address: std::net::SocketAddr,
        tls: ClientTlsConfig,
    ) -> Result<Client, tonic::transport::Error> {
        let channel = Channel::from_shared(format!("https://{address}"))
            .unwrap()
            .tls_config(tls)?
            .connect()
            .await?;
        let interceptor = KeyInterceptorFor::key(ALICE.key);
        Ok(kyro_proto::v1::kyro_client::KyroClient::with_interceptor(
            channel,
            interceptor,
        ))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mutual_tls_admits_only_clients_with_a_certificate_from_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let server_ca = authority("kyro test server CA");
        let client_ca = authority("kyro test client CA");
        let (server_cert, server_key) = leaf(&server_ca, "localhost");
        let (client_cert, client_key) = leaf(&client_ca, "gateway");
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let tls_section = format!(
            "[tls]\ncert = {:?}\nkey = {:?}\nclient_ca = {:?}\n",
            write("server.pem", &server_cert),
            write("server.key", &server_key),
            write("clients-ca.pem", &client_ca.pem()),
        );
        let config = write_config(dir.path(), &tls_section);
        let server = TestServer::start_with(&dir.path().join("data"), Some(&config), &[]);

        let trust = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(server_ca.pem()))
            .domain_name("localhost");
        let mut client = tls_client(
            server.text,
            trust
                .clone()
                .identity(Identity::from_pem(&client_cert, &client_key)),
        )
        .await
        .expect("a client with a certificate from the client CA connects");
        client
            .insert(insert("secure", 1, vector(TEXT_DIM, 1), &[]))
            .await
            .unwrap();

        // No client certificate: the handshake or the first call fails.
        let refused = match tls_client(server.text, trust).await {
            Err(_) => true,
            Ok(mut client) => client
                .insert(insert("secure", 2, vector(TEXT_DIM, 2), &[]))
                .await
                .is_err(),
        };
        assert!(refused, "a client without a certificate must be refused");
        // Plaintext is refused too.
        let plaintext = Channel::from_shared(format!("http://{}", server.text))
            .unwrap()
            .connect()
            .await;
        let refused = match plaintext {
            Err(_) => true,
            Ok(channel) => kyro_proto::v1::kyro_client::KyroClient::with_interceptor(
                channel,
                KeyInterceptorFor::key(ALICE.key),
            )
            .insert(insert("secure", 3, vector(TEXT_DIM, 3), &[]))
            .await
            .is_err(),
        };
        assert!(refused, "plaintext must be refused on a TLS port");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_restore_into_a_new_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = TestServer::start(&data);
    let mut alice = server.text(&ALICE).await;
    for doc_id in 0..50 {
        alice
            .insert(insert("kept", doc_id, vector(TEXT_DIM, doc_id), &[]))
            .await
            .unwrap();
    }
    let mut admin = server.text(&ADMIN).await;
    let snapshot = admin
        .create_snapshot(pb::CreateSnapshotRequest {
            name: "before".into(),
        })
        .await
        .unwrap()
        .into_inner();
    // Written after the snapshot: not in it.
    alice
        .insert(insert("kept", 999, vector(TEXT_DIM, 999), &[]))
        .await
        .unwrap();
    assert!(server.stop().success());

    let restored = dir.path().join("restored");
    let output = std::process::Command::new(binary())
        .arg("--data-dir")
        .arg(&restored)
        .args(["restore", "--instance", "text", "--from", &snapshot.path])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let server = TestServer::start(&restored);
    let mut alice = server.text(&ALICE).await;
    let count = alice
        .count(pb::CountRequest {
            namespace: "kept".into(),
            filter: None,
        })
        .await
        .unwrap()
        .into_inner()
        .count;
    assert_eq!(count, 50);
    let reply = alice
        .search(search("kept", vector(TEXT_DIM, 7), 1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.hits[0].doc_id, 7);

    // Restoring over a non-empty directory is refused.
    let output = std::process::Command::new(binary())
        .arg("--data-dir")
        .arg(&restored)
        .args(["restore", "--instance", "text", "--from", &snapshot.path])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not empty"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_calls_finish_then_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = TestServer::start(&data);
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::BulkInsertRequest>(1);
    let mut streamer = server.text(&ALICE).await;
    let stream = tokio::spawn(async move {
        streamer
            .bulk_insert(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    let batch = |start: u64| pb::BulkInsertRequest {
        namespace: "drain".into(),
        points: (start..start + 10)
            .map(|doc_id| pb::Point {
                doc_id,
                vector: vector(TEXT_DIM, doc_id),
                payload: Default::default(),
            })
            .collect(),
    };
    tx.send(batch(0)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.signal("TERM");
    // The call in flight keeps going after the signal...
    tokio::time::sleep(Duration::from_millis(300)).await;
    tx.send(batch(10)).await.unwrap();
    drop(tx);
    let reply = stream
        .await
        .unwrap()
        .expect("the in-flight stream completes")
        .into_inner();
    assert_eq!((reply.inserted, reply.failed), (20, 0));
    // ...and then the process exits cleanly.
    let status = wait_exit(&mut server.child, Duration::from_secs(60));
    assert!(status.success(), "{status:?}");
    drop(server);

    let server = TestServer::start(&data);
    let mut alice = server.text(&ALICE).await;
    let count = alice
        .count(pb::CountRequest {
            namespace: "drain".into(),
            filter: None,
        })
        .await
        .unwrap()
        .into_inner()
        .count;
    assert_eq!(count, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_a_span_per_rpc_and_never_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), "");
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let server = TestServer::start_logging(
        &data,
        Some(&config),
        &["--log-json"],
        "kyro_server=debug",
        log.into(),
    );
    let mut alice = server.text(&ALICE).await;
    alice
        .insert(insert("logged", 1, vector(TEXT_DIM, 1), &[]))
        .await
        .unwrap();
    let _ = alice.search(search("logged", vector(3, 1), 1)).await;
    assert!(server.stop().success());

    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        !text.contains(ALICE.key),
        "the key itself must never be logged"
    );
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let rpc_events: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["span"]["name"] == "rpc")
        .collect();
    let insert_ok = rpc_events
        .iter()
        .find(|l| l["span"]["rpc"] == "Insert")
        .expect("a log event inside the Insert span");
    assert_eq!(insert_ok["span"]["tenant"], "acme");
    assert_eq!(insert_ok["span"]["namespace"], "logged");
    assert_eq!(
        insert_ok["span"]["key"], "alice",
        "the key's name, not the key"
    );
    let refused = rpc_events
        .iter()
        .find(|l| l["span"]["rpc"] == "Search")
        .expect("a log event inside the Search span");
    assert!(
        refused["fields"]["code"]
            .as_str()
            .unwrap_or_default()
            .contains("InvalidArgument"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_insert_counts_every_refusal_and_lists_a_bounded_number() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("data"));
    let mut alice = server.text(&ALICE).await;
    let messages: Vec<pb::BulkInsertRequest> = (0..2u64)
        .map(|m| pb::BulkInsertRequest {
            namespace: "bulk".into(),
            points: (0..6000u64)
                .map(|i| {
                    let doc_id = m * 6000 + i;
                    // Every 1000th point is good; the rest have 3 dimensions.
                    let vector = if doc_id % 1000 == 0 {
                        vector(TEXT_DIM, doc_id)
                    } else {
                        vec![1.0, 2.0, 3.0]
                    };
                    pb::Point {
                        doc_id,
                        vector,
                        payload: Default::default(),
                    }
                })
                .collect(),
        })
        .collect();
    let reply = alice
        .bulk_insert(tokio_stream::iter(messages))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.inserted, 12);
    assert_eq!(reply.failed, 11_988);
    assert_eq!(reply.errors.len(), 10_000);
    assert!(reply.errors.windows(2).all(|w| w[0].index < w[1].index));
    assert_eq!(reply.errors[0].index, 1);
    // An oversized message is refused as a whole, naming the field.
    let too_many = pb::BulkInsertRequest {
        namespace: "bulk".into(),
        points: (0..10_001u64)
            .map(|doc_id| pb::Point {
                doc_id,
                vector: vec![0.0],
                payload: Default::default(),
            })
            .collect(),
    };
    let status = alice
        .bulk_insert(tokio_stream::iter(vec![too_many]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("points"),
        "{}",
        status.message()
    );
}
