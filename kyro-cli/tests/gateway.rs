//! `kyro keys` and `kyro search --text` against a real gateway in front of
//! a real kyro-server (the text instance at its default 384 dimensions,
//! which the gateway's embedder produces).

mod common;

use common::*;
use kyro_proto::v1 as pb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_created_listed_and_revoked_and_text_search_embeds_through_the_gateway() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::start_default(root.path());
    let gateway = Gateway::start(root.path(), &server);
    let (status, customer) = gateway.call(
        "POST",
        "/api/v1/customers",
        &gateway.admin_key,
        Some(&serde_json::json!({"name": "cli test", "tier": "PRO"})),
    );
    assert_eq!(status, 201, "{customer}");
    let customer = customer["customer_id"].as_str().unwrap().to_owned();

    let admin = |args: &[&str]| {
        let mut command = kyro_command(&server, &READER);
        command
            .args([
                "--gateway-url",
                &gateway.url(),
                "--gateway-key",
                &gateway.admin_key,
            ])
            .args(args);
        command.output().unwrap()
    };
    let created = admin(&[
        "keys",
        "create",
        "--customer",
        &customer,
        "--scopes",
        "read",
        "--json",
    ]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    let api_key = created["api_key"].as_str().unwrap().to_owned();
    let key_id = created["key_id"].as_str().unwrap().to_owned();
    assert!(api_key.starts_with("em_live_"), "{created}");

    let listed = admin(&["keys", "list", "--customer", &customer]);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    let row = listed
        .lines()
        .find(|l| l.starts_with(&key_id))
        .unwrap_or_else(|| panic!("{key_id} not listed: {listed}"));
    assert!(row.contains("read"), "{row}");
    assert!(row.trim_end().ends_with('-'), "not revoked yet: {row}");

    // The engine holds the embedding of a text; searching the same text
    // through the gateway's embeddings finds it first.
    let embed = |text: &str| -> Vec<f32> {
        let (status, answer) = gateway.call(
            "POST",
            "/api/v1/embeddings",
            &api_key,
            Some(&serde_json::json!({"input": text})),
        );
        assert_eq!(status, 200, "{answer}");
        serde_json::from_value(answer["data"][0]["embedding"].clone()).unwrap()
    };
    let mut client = server.client(&WRITER).await;
    let texts = [
        "pip install numpy fails on python 3.12",
        "cargo build cannot find openssl headers",
        "npm ERR! peer dependency conflict with react 18",
    ];
    let points = texts
        .iter()
        .enumerate()
        .map(|(i, text)| pb::Point {
            doc_id: i as u64 + 1,
            vector: embed(text),
            payload: Default::default(),
        })
        .collect();
    insert(&mut client, "episodes", points).await;
    let search = |key: &str| {
        let mut command = kyro_command(&server, &READER);
        command
            .args(["--gateway-url", &gateway.url(), "--gateway-key", key])
            .args([
                "search",
                "episodes",
                "--text",
                "cargo build cannot find openssl headers",
                "-k",
                "3",
                "--json",
            ]);
        command.output().unwrap()
    };
    let found = search(&api_key);
    assert!(
        found.status.success(),
        "{}",
        String::from_utf8_lossy(&found.stderr)
    );
    let found: serde_json::Value = serde_json::from_slice(&found.stdout).unwrap();
    assert_eq!(found["hits"][0]["doc_id"], 2, "{found}");
    assert!(
        found["hits"][0]["score"].as_f64().unwrap() > 0.99,
        "{found}"
    );

    let revoked = admin(&["keys", "revoke", &key_id]);
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let listed = admin(&["keys", "list", "--customer", &customer, "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let entry = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_id"] == key_id.as_str())
        .unwrap();
    assert!(entry["revoked_at"].is_string(), "{entry}");

    let refused = search(&api_key);
    assert_eq!(refused.status.code(), Some(5));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("HTTP 401 unauthenticated"), "{stderr}");
}
