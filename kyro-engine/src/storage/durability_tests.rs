//! Writes are made durable outside the namespace's writer lock: with the
//! group-commit leader held inside its fsync (the stand-in for a slow disk),
//! the namespace's writer lock must be free, so that other writers of the
//! namespace are not stalled behind the disk. One test per write path.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::payload::{Filter, Payload, PayloadValue};
use crate::storage::{
    FsyncPolicy, Instance, InstanceConfig, NamespaceRef, PayloadUpdate, PointWrite,
};
use crate::Metric;

const DIM: usize = 8;
const TARGET: NamespaceRef<'static> = NamespaceRef {
    tenant: "tenant",
    namespace: "slow-disk",
};
/// How long the test waits for a write to reach its fsync; a bound against
/// hanging, not a timing assertion.
const REACH_FSYNC: Duration = Duration::from_secs(60);

fn payload(tag: &str) -> Payload {
    let mut payload = Payload::default();
    payload.insert("tag".to_owned(), PayloadValue::String(tag.to_owned()));
    payload
}

fn point(doc_id: u64, tag: &str) -> PointWrite {
    PointWrite {
        doc_id,
        vector: (0..DIM)
            .map(|i| (doc_id as usize * 7 + i) as f32 + 1.0)
            .collect(),
        payload: payload(tag),
    }
}

/// An instance with `fsync = always` holding docs 0..10 (odd ones tagged
/// "odd"), and its fsync hook armed: the next fsync reports on the returned
/// receiver and waits until the sender is used (or dropped).
fn slow_disk_instance(dir: &std::path::Path) -> (Arc<Instance>, Receiver<()>, Sender<()>) {
    let mut config = InstanceConfig::new(DIM, Metric::Cosine);
    config.optimizer.background = false;
    config.fsync = FsyncPolicy::Always;
    let instance = Arc::new(Instance::open(dir, config).expect("open"));
    let points = (0..10)
        .map(|d| point(d, if d % 2 == 1 { "odd" } else { "even" }))
        .collect();
    for outcome in instance.upsert(TARGET, points).expect("seed") {
        outcome.expect("seed point");
    }
    let (reached_tx, reached_rx) = channel();
    let (release_tx, release_rx) = channel::<()>();
    let state = Mutex::new((reached_tx, release_rx));
    *instance.core.store.before_fsync.lock() = Some(Box::new(move || {
        let state = state.lock().expect("hook state");
        // Reports every fsync; blocks until released (a closed channel
        // releases every later fsync at once).
        let _ = state.0.send(());
        let _ = state.1.recv();
    }));
    (instance, reached_rx, release_tx)
}

/// Runs `write` on a thread, waits until it is inside its fsync, asserts the
/// namespace's writer lock is free there, then lets the fsync finish.
fn assert_fsync_outside_writer_lock(name: &str, write: impl FnOnce(&Instance) + Send + 'static) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (instance, reached, release) = slow_disk_instance(dir.path());
    let namespace = instance.namespace(TARGET).expect("namespace");
    let writer = {
        let instance = Arc::clone(&instance);
        std::thread::spawn(move || write(&instance))
    };
    reached
        .recv_timeout(REACH_FSYNC)
        .unwrap_or_else(|e| panic!("{name}: never reached its fsync: {e}"));
    let free = namespace.writer.try_lock().is_some();
    drop(release);
    writer.join().expect("writer thread");
    assert!(
        free,
        "{name}: the namespace's writer lock is held during the fsync, so a slow \
         disk stalls every other writer of the namespace"
    );
}

#[test]
fn upsert_fsyncs_outside_the_writer_lock() {
    assert_fsync_outside_writer_lock("upsert", |instance| {
        for outcome in instance
            .upsert(TARGET, vec![point(100, "new")])
            .expect("upsert")
        {
            outcome.expect("point");
        }
    });
}

#[test]
fn delete_fsyncs_outside_the_writer_lock() {
    assert_fsync_outside_writer_lock("delete", |instance| {
        assert_eq!(instance.delete(TARGET, &[2, 4]).expect("delete"), 2);
    });
}

#[test]
fn delete_by_filter_fsyncs_outside_the_writer_lock() {
    assert_fsync_outside_writer_lock("delete_by_filter", |instance| {
        let deleted = instance
            .delete_by_filter(TARGET, &Filter::eq("tag", "odd"))
            .expect("delete_by_filter");
        assert_eq!(deleted, 5);
    });
}

#[test]
fn payload_update_fsyncs_outside_the_writer_lock() {
    assert_fsync_outside_writer_lock("update_payload", |instance| {
        instance
            .update_payload(TARGET, 3, payload("changed"), PayloadUpdate::Merge)
            .expect("update_payload");
    });
}
