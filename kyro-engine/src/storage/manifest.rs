//! The manifest: which namespaces exist and which cold segments each one is
//! made of. It lives in RocksDB's `meta` column family (one record per
//! namespace plus the instance record) and changes only through durable
//! (fsynced) batches, after the segment files it names are fsynced in place.

use std::path::{Path, PathBuf};

use bincode::{Decode, Encode};

use super::error::StorageError;
use crate::distance::Metric;

/// Version of the records below; a reader refuses others.
pub(crate) const MANIFEST_VERSION: u32 = 1;

/// The instance record: what the data directory holds and the id counters.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub(crate) struct InstanceRecord {
    pub(crate) version: u32,
    pub(crate) dim: u64,
    pub(crate) metric: String,
    /// Next namespace id to hand out.
    pub(crate) next_namespace: u32,
    /// Next segment id to hand out.
    pub(crate) next_segment: u64,
}

impl InstanceRecord {
    pub(crate) fn new(dim: usize, metric: Metric) -> Self {
        Self {
            version: MANIFEST_VERSION,
            dim: dim as u64,
            metric: metric.name().to_string(),
            next_namespace: 1,
            next_segment: 1,
        }
    }
}

/// One namespace: its owner, name and cold segments (oldest first).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub(crate) struct NamespaceRecord {
    pub(crate) version: u32,
    pub(crate) tenant: String,
    pub(crate) name: String,
    pub(crate) segments: Vec<u64>,
}

/// Encodes a manifest record.
pub(crate) fn encode<T: Encode>(record: &T) -> Result<Vec<u8>, StorageError> {
    bincode::encode_to_vec(record, bincode::config::standard())
        .map_err(|e| StorageError::corrupt("manifest record", e.to_string()))
}

/// Decodes a manifest record, refusing trailing bytes.
pub(crate) fn decode<T: Decode<()>>(what: &str, bytes: &[u8]) -> Result<T, StorageError> {
    let (record, used) = bincode::decode_from_slice(bytes, bincode::config::standard())
        .map_err(|e| StorageError::corrupt(what, e.to_string()))?;
    if used != bytes.len() {
        return Err(StorageError::corrupt(what, "trailing bytes"));
    }
    Ok(record)
}

/// Directory of segment `id` under the instance's `segments/` directory.
pub(crate) fn segment_dir(segments: &Path, id: u64) -> PathBuf {
    segments.join(format!("{id:016x}"))
}

/// The segment id a directory name stands for, if it is one.
pub(crate) fn parse_segment_dir(name: &str) -> Option<u64> {
    (name.len() == 16)
        .then(|| u64::from_str_radix(name, 16).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_reject_garbage() {
        let record = NamespaceRecord {
            version: MANIFEST_VERSION,
            tenant: "acme".into(),
            name: "episodes".into(),
            segments: vec![3, 9],
        };
        let bytes = encode(&record).unwrap();
        assert_eq!(decode::<NamespaceRecord>("ns", &bytes).unwrap(), record);
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode::<NamespaceRecord>("ns", &longer).is_err());
        for cut in 0..bytes.len() {
            assert!(decode::<NamespaceRecord>("ns", &bytes[..cut]).is_err());
        }
    }

    #[test]
    fn segment_dirs_round_trip() {
        let dir = segment_dir(Path::new("/x"), 0xabc);
        let name = dir.file_name().unwrap().to_str().unwrap();
        assert_eq!(parse_segment_dir(name), Some(0xabc));
        assert_eq!(parse_segment_dir("abc.tmp"), None);
    }
}
