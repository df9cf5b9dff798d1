//! Replacing or deleting a point unindexes its old payload. When the point
//! is a cold one held in the point cache, the payload comes from there, not
//! from a RocksDB read; the payload index stays exact either way.

use std::sync::atomic::Ordering;

use crate::payload::{Filter, Payload, PayloadValue};
use crate::storage::{Instance, InstanceConfig, NamespaceRef, PayloadUpdate, PointWrite};
use crate::Metric;

const DIM: usize = 8;
const TARGET: NamespaceRef<'static> = NamespaceRef {
    tenant: "tenant",
    namespace: "unindex",
};

fn tagged(doc_id: u64, tag: &str) -> PointWrite {
    let mut payload = Payload::default();
    payload.insert("tag".to_owned(), PayloadValue::String(tag.to_owned()));
    PointWrite {
        doc_id,
        vector: (0..DIM)
            .map(|i| (doc_id as usize * 5 + i) as f32 + 1.0)
            .collect(),
        payload,
    }
}

fn count(instance: &Instance, tag: &str) -> u64 {
    instance
        .count(TARGET, Some(&Filter::eq("tag", tag)))
        .expect("count")
}

#[test]
fn cached_cold_points_are_unindexed_without_reading_their_payload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = InstanceConfig::new(DIM, Metric::Cosine);
    config.optimizer.background = false;
    let instance = Instance::open(dir.path(), config).expect("open");
    let seed = (0..20).map(|doc| tagged(doc, "old")).collect();
    for outcome in instance.upsert(TARGET, seed).expect("seed") {
        outcome.expect("seed point");
    }
    // Seal: every point is cold now.
    instance.flush(Some(TARGET)).expect("flush");
    // Reading docs 3 and 5 puts them in the point cache.
    let read = instance.get(TARGET, &[3, 5], true, true).expect("get");
    assert!(read.iter().all(Option::is_some));
    let namespace = instance.namespace(TARGET).expect("namespace");
    let reads = || namespace.payload_reads.load(Ordering::Relaxed);

    let before = reads();
    for outcome in instance
        .upsert(TARGET, vec![tagged(3, "new")])
        .expect("upsert")
    {
        outcome.expect("upsert point");
    }
    instance
        .update_payload(TARGET, 5, tagged(5, "merged").payload, PayloadUpdate::Merge)
        .expect("update_payload");
    assert_eq!(
        reads(),
        before,
        "cached points are unindexed from the cache"
    );

    // Doc 4 was never read: its payload is read back once to unindex it.
    assert_eq!(instance.delete(TARGET, &[4]).expect("delete"), 1);
    assert_eq!(reads(), before + 1, "an uncached point's payload is read");

    assert_eq!(count(&instance, "old"), 17);
    assert_eq!(count(&instance, "new"), 1);
    assert_eq!(count(&instance, "merged"), 1);
    let doc5 = instance.get(TARGET, &[5], false, true).expect("get")[0]
        .clone()
        .expect("doc 5");
    assert_eq!(
        doc5.payload.expect("payload").get("tag"),
        Some(&PayloadValue::String("merged".to_owned()))
    );
}
