//! The one error type of the embedder.

use std::path::PathBuf;

/// Everything that can go wrong loading the model or embedding text.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// A model file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A model file is malformed or does not describe all-MiniLM-L6-v2's shape.
    #[error("invalid model file {path}: {reason}")]
    InvalidModel {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The tokenizer failed on a text or could not be loaded.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The embedding service has shut down (its workers are gone).
    #[error("the embedding service is shut down")]
    ServiceStopped,
    /// The embedder's thread pool could not be started.
    #[error("cannot start the embedder's threads: {0}")]
    Threads(String),
    /// A precision name other than `f32`, `int8` or `auto`.
    #[error("unknown precision {0:?}: expected f32, int8 or auto")]
    InvalidPrecision(String),
}
