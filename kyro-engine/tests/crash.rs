//! Crash safety with a real process kill: a child process writes under
//! `fsync = always` from several threads (with background sealing, so the
//! kill can land mid-seal), reporting each acknowledged write on stdout; the
//! parent SIGKILLs it mid-load, reopens the data directory and checks that
//! every acknowledged write is there and searchable.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kyro_engine::payload::{Payload, PayloadValue};
use kyro_engine::storage::{
    FsyncPolicy, Instance, InstanceConfig, NamespaceRef, PointWrite, SearchRequest,
};
use kyro_engine::Metric;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DIM: usize = 16;
const TARGET: NamespaceRef<'static> = NamespaceRef {
    tenant: "crash",
    namespace: "load",
};
const DIR_VAR: &str = "KYRO_CRASH_TEST_DIR";
/// Acknowledged writes after which the parent kills the child.
const KILL_AFTER: usize = 1_500;

fn vector_of(doc: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(doc);
    (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn config() -> InstanceConfig {
    let mut config = InstanceConfig::new(DIM, Metric::Cosine);
    config.fsync = FsyncPolicy::Always;
    config.hot_max_points = 250;
    config.optimizer.interval = Duration::from_millis(20);
    config.optimizer.merge_min_segments = 3;
    config
}

/// The child: writes until killed. Ignored so that it runs only when the
/// parent asks for it by name.
#[test]
#[ignore = "run by acknowledged_writes_survive_sigkill_mid_load as a child process"]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    let instance = Instance::open(dir.as_ref(), config()).unwrap();
    let next = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| loop {
                let doc = next.fetch_add(1, Ordering::Relaxed);
                let mut payload = Payload::default();
                payload.insert("doc".to_string(), PayloadValue::Integer(doc as i64));
                let write = PointWrite {
                    doc_id: doc,
                    vector: vector_of(doc),
                    payload,
                };
                instance.insert(TARGET, write).unwrap();
                let mut out = std::io::stdout().lock();
                writeln!(out, "ack {doc}").unwrap();
                out.flush().unwrap();
            });
        }
    });
}

#[test]
fn acknowledged_writes_survive_sigkill_mid_load() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child_writer",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_VAR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acked = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(doc) = line.strip_prefix("ack ") {
            acked.push(doc.parse::<u64>().unwrap());
            if acked.len() >= KILL_AFTER {
                break;
            }
        }
    }
    // Child::kill sends SIGKILL on Unix: no destructor, no final fsync.
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(acked.len(), KILL_AFTER, "the child stopped before the kill");

    let mut config = config();
    config.optimizer.background = false;
    let instance = Instance::open(dir.path(), config).unwrap();
    let count = instance.count(TARGET, None).unwrap();
    assert!(count >= KILL_AFTER as u64, "{count} points after recovery");
    let got = instance.get(TARGET, &acked, false, true).unwrap();
    for (doc, record) in acked.iter().zip(&got) {
        let record = record
            .as_ref()
            .unwrap_or_else(|| panic!("acknowledged doc {doc} lost"));
        let mut payload = Payload::default();
        payload.insert("doc".to_string(), PayloadValue::Integer(*doc as i64));
        assert_eq!(record.payload.as_ref(), Some(&payload));
    }
    for doc in acked.iter().step_by(50) {
        let query = vector_of(*doc);
        let hits = instance
            .search(TARGET, &SearchRequest::new(&query, 1))
            .unwrap()
            .hits;
        assert_eq!(
            hits.first().map(|h| h.doc_id),
            Some(*doc),
            "doc {doc} not searchable"
        );
    }
}
