//! [`Embedder`]: text in, all-MiniLM-L6-v2 sentence embeddings out.

use std::path::Path;

use gemm::Parallelism;
use rayon::prelude::*;
use tokenizers::{PaddingParams, Tokenizer, TruncationParams};

use crate::encoder::{Encoder, HIDDEN};
use crate::EmbedError;

/// sentence-transformers' `max_seq_length` for all-MiniLM-L6-v2: longer
/// texts are cut to their first 254 word pieces plus `[CLS]` and `[SEP]`.
pub const MAX_WORD_PIECES: usize = 256;

/// Word pieces per forward pass at most when a batch is split across threads:
/// large enough that the matrix products run at full speed, small enough
/// that a pass's activations (≈ 12 KiB per token) stay in the L2/L3 caches
/// and that the threads get similar shares.
const CHUNK_TOKENS: usize = 512;

/// The all-MiniLM-L6-v2 sentence embedder: WordPiece tokenizer, BERT
/// encoder, mean pooling over the text's word pieces, L2 normalisation — the
/// vectors sentence-transformers gives, to within `f32` rounding.
///
/// Synchronous and `Send + Sync`; [`Embedder::embed_batch`] runs on the
/// embedder's own thread pool (never the caller's async runtime). For serving
/// many concurrent callers, wrap it in [`crate::EmbedService`].
pub struct Embedder {
    tokenizer: Tokenizer,
    encoder: Encoder,
    pool: rayon::ThreadPool,
    threads: usize,
    precision: Precision,
}

/// How the encoder computes its linear layers' matrix products.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// `f32` throughout: sentence-transformers' vectors to within `f32`
    /// rounding.
    #[default]
    F32,
    /// Int8 products (weights quantised per output column at load,
    /// activations per row at run time), on AVX-512 VNNI; attention and the
    /// element-wise steps stay `f32`. On a CPU without VNNI it runs a
    /// portable scalar kernel that is much slower than `f32`.
    Int8,
    /// [`Precision::Int8`] where the CPU has AVX-512 VNNI, else
    /// [`Precision::F32`].
    Auto,
}

impl Precision {
    /// `Auto` resolved for this CPU.
    pub fn resolve(self) -> Precision {
        match self {
            Precision::Auto if crate::int8::vnni_available() => Precision::Int8,
            Precision::Auto => Precision::F32,
            other => other,
        }
    }

    /// The name used in configuration and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Int8 => "int8",
            Precision::Auto => "auto",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Precision {
    type Err = EmbedError;

    fn from_str(s: &str) -> Result<Precision, EmbedError> {
        match s {
            "f32" => Ok(Precision::F32),
            "int8" => Ok(Precision::Int8),
            "auto" => Ok(Precision::Auto),
            other => Err(EmbedError::InvalidPrecision(other.to_string())),
        }
    }
}

impl Embedder {
    /// Loads the model from a Hugging Face folder holding `tokenizer.json`
    /// and `model.safetensors` (`scripts/fetch-model.sh` puts them there),
    /// with a pool of `threads` threads (0 means one per available core).
    ///
    /// The folder's `tokenizer.json` pads every text to 128 word pieces and
    /// truncates at 128; both are overridden to sentence-transformers'
    /// behaviour: no padding, truncation at [`MAX_WORD_PIECES`].
    pub fn load(model_dir: &Path, threads: usize) -> Result<Embedder, EmbedError> {
        Embedder::load_with_precision(model_dir, threads, Precision::default())
    }

    /// [`Embedder::load`] with the products computed at `precision`
    /// (`Auto` is resolved for this CPU here).
    pub fn load_with_precision(
        model_dir: &Path,
        threads: usize,
        precision: Precision,
    ) -> Result<Embedder, EmbedError> {
        let precision = precision.resolve();
        let tokenizer_path = model_dir.join("tokenizer.json");
        if !tokenizer_path.is_file() {
            return Err(EmbedError::Io {
                path: tokenizer_path,
                source: std::io::ErrorKind::NotFound.into(),
            });
        }
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| EmbedError::Tokenizer(format!("{}: {e}", tokenizer_path.display())))?;
        tokenizer.with_padding(None::<PaddingParams>);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_WORD_PIECES,
                ..TruncationParams::default()
            }))
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        let encoder = Encoder::load(&model_dir.join("model.safetensors"), precision)?;
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        let pool = build_pool(threads)?;
        Ok(Embedder {
            tokenizer,
            encoder,
            pool,
            threads,
            precision,
        })
    }

    /// The precision the encoder runs at (never `Auto`).
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The embedding width: 384.
    pub fn dim(&self) -> usize {
        HIDDEN
    }

    /// Threads of the embedder's pool.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Word pieces the model sees for `text`: `[CLS]`, the text's pieces up
    /// to the truncation limit, `[SEP]` (so 2 for an empty text, at most
    /// [`MAX_WORD_PIECES`]).
    pub fn count_tokens(&self, text: &str) -> Result<usize, EmbedError> {
        Ok(self.tokenize(text)?.len())
    }

    /// Embeds `texts`, returning one L2-normalised 384-dim vector per text,
    /// in order. Texts are truncated at [`MAX_WORD_PIECES`] word pieces (not
    /// an error); the empty text has an embedding too (that of `[CLS] [SEP]`).
    /// The batch is spread over the pool's threads; a text's vector does not
    /// depend on the other texts of the batch.
    pub fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let ids = self.pool.install(|| {
            texts
                .par_iter()
                .map(|t| self.tokenize(t))
                .collect::<Result<Vec<_>, _>>()
        })?;
        Ok(self.embed_ids(&ids))
    }

    /// Like [`Self::embed_batch`], with one result per text: a text the
    /// tokenizer rejects fails alone.
    pub(crate) fn embed_each(&self, texts: &[&str]) -> Vec<Result<Vec<f32>, EmbedError>> {
        let mut tokenized: Vec<Result<Vec<u32>, EmbedError>> = self
            .pool
            .install(|| texts.par_iter().map(|t| self.tokenize(t)).collect());
        let ids: Vec<Vec<u32>> = tokenized
            .iter_mut()
            .filter_map(|r| r.as_mut().ok().map(std::mem::take))
            .collect();
        let mut vectors = self.embed_ids(&ids).into_iter();
        tokenized
            .into_iter()
            .map(|r| r.map(|_| vectors.next().unwrap_or_default()))
            .collect()
    }

    /// Runs `job` on the embedder's pool and returns at once. A job that
    /// panics aborts the process (rayon's default for detached jobs), so
    /// callers catch their own panics.
    pub(crate) fn spawn(&self, job: impl FnOnce() + Send + 'static) {
        self.pool.spawn(job);
    }

    /// The same embedder with a pool of `threads` threads (unchanged if the
    /// pool cannot be built).
    pub(crate) fn with_threads(mut self, threads: usize) -> Embedder {
        if let Ok(pool) = build_pool(threads) {
            self.pool = pool;
            self.threads = threads;
        }
        self
    }

    /// Embeds already-tokenized texts on the pool (see [`Self::embed_batch`]).
    pub(crate) fn embed_ids(&self, ids: &[Vec<u32>]) -> Vec<Vec<f32>> {
        let chunks = chunk_by_length(ids, self.threads);
        let par = if chunks.len() == 1 && self.threads > 1 {
            // A single chunk (one text, or a few short ones) would leave
            // threads idle: split its matrix products instead.
            Parallelism::Rayon(self.threads)
        } else {
            Parallelism::None
        };
        let embedded: Vec<Vec<(usize, Vec<f32>)>> = self.pool.install(|| {
            chunks
                .par_iter()
                .map(|chunk| {
                    let seqs: Vec<&[u32]> = chunk.iter().map(|&i| ids[i].as_slice()).collect();
                    chunk
                        .iter()
                        .copied()
                        .zip(self.encoder.embed(&seqs, par))
                        .collect()
                })
                .collect()
        });
        let mut out = vec![Vec::new(); ids.len()];
        for (i, v) in embedded.into_iter().flatten() {
            out[i] = v;
        }
        out
    }

    /// Tokenizes one text: `[CLS]`, word pieces, `[SEP]`, truncated.
    pub(crate) fn tokenize(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }
}

fn build_pool(threads: usize) -> Result<rayon::ThreadPool, EmbedError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("kyro-embed-{i}"))
        .build()
        .map_err(|e| EmbedError::Threads(e.to_string()))
}

/// Splits a batch into forward passes: texts sorted by length (similar
/// lengths share a pass, so attention and scratch sizes stay even), cut into
/// a multiple of `threads` passes of at most about [`CHUNK_TOKENS`] word
/// pieces, with equal shares of the word pieces (cuts at the cumulative
/// shares, so that no pass is left small at the end and every thread gets
/// the same work: 32 texts of 43 pieces on 2 threads were cut 512 / 512 /
/// 352, leaving a thread idle for a third of the batch). Returns indices
/// into `ids`.
fn chunk_by_length(ids: &[Vec<u32>], threads: usize) -> Vec<Vec<usize>> {
    let threads = threads.max(1);
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&i| ids[i].len());
    let total: usize = ids.iter().map(Vec::len).sum();
    let passes = threads * total.div_ceil(threads * CHUNK_TOKENS).max(1);
    let mut chunks = Vec::with_capacity(passes);
    let mut current = Vec::new();
    let mut cumulative = 0;
    for i in order {
        let len = ids[i].len();
        // The k-th cut goes at the text boundary nearest to k/passes of
        // the word pieces: before this text if its middle lies past it.
        let cut = total * (chunks.len() + 1);
        if !current.is_empty()
            && chunks.len() + 1 < passes
            && (2 * cumulative + len) * passes > 2 * cut
        {
            chunks.push(std::mem::take(&mut current));
        }
        current.push(i);
        cumulative += len;
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lengths(ids: &[Vec<u32>], chunks: &[Vec<usize>]) -> Vec<usize> {
        chunks
            .iter()
            .map(|c| c.iter().map(|&i| ids[i].len()).sum())
            .collect()
    }

    #[test]
    fn passes_cover_every_text_once_in_equal_shares_per_thread() {
        let ids: Vec<Vec<u32>> = (0..32).map(|i| vec![0; 40 + i % 7]).collect();
        for threads in [1, 2, 3, 4] {
            let chunks = chunk_by_length(&ids, threads);
            let mut seen: Vec<usize> = chunks.iter().flatten().copied().collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..32).collect::<Vec<_>>(), "{threads} threads");
            assert_eq!(chunks.len() % threads, 0, "{threads} threads: {chunks:?}");
            // Each pass is within one text (≤ 46 pieces) of an equal share.
            let sizes = lengths(&ids, &chunks);
            let total: usize = sizes.iter().sum();
            let share = total / chunks.len();
            assert!(
                sizes.iter().all(|&n| n.abs_diff(share) <= 46),
                "{threads} threads: {sizes:?}"
            );
            assert!(share <= CHUNK_TOKENS, "{threads} threads: {sizes:?}");
        }
    }

    #[test]
    fn short_batches_make_fewer_passes() {
        let one = vec![vec![0u32; 12]];
        assert_eq!(chunk_by_length(&one, 2), vec![vec![0]]);
        let two = vec![vec![0u32; 5], vec![0u32; 9]];
        assert_eq!(chunk_by_length(&two, 2).len(), 2);
        assert!(chunk_by_length(&[], 2).is_empty());
    }
}
