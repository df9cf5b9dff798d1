//! `kyro-embed`: KyroDB's in-process text embedder.
//!
//! [`Embedder`] turns text into the 384-dim vectors of
//! sentence-transformers' all-MiniLM-L6-v2 (WordPiece tokenizer, six BERT
//! layers written here on a GEMM crate, mean pooling, L2 normalisation);
//! [`EmbedService`] serves it to many concurrent async callers with
//! micro-batching and a cache of recent texts.
//!
//! What it is not: a model hub client. The model folder is fetched once by
//! `scripts/fetch-model.sh` and loaded from a path; nothing here touches the
//! network. The storage engine does not depend on this crate.

mod embedder;
mod encoder;
mod error;
mod int8;
mod kernels;
mod service;
mod weights;

pub use embedder::{Embedder, Precision, MAX_WORD_PIECES};
pub use error::EmbedError;
pub use service::{BatcherConfig, EmbedService, EmbedStats};

/// The int8 matrix product on its own, for the `gemm_peak` example's
/// measurement of the machine's ceiling; not part of the embedder's API.
#[doc(hidden)]
pub mod int8_product {
    pub use crate::int8::{vnni_available, QuantMatrix};
}

/// The model folder used when none is configured:
/// `$KYRO_MODEL_DIR`, else `$HOME/.cache/kyrodb/models/all-MiniLM-L6-v2`
/// (where `scripts/fetch-model.sh` puts it).
pub fn default_model_dir() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("KYRO_MODEL_DIR") {
        return dir.into();
    }
    let home = std::env::var_os("HOME").unwrap_or_default();
    std::path::PathBuf::from(home).join(".cache/kyrodb/models/all-MiniLM-L6-v2")
}
