//! [`IdMap`]: a namespace's doc id → point id map, kept in RocksDB's `ids`
//! column family (key: namespace + doc id, big-endian, so a namespace's docs
//! scan in doc-id order). The only code that reads or writes that family's
//! entries: the write path, `Get`, scroll and recovery all go through it.
//! The other direction, point → doc, lives with the points, in the segment
//! holding each one (`Segment::doc_of`).

use rocksdb::{Direction, IteratorMode, WriteBatch};

use super::error::StorageError;
use super::keys::{self, CF_IDS};
use super::store::Store;

/// The doc → point map of namespace `namespace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IdMap {
    namespace: u32,
}

impl IdMap {
    pub(crate) fn new(namespace: u32) -> Self {
        Self { namespace }
    }

    /// The point id `doc_id` is stored under now, if it exists.
    pub(crate) fn point_of(&self, store: &Store, doc_id: u64) -> Result<Option<u32>, StorageError> {
        let value = store
            .db()
            .get_pinned_cf(store.cf(CF_IDS), keys::doc_key(self.namespace, doc_id))
            .map_err(|e| StorageError::rocks("read id map", e))?;
        value
            .map(|bytes| {
                keys::parse_point_value(&bytes)
                    .ok_or_else(|| StorageError::corrupt("id map value", format!("doc {doc_id}")))
            })
            .transpose()
    }

    /// Adds "`doc_id` is now `point`" to `batch`.
    pub(crate) fn put(&self, store: &Store, batch: &mut WriteBatch, doc_id: u64, point: u32) {
        batch.put_cf(
            store.cf(CF_IDS),
            keys::doc_key(self.namespace, doc_id),
            keys::point_value(point),
        );
    }

    /// Adds "`doc_id` no longer exists" to `batch`.
    pub(crate) fn remove(&self, store: &Store, batch: &mut WriteBatch, doc_id: u64) {
        batch.delete_cf(store.cf(CF_IDS), keys::doc_key(self.namespace, doc_id));
    }

    /// Every `(doc id, point id)` of the namespace from `first_doc` on, in
    /// doc-id order.
    pub(crate) fn scan_from<'s>(
        &self,
        store: &'s Store,
        first_doc: u64,
    ) -> impl Iterator<Item = Result<(u64, u32), StorageError>> + 's {
        let namespace = self.namespace;
        let start = keys::doc_key(namespace, first_doc);
        store
            .db()
            .iterator_cf(
                store.cf(CF_IDS),
                IteratorMode::From(&start, Direction::Forward),
            )
            .map_while(move |entry| {
                let (key, value) = match entry {
                    Ok(entry) => entry,
                    Err(e) => return Some(Err(StorageError::rocks("scan id map", e))),
                };
                let (ns, doc_id) = keys::parse_doc_key(&key)?;
                if ns != namespace {
                    return None;
                }
                Some(
                    keys::parse_point_value(&value)
                        .map(|point| (doc_id, point))
                        .ok_or_else(|| {
                            StorageError::corrupt("id map value", format!("doc {doc_id}"))
                        }),
                )
            })
    }
}
