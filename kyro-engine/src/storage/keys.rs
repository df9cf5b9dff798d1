//! RocksDB column families and the byte layout of their keys and values
//! (documented in `docs/storage.md`). Integers in keys are big-endian so that
//! RocksDB's byte order is numeric order and one namespace's keys are one
//! contiguous range.

/// Column family of the manifest: the instance record and one record per
/// namespace (its tenant, name and cold segments).
pub(crate) const CF_META: &str = "meta";
/// Column family of the id maps: `(namespace, doc id) → point id`.
pub(crate) const CF_IDS: &str = "ids";
/// Column family of payloads: `(namespace, point id) → payload`.
pub(crate) const CF_PAYLOADS: &str = "payloads";
/// Column family of the hot tier's write log:
/// `(namespace, point id) → (doc id, vector)`.
pub(crate) const CF_HOT: &str = "hot";

/// Every column family, in the order they are opened.
pub(crate) const COLUMN_FAMILIES: [&str; 4] = [CF_META, CF_IDS, CF_PAYLOADS, CF_HOT];

/// Key of the instance record in [`CF_META`].
pub(crate) const INSTANCE_KEY: &[u8] = b"instance";
/// Prefix of namespace records in [`CF_META`].
const NAMESPACE_PREFIX: &[u8] = b"ns/";

/// `ns/` + namespace id.
pub(crate) fn namespace_key(namespace: u32) -> Vec<u8> {
    let mut key = NAMESPACE_PREFIX.to_vec();
    key.extend_from_slice(&namespace.to_be_bytes());
    key
}

/// The prefix every namespace record key starts with.
pub(crate) fn namespace_prefix() -> &'static [u8] {
    NAMESPACE_PREFIX
}

/// Namespace id + doc id: a key of [`CF_IDS`].
pub(crate) fn doc_key(namespace: u32, doc_id: u64) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..4].copy_from_slice(&namespace.to_be_bytes());
    key[4..].copy_from_slice(&doc_id.to_be_bytes());
    key
}

/// Namespace id + point id: a key of [`CF_PAYLOADS`] and [`CF_HOT`].
pub(crate) fn point_key(namespace: u32, point: u32) -> [u8; 8] {
    let mut key = [0u8; 8];
    key[..4].copy_from_slice(&namespace.to_be_bytes());
    key[4..].copy_from_slice(&point.to_be_bytes());
    key
}

/// The 4-byte prefix of every key of a namespace in the data families.
pub(crate) fn namespace_range(namespace: u32) -> ([u8; 4], Option<[u8; 4]>) {
    let start = namespace.to_be_bytes();
    let end = namespace.checked_add(1).map(u32::to_be_bytes);
    (start, end)
}

/// Decodes a [`doc_key`]: `(namespace, doc id)`.
pub(crate) fn parse_doc_key(key: &[u8]) -> Option<(u32, u64)> {
    let namespace = u32::from_be_bytes(key.get(..4)?.try_into().ok()?);
    let doc = u64::from_be_bytes(key.get(4..12)?.try_into().ok()?);
    (key.len() == 12).then_some((namespace, doc))
}

/// Decodes a [`point_key`]: `(namespace, point id)`.
pub(crate) fn parse_point_key(key: &[u8]) -> Option<(u32, u32)> {
    let namespace = u32::from_be_bytes(key.get(..4)?.try_into().ok()?);
    let point = u32::from_be_bytes(key.get(4..8)?.try_into().ok()?);
    (key.len() == 8).then_some((namespace, point))
}

/// A point id value of [`CF_IDS`].
pub(crate) fn point_value(point: u32) -> [u8; 4] {
    point.to_le_bytes()
}

/// Decodes a [`point_value`].
pub(crate) fn parse_point_value(value: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(value.try_into().ok()?))
}

/// A hot-log value: doc id (u64 LE) then the vector (f32 LE).
pub(crate) fn hot_value(doc_id: u64, vector: &[f32]) -> Vec<u8> {
    let mut value = Vec::with_capacity(8 + 4 * vector.len());
    value.extend_from_slice(&doc_id.to_le_bytes());
    for x in vector {
        value.extend_from_slice(&x.to_le_bytes());
    }
    value
}

/// Decodes a [`hot_value`] of a `dim`-dimensional vector.
pub(crate) fn parse_hot_value(value: &[u8], dim: usize) -> Option<(u64, Vec<f32>)> {
    if value.len() != 8 + 4 * dim {
        return None;
    }
    let doc = u64::from_le_bytes(value[..8].try_into().ok()?);
    let vector = value[8..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Some((doc, vector))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_numerically_and_round_trip() {
        assert!(doc_key(1, 255) < doc_key(1, 256));
        assert!(doc_key(1, u64::MAX) < doc_key(2, 0));
        assert!(point_key(7, 1 << 20) < point_key(8, 0));
        assert_eq!(parse_doc_key(&doc_key(3, 99)), Some((3, 99)));
        assert_eq!(parse_point_key(&point_key(3, 99)), Some((3, 99)));
        assert_eq!(parse_point_value(&point_value(42)), Some(42));
        let value = hot_value(9, &[1.5, -2.0]);
        assert_eq!(parse_hot_value(&value, 2), Some((9, vec![1.5, -2.0])));
        assert_eq!(parse_hot_value(&value, 3), None);
    }
}
