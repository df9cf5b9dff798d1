//! An import that stops part-way (a batch the server refuses, a killed
//! server) continues with `--resume` after its last acknowledged batch,
//! and ends with every point exactly once.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use kyro_cli::checkpoint::Checkpoint;
use kyro_proto::v1 as pb;
use serde_json::json;

/// Writes `n` points as JSON Lines; `bad_line` (from 1), if any, carries a
/// payload key the server refuses.
fn write_points(path: &Path, n: u64, bad_line: Option<u64>) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for id in 0..n {
        let p = point(id);
        let mut payload = serde_json::Map::new();
        payload.insert("n".into(), json!(id));
        payload.insert("tool".into(), json!(["cargo", "npm"][id as usize % 2]));
        if Some(id + 1) == bad_line {
            payload.insert("bad key".into(), json!(1));
        }
        let line = json!({"id": id, "vector": p.vector, "payload": payload});
        writeln!(file, "{line}").unwrap();
    }
}

/// Asserts the namespace holds exactly the points of `write_points(n)`.
async fn assert_exactly(client: &mut kyro_cli::client::Client, namespace: &str, n: u64) {
    let all = read_all(client, namespace).await;
    assert_eq!(
        all.keys().copied().collect::<Vec<_>>(),
        (0..n).collect::<Vec<_>>(),
        "every doc id exactly once"
    );
    for (id, stored) in &all {
        assert_eq!(stored.vector, point(*id).vector, "doc {id}");
        assert_eq!(
            stored.payload.get("n").and_then(|v| v.kind.clone()),
            Some(pb::value::Kind::IntegerValue(*id as i64)),
            "doc {id}"
        );
        assert_eq!(stored.payload.len(), 2, "doc {id}: {:?}", stored.payload);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_stops_the_import_and_resume_completes_it_without_duplicates() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::start(root.path());
    let mut client = server.client(&WRITER).await;
    let input = root.path().join("points.jsonl");
    let checkpoint = root.path().join("points.jsonl.kyro-import");
    write_points(&input, 3000, Some(2345));
    let args = [
        "import",
        "episodes",
        "-i",
        input.to_str().unwrap(),
        "--batch-size",
        "500",
    ];

    let failed = kyro(&server, &WRITER, &args);
    assert_eq!(failed.code, 6, "a refusal by the server: {}", failed.stderr);
    assert!(
        failed.stderr.contains("line 2345 (doc id 2344): ") && failed.stderr.contains("bad key"),
        "the error names the line and the server's reason: {}",
        failed.stderr
    );
    assert!(
        failed.stderr.contains("rerun with --resume"),
        "{}",
        failed.stderr
    );
    let saved = Checkpoint::read(&checkpoint)
        .unwrap()
        .expect("a checkpoint");
    assert_eq!((saved.acknowledged, saved.batches), (2000, 4));
    // The refused batch's other points were stored (each point stands alone).
    assert_eq!(count(&mut client, "episodes").await, 2499);

    // Without --resume, an unfinished import is not started over silently.
    let refused = kyro(&server, &WRITER, &args);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("pass --resume"),
        "{}",
        refused.stderr
    );

    write_points(&input, 3000, None);
    let mut resume = args.to_vec();
    resume.extend(["--resume", "--json"]);
    let done = kyro(&server, &WRITER, &resume).json();
    assert_eq!(done["resumed_after"], 2000);
    assert_eq!(done["imported"], 1000);
    assert_eq!(done["total"], 3000);
    assert!(!checkpoint.exists(), "the checkpoint is removed at the end");
    assert_exactly(&mut client, "episodes", 3000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_interrupted_by_a_killed_server_resumes_after_a_restart() {
    let root = tempfile::tempdir().unwrap();
    let mut server = Server::start(root.path());
    let input = root.path().join("points.jsonl");
    let checkpoint = root.path().join("points.jsonl.kyro-import");
    const N: u64 = 40_000;
    write_points(&input, N, None);
    let mut import = kyro_command(&server, &WRITER)
        .args([
            "import",
            "episodes",
            "-i",
            input.to_str().unwrap(),
            "--batch-size",
            "50",
            "--retries",
            "0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running kyro import");
    // Kill the server once a few batches are acknowledged.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(Some(saved)) = Checkpoint::read(&checkpoint) {
            if saved.acknowledged >= 500 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the import made no progress");
        assert!(
            import.try_wait().unwrap().is_none(),
            "the import ended before the server was killed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill();
    let failed = import.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(4), "unavailable: {stderr}");
    assert!(stderr.contains("rerun with --resume"), "{stderr}");
    let saved = Checkpoint::read(&checkpoint)
        .unwrap()
        .expect("a checkpoint");
    assert!(
        saved.acknowledged >= 500 && saved.acknowledged < N,
        "{saved:?}"
    );
    assert!(
        saved.acknowledged.is_multiple_of(50),
        "whole batches: {saved:?}"
    );

    server.restart();
    let mut client = server.client(&WRITER).await;
    // Every acknowledged batch survived the kill.
    assert!(count(&mut client, "episodes").await >= saved.acknowledged);
    let done = kyro(
        &server,
        &WRITER,
        &[
            "import",
            "episodes",
            "-i",
            input.to_str().unwrap(),
            "--batch-size",
            "1000",
            "--resume",
            "--json",
        ],
    )
    .json();
    assert_eq!(done["resumed_after"], saved.acknowledged);
    assert_eq!(done["total"], N);
    assert_exactly(&mut client, "episodes", N).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_another_imports_checkpoint_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::start(root.path());
    let input = root.path().join("points.jsonl");
    write_points(&input, 10, None);
    let checkpoint = root.path().join("points.jsonl.kyro-import");
    Checkpoint {
        version: 1,
        input: input.clone(),
        format: kyro_cli::formats::Format::Jsonl,
        namespace: "other".into(),
        url: server.url(),
        acknowledged: 5,
        batches: 1,
        updated_at: 0,
    }
    .write(&checkpoint)
    .unwrap();
    let run = kyro(
        &server,
        &WRITER,
        &[
            "import",
            "episodes",
            "-i",
            input.to_str().unwrap(),
            "--resume",
        ],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("namespace other, not episodes"),
        "{}",
        run.stderr
    );
}
