//! The load generator against a real `kyro-server` (started in this process
//! from the server library, on ephemeral loopback ports): the lean h2 client
//! makes real gRPC calls and reads real statuses, and `kyro-bench load`
//! drives the server with either client, over TCP and over the instance's
//! Unix socket, and reports what it did.

use std::path::Path;
use std::process::Command;

use http::HeaderValue;
use kyro_bench::h2_client::{CallError, H2GrpcClient};
use kyro_proto::v1 as pb;
use kyro_server::config::ServerConfig;
use kyro_server::server::{self, StartedServer};
use serde_json::Value;

const DIM: usize = 384;

async fn start_server(data_dir: &Path) -> (StartedServer, String, String) {
    let overrides: Vec<(String, String)> = [
        ("data_dir", data_dir.display().to_string()),
        ("instances.text.listen", "127.0.0.1:0".to_owned()),
        ("instances.image.listen", "127.0.0.1:0".to_owned()),
        ("http.listen", "127.0.0.1:0".to_owned()),
        ("instances.text.fsync", "never".to_owned()),
        (
            "instances.text.listen_unix",
            unix_socket(data_dir).display().to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let config = ServerConfig::load(None, [], &overrides).expect("test configuration");
    let started = server::start(config).await.expect("server starts");
    let text = started
        .grpc_addresses
        .iter()
        .find(|(name, _)| name == "text")
        .map(|(_, address)| format!("http://{address}"))
        .expect("a text instance");
    let key = started
        .bootstrap_key
        .clone()
        .expect("a first start prints an admin key");
    (started, text, key)
}

/// Where the test server's text instance also listens.
fn unix_socket(data_dir: &Path) -> std::path::PathBuf {
    data_dir.with_file_name("text.sock")
}

fn vector(seed: u64) -> Vec<f32> {
    (0..DIM)
        .map(|i| (((i as u64 + 1) * (seed + 3)) % 17) as f32 / 17.0 + 0.01)
        .collect()
}

fn bearer(key: &str) -> Option<HeaderValue> {
    Some(HeaderValue::try_from(format!("Bearer {key}")).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lean_client_calls_are_answered_and_statuses_come_back_as_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (server, address, key) = start_server(&dir.path().join("data")).await;
    let mut client = H2GrpcClient::connect(&address, bearer(&key)).await.unwrap();

    for doc_id in 1..=20u64 {
        let reply: pb::InsertResponse = client
            .unary(
                "/kyro.v1.Kyro/Insert",
                &pb::InsertRequest {
                    namespace: "episodes".into(),
                    doc_id,
                    vector: vector(doc_id),
                    payload: Default::default(),
                },
            )
            .await
            .unwrap();
        assert_eq!(reply.doc_id, doc_id);
    }
    // Calls from clones share the connection and run concurrently.
    let searches = (1..=8u64).map(|doc_id| {
        let mut client = client.clone();
        async move {
            let reply: pb::SearchResponse = client
                .unary(
                    "/kyro.v1.Kyro/Search",
                    &pb::SearchRequest {
                        namespace: "episodes".into(),
                        vector: vector(doc_id),
                        k: 3,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            (doc_id, reply)
        }
    });
    for (doc_id, reply) in futures_join_all(searches).await {
        assert_eq!(reply.hits.len(), 3);
        assert_eq!(reply.hits[0].doc_id, doc_id, "a point is its own nearest");
    }

    // A refused call: INVALID_ARGUMENT naming the field.
    let refused = client
        .unary::<_, pb::SearchResponse>(
            "/kyro.v1.Kyro/Search",
            &pb::SearchRequest {
                namespace: "episodes".into(),
                vector: vec![1.0; 3],
                k: 3,
                ..Default::default()
            },
        )
        .await;
    match refused {
        Err(CallError::Status { code, message }) => {
            assert_eq!(code, tonic::Code::InvalidArgument);
            assert!(message.contains("vector"), "{message}");
        }
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    }

    // A wrong key: UNAUTHENTICATED (a trailers-only response).
    let mut stranger = H2GrpcClient::connect(&address, bearer("kyro_sk_not-a-key"))
        .await
        .unwrap();
    let refused = stranger
        .unary::<_, pb::GetResponse>(
            "/kyro.v1.Kyro/Get",
            &pb::GetRequest {
                namespace: "episodes".into(),
                doc_id: 1,
                ..Default::default()
            },
        )
        .await;
    assert!(
        matches!(
            &refused,
            Err(CallError::Status {
                code: tonic::Code::Unauthenticated,
                ..
            })
        ),
        "{refused:?}"
    );
    server.shutdown().await.unwrap();
}

/// Awaits every future (no `futures` dependency for one test).
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for handle in handles {
        outputs.push(handle.await.expect("task"));
    }
    outputs
}

#[test]
fn load_command_drives_the_server_with_either_client_and_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (server, address, key) = runtime.block_on(start_server(&dir.path().join("data")));

    // A small data set of the server's dimension, written as fvecs.
    let base = dir.path().join("base.fvecs");
    let queries = dir.path().join("queries.fvecs");
    write_fvecs(&base, (0..300).map(vector));
    write_fvecs(&queries, (1000..1020).map(vector));

    let over_unix = format!("unix:{}", unix_socket(&dir.path().join("data")).display());
    let runs = [
        ("h2", &address, true),
        ("tonic", &address, false),
        ("h2", &over_unix, false),
        ("tonic", &over_unix, false),
    ];
    for (run, (client, address, preload)) in runs.into_iter().enumerate() {
        let json = dir.path().join(format!("{run}-{client}.json"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_kyro-bench"));
        command.args(["load", "--addr", address, "--key", &key, "--client", client]);
        command
            .arg("--base")
            .arg(&base)
            .arg("--queries")
            .arg(&queries);
        command.args(["--concurrency", "2", "--duration", "0.5"]);
        command.args(["--mix", "search=80,insert=10,get=10"]);
        if preload {
            command.arg("--preload");
        } else {
            // The first run's inserts copied base vectors under new doc ids:
            // ground truth of the base alone no longer holds.
            command.arg("--no-recall");
        }
        command.arg("--json").arg(&json);
        let output = command.output().expect("kyro-bench runs");
        assert!(
            output.status.success(),
            "kyro-bench load --client {client} --addr {address} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(report["mode"], "grpc");
        assert_eq!(report["points"], 300);
        assert!(
            report["first_error"].is_null(),
            "{client}: {}",
            report["first_error"]
        );
        if preload {
            let recall = report["recall"].as_f64().unwrap();
            assert!(recall > 0.9, "{client}: recall {recall}");
        } else {
            assert!(report["recall"].is_null());
        }
        let searches = report["ops"]
            .as_array()
            .unwrap()
            .iter()
            .find(|op| op["op"] == "search")
            .expect("a search row");
        assert!(
            searches["count"].as_u64().unwrap() > 0,
            "{client}: no searches"
        );
        assert_eq!(searches["errors"], 0);
    }
    runtime.block_on(server.shutdown()).unwrap();
}

fn write_fvecs(path: &Path, rows: impl Iterator<Item = Vec<f32>>) {
    let mut bytes = Vec::new();
    for row in rows {
        bytes.extend_from_slice(&(row.len() as i32).to_le_bytes());
        for x in row {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
    }
    std::fs::write(path, bytes).unwrap();
}
