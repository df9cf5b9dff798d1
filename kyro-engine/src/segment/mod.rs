//! Immutable on-disk segments: an HNSW index written once and searched
//! straight from mmap, with nothing rebuilt or loaded at open.
//!
//! - [`file`]: the checksummed file format every segment file shares.
//! - [`cold`]: [`ColdSegment`] — writing an index out, opening and searching it.
//!
//! The byte layout of every file is documented in `docs/storage.md`.

pub mod cold;
pub mod file;

pub use cold::ColdSegment;
pub use file::{FileKind, SegmentError};
