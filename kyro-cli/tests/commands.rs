//! `kyro stats`, `search`, `snapshot` and the errors of bad input, against
//! a real kyro-server.

mod common;

use std::io::Write;

use common::*;
use kyro_cli::formats::{create_writer, Format};
use kyro_cli::payload::Payload;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_reports_the_instance_and_the_namespaces() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::start(root.path());
    let mut client = server.client(&WRITER).await;
    insert(&mut client, "episodes", (0..120).map(point).collect()).await;
    insert(&mut client, "fixes", (0..7).map(point).collect()).await;

    let stats = kyro(&server, &READER, &["stats", "--json"]).json();
    assert_eq!(stats["dim"], DIM);
    assert_eq!(stats["metric"], "l2");
    assert_eq!(stats["points"], 127);
    let namespaces = stats["namespace_list"].as_array().unwrap();
    let points_of = |name: &str| {
        namespaces
            .iter()
            .find(|n| n["namespace"] == name)
            .map(|n| n["points"].clone())
    };
    assert_eq!(points_of("episodes"), Some(120.into()));
    assert_eq!(points_of("fixes"), Some(7.into()));

    // The gateway's service key sees a tenant's namespaces through --tenant.
    let acting = kyro(&server, &SERVICE, &["--tenant", "acme", "stats", "--json"]).json();
    let listed: Vec<&str> = acting["namespace_list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["namespace"].as_str())
        .collect();
    assert_eq!(listed, ["episodes", "fixes"], "{acting}");
    let own = kyro(&server, &SERVICE, &["stats", "--json"]).json();
    assert_eq!(
        own["namespace_list"].as_array().map(Vec::len),
        Some(0),
        "{own}"
    );

    let text = kyro(&server, &ADMIN, &["stats"]);
    text.ok();
    assert!(
        text.stdout.contains(&format!("({DIM}-dim, l2)")),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("query cache"),
        "admins see caches: {}",
        text.stdout
    );
    let row = text
        .stdout
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("episodes"))
        .unwrap_or_else(|| panic!("no episodes row: {}", text.stdout));
    assert_eq!(row.split_whitespace().nth(2), Some("120"), "{row}");

    let denied = kyro(&server, &READER, &["snapshot", "create"]);
    assert_eq!(denied.code, 5, "{}", denied.stderr);
    assert!(
        denied.stderr.contains("PERMISSION_DENIED"),
        "{}",
        denied.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_the_point_whose_vector_is_in_the_query_file() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::start(root.path());
    let mut client = server.client(&WRITER).await;
    insert(&mut client, "episodes", (0..200).map(point).collect()).await;

    // Row 2 of an npy file holds point 44's vector.
    let npy = root.path().join("q.npy");
    let mut writer = create_writer(Format::Npy, &npy, DIM, None).unwrap();
    for id in [5, 9, 44] {
        writer
            .write(id, &point(id).vector, &Payload::new())
            .unwrap();
    }
    writer.finish().unwrap();
    let found = kyro(
        &server,
        &READER,
        &[
            "search",
            "episodes",
            "--query",
            npy.to_str().unwrap(),
            "--row",
            "2",
            "-k",
            "3",
            "--json",
        ],
    )
    .json();
    let hits = found["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[0]["doc_id"], 44);
    assert_eq!(hits[0]["distance"], 0.0);
    assert_eq!(hits[0]["payload"]["exit_code"], 44 - 1000);

    // A .json file, a filter, and the table for people.
    let json_file = root.path().join("q.json");
    std::fs::write(
        &json_file,
        serde_json::json!({"vector": point(43).vector}).to_string(),
    )
    .unwrap();
    let filter = r#"{"eq": {"key": "tool", "value": {"string_value": "npm"}}}"#;
    let table = kyro(
        &server,
        &READER,
        &[
            "search",
            "episodes",
            "--query",
            json_file.to_str().unwrap(),
            "-k",
            "2",
            "--filter",
            filter,
        ],
    );
    table.ok();
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert!(lines[0].starts_with("RANK"), "{}", table.stdout);
    let first: Vec<&str> = lines[1].split_whitespace().collect();
    // 43 % 3 == 1: npm, so it matches its own vector.
    assert_eq!(&first[..2], &["1", "43"], "{}", table.stdout);
    assert!(lines[1].contains("\"tool\":\"npm\""), "{}", table.stdout);
    assert!(table.stdout.contains("2 hits"), "{}", table.stdout);

    // --vector on the command line.
    let vector = serde_json::to_string(&point(7).vector).unwrap();
    let found = kyro(
        &server,
        &READER,
        &[
            "search", "episodes", "--vector", &vector, "-k", "1", "--json",
        ],
    )
    .json();
    assert_eq!(found["hits"][0]["doc_id"], 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_naming_the_file_and_line_before_anything_is_sent() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::start(root.path());
    let mut client = server.client(&WRITER).await;

    // An npy file of the wrong dimension.
    let npy = root.path().join("wide.npy");
    let mut writer = create_writer(Format::Npy, &npy, DIM + 1, None).unwrap();
    writer.write(0, &[1.0; DIM + 1], &Payload::new()).unwrap();
    writer.finish().unwrap();
    let run = kyro(
        &server,
        &WRITER,
        &["import", "episodes", "-i", npy.to_str().unwrap()],
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("wide.npy: row 0: the vector has 17 dimensions; the instance at")
            && run.stderr.contains("has 16"),
        "{}",
        run.stderr
    );

    // A malformed JSON line after good ones: the good batch is imported.
    let jsonl = root.path().join("broken.jsonl");
    let mut file = std::fs::File::create(&jsonl).unwrap();
    for id in 0..3 {
        writeln!(
            file,
            "{}",
            serde_json::json!({"id": id, "vector": point(id).vector})
        )
        .unwrap();
    }
    writeln!(file, "{{\"id\": 3, \"vector\": [1, 2,").unwrap();
    drop(file);
    let run = kyro(
        &server,
        &WRITER,
        &[
            "import",
            "episodes",
            "-i",
            jsonl.to_str().unwrap(),
            "--batch-size",
            "2",
        ],
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("broken.jsonl: line 4: "),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("2 records of"),
        "the acknowledged batch is reported: {}",
        run.stderr
    );
    assert_eq!(count(&mut client, "episodes").await, 2);

    // A JSON line with a payload value that has no payload type.
    let nested = root.path().join("nested.jsonl");
    std::fs::write(
        &nested,
        format!("{}\n", serde_json::json!({"id": 1, "vector": point(1).vector, "payload": {"env": {"os": "linux"}}})),
    )
    .unwrap();
    let run = kyro(
        &server,
        &WRITER,
        &["import", "other", "-i", nested.to_str().unwrap()],
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("nested.jsonl: line 1: payload.env: nested objects"),
        "{}",
        run.stderr
    );
    assert_eq!(count(&mut client, "other").await, 0);

    // An unknown extension, and a key the server does not know.
    let run = kyro(&server, &WRITER, &["import", "x", "-i", "data.csv"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--format"), "{}", run.stderr);
    let stranger = TestKey {
        name: "stranger",
        tenant: "x",
        scopes: &[],
        key: "not-a-key",
    };
    let run = kyro(&server, &stranger, &["stats"]);
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(run.stderr.contains("UNAUTHENTICATED"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_reported_with_its_address() {
    let root = tempfile::tempdir().unwrap();
    let mut server = Server::start(root.path());
    server.kill();
    let run = kyro(&server, &READER, &["stats"]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("cannot reach kyro-server at {}", server.url())),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_is_created_listed_and_restored() {
    let root = tempfile::tempdir().unwrap();
    let mut server = Server::start(root.path());
    let mut client = server.client(&WRITER).await;
    insert(&mut client, "episodes", (0..1500).map(point).collect()).await;
    let before = read_all(&mut client, "episodes").await;

    let created = kyro(
        &server,
        &ADMIN,
        &["snapshot", "create", "nightly", "--json"],
    )
    .json();
    assert_eq!(created["name"], "nightly");
    let data_dir = server.data_dir.to_str().unwrap().to_owned();
    let listed = kyro(
        &server,
        &ADMIN,
        &["snapshot", "list", "--data-dir", &data_dir, "--json"],
    )
    .json();
    let snapshots = listed["snapshots"].as_array().unwrap();
    assert_eq!(snapshots.len(), 1, "{listed}");
    assert_eq!(snapshots[0]["name"], "nightly");
    assert_eq!(snapshots[0]["dim"], DIM);
    assert!(snapshots[0]["bytes"].as_u64().unwrap() > 0);

    // Changes after the snapshot are undone by the restore.
    drop_namespace(&mut client, "episodes").await;
    insert(&mut client, "later", (0..5).map(point).collect()).await;
    drop(client);

    let restore = [
        "snapshot",
        "restore",
        "nightly",
        "--data-dir",
        &data_dir,
        "--json",
    ];
    let refused = kyro(&server, &ADMIN, &restore);
    assert_eq!(
        refused.code, 2,
        "a running server is not restored under: {}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("stop kyro-server"),
        "{}",
        refused.stderr
    );

    server.stop();
    let mut command = kyro_command(&server, &ADMIN);
    command
        .args(restore)
        .args(["--config", server.config.to_str().unwrap()]);
    command.env("KYRO_SERVER_BIN", server_binary());
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let moved = answer["previous_moved_to"]
        .as_str()
        .expect("the old directory moved aside");
    assert!(std::path::Path::new(moved).is_dir());

    server.restart();
    let mut client = server.client(&WRITER).await;
    let after = read_all(&mut client, "episodes").await;
    assert_same_points(&before, &after, "restored");
    assert_eq!(count(&mut client, "later").await, 0);
}
