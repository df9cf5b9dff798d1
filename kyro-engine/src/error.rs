//! The engine's error type.

use thiserror::Error;

/// Everything the engine can refuse or fail at. Each variant names the field or
/// the value at fault so that the server can map it to a precise client error.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum EngineError {
    /// A vector's length differs from the index dimension.
    #[error("vector: expected {expected} dimensions, got {got}")]
    DimensionMismatch { expected: usize, got: usize },
    /// A vector holds NaN or an infinity.
    #[error("vector: component {index} is not finite ({value})")]
    NonFiniteComponent { index: usize, value: f32 },
    /// A cosine vector whose norm is zero has no direction to compare.
    #[error("vector: zero vector cannot be used with the cosine metric")]
    ZeroVectorForCosine,
    /// A configuration or request parameter is outside its allowed range.
    #[error("{field}: {reason}")]
    InvalidParameter { field: &'static str, reason: String },
    /// `vectors` is not a whole number of rows, or `ids` has another length.
    #[error("vectors: {reason}")]
    InvalidBatch { reason: String },
    /// A payload field (named by its key, e.g. `payload.tags`) breaks a rule:
    /// wrong type, too long, too many entries.
    #[error("{field}: {reason}")]
    InvalidPayload { field: String, reason: String },
    /// A filter is malformed: `path` says where (e.g. `filter.and[1].range`).
    #[error("{path}: {reason}")]
    InvalidFilter { path: String, reason: String },
    /// The index cannot hold more points (internal ids are 32-bit).
    #[error("index is full: {capacity} points")]
    CapacityExceeded { capacity: usize },
    /// A long operation (a bulk build) was asked to stop before it finished;
    /// nothing it produced was kept.
    #[error("cancelled: {what}")]
    Cancelled { what: &'static str },
}
