//! Payloads, filters over them, and the index that answers filters.
//!
//! - [`value`]: [`Payload`] and [`PayloadValue`], with the payload limits and
//!   validation.
//! - [`codec`]: the payload byte format ([`Payload::encode`],
//!   [`Payload::decode`]).
//! - [`filter`]: the [`Filter`] language — validation, direct evaluation
//!   ([`Filter::matches`], the definition), canonical encoding.
//! - [`index`]: [`PayloadIndex`] — per-field bitmaps that evaluate filters.
//!
//! `docs/architecture.md` describes the language and the index,
//! `docs/storage.md` the payload bytes.

pub mod codec;
pub mod filter;
pub mod index;
pub mod value;

pub use codec::PAYLOAD_FORMAT_VERSION;
pub use filter::{
    Filter, FilterValue, Range, FILTER_ENCODING_VERSION, MAX_FILTER_DEPTH, MAX_FILTER_NODES,
    MAX_IN_VALUES,
};
pub use index::PayloadIndex;
/// The bitmap type of point-id sets [`PayloadIndex`] takes and returns,
/// re-exported so that callers use the same `roaring` version.
pub use roaring::RoaringBitmap;
pub use value::{
    Payload, PayloadValue, MAX_ENCODED_BYTES, MAX_FIELDS, MAX_KEY_BYTES, MAX_LIST_ITEMS,
    MAX_STRING_BYTES,
};
