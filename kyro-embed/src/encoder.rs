//! The BERT encoder of all-MiniLM-L6-v2 and its forward pass: `f32`
//! throughout, or with the linear layers' products in int8 (see
//! [`crate::int8`]); attention, GELU and LayerNorm stay `f32` either way.
//!
//! A batch is *ragged*: the word pieces of all its texts are stacked into one
//! `[tokens, 384]` matrix with no padding, so every matrix product works on
//! exactly the tokens that exist, whatever the mix of lengths. Only attention
//! looks across tokens, and it runs per text. The result is the same as a
//! padded batch with an attention mask (padded keys get zero weight there),
//! without computing the padding.

use std::cell::Cell;
use std::path::Path;

use gemm::Parallelism;

use crate::int8::QuantMatrix;
use crate::kernels;
use crate::weights::SafeTensors;
use crate::{EmbedError, Precision};

/// Width of the hidden state (and of the output embedding).
pub(crate) const HIDDEN: usize = 384;
// Attention heads per layer: 12 of `kernels::HEAD_DIM` (32).
const _: () = assert!(HIDDEN == 12 * kernels::HEAD_DIM);
/// Width of the feed-forward block.
const FFN: usize = 1536;
/// Encoder layers.
const LAYERS: usize = 6;
/// Learned positions, hence the longest sequence the model accepts.
pub(crate) const MAX_POSITIONS: usize = 512;
/// Word pieces in the vocabulary.
const VOCAB: usize = 30522;
/// BERT's LayerNorm epsilon.
const LN_EPS: f32 = 1e-12;

/// `y = x · W + b` with `W` stored `[inputs, outputs]` row-major (PyTorch
/// stores `[outputs, inputs]`; it is transposed once at load so that the
/// product reads it row by row).
struct Linear {
    /// `W` in `f32`; empty once quantised.
    w: Vec<f32>,
    /// `W` quantised, when the encoder runs its products in int8.
    quantized: Option<QuantMatrix>,
    b: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

impl Linear {
    /// Reads `{prefix}.weight` (`[outputs, inputs]`) and `{prefix}.bias`.
    fn read(
        st: &mut SafeTensors,
        prefix: &str,
        inputs: usize,
        outputs: usize,
    ) -> Result<Linear, EmbedError> {
        let w = st.take(&format!("{prefix}.weight"), &[outputs, inputs])?;
        let b = st.take(&format!("{prefix}.bias"), &[outputs])?;
        Ok(Linear {
            w: transpose(&w, outputs, inputs),
            quantized: None,
            b,
            inputs,
            outputs,
        })
    }

    /// Switches the layer's products to int8 (the `f32` weights move into
    /// the quantised matrix, whose outlier inputs use them).
    fn quantize(&mut self) {
        match QuantMatrix::quantize(std::mem::take(&mut self.w), self.inputs, self.outputs) {
            Ok(q) => self.quantized = Some(q),
            Err(w) => self.w = w,
        }
    }

    /// Stacks several layers reading the same input into one wider layer
    /// (query, key and value become one product).
    fn concat(parts: &[Linear]) -> Linear {
        let inputs = parts[0].inputs;
        let outputs = parts.iter().map(|p| p.outputs).sum();
        let mut w = Vec::with_capacity(inputs * outputs);
        for row in 0..inputs {
            for p in parts {
                w.extend_from_slice(&p.w[row * p.outputs..(row + 1) * p.outputs]);
            }
        }
        let b = parts.iter().flat_map(|p| p.b.iter().copied()).collect();
        Linear {
            w,
            quantized: None,
            b,
            inputs,
            outputs,
        }
    }

    /// `out = x · W + b` (or `out += x · W + b` when `accumulate`), `x` being
    /// `rows × inputs` and `out` `rows × outputs`, both row-major.
    fn forward(&self, x: &[f32], rows: usize, out: &mut [f32], accumulate: bool, par: Parallelism) {
        debug_assert_eq!(x.len(), rows * self.inputs);
        debug_assert_eq!(out.len(), rows * self.outputs);
        if !accumulate {
            for row in out.chunks_exact_mut(self.outputs) {
                row.copy_from_slice(&self.b);
            }
        }
        match &self.quantized {
            Some(q) => {
                let threads = match par {
                    Parallelism::Rayon(n) => n,
                    _ => 1,
                };
                q.accumulate(x, rows, out, threads);
            }
            None => self.accumulate_f32(x, rows, out, par),
        }
        if accumulate {
            for row in out.chunks_exact_mut(self.outputs) {
                kernels::add_assign(row, &self.b);
            }
        }
    }

    /// `out += x · W` with the `f32` weights, on the `gemm` crate.
    fn accumulate_f32(&self, x: &[f32], rows: usize, out: &mut [f32], par: Parallelism) {
        debug_assert_eq!(self.w.len(), self.inputs * self.outputs);
        // SAFETY: the pointers come from slices whose lengths were checked
        // in `forward` against the dimensions passed (rows × inputs, inputs ×
        // outputs, rows × outputs, all row-major: column stride 1, row
        // stride the width); `out` does not alias `x` or the weights since it
        // is borrowed mutably.
        unsafe {
            gemm::gemm(
                rows,
                self.outputs,
                self.inputs,
                out.as_mut_ptr(),
                1,
                self.outputs as isize,
                true,
                x.as_ptr(),
                1,
                self.inputs as isize,
                self.w.as_ptr(),
                1,
                self.outputs as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                par,
            );
        }
    }
}

/// LayerNorm's scale and shift.
struct LayerNorm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

impl LayerNorm {
    fn read(st: &mut SafeTensors, prefix: &str) -> Result<LayerNorm, EmbedError> {
        Ok(LayerNorm {
            gamma: st.take(&format!("{prefix}.weight"), &[HIDDEN])?,
            beta: st.take(&format!("{prefix}.bias"), &[HIDDEN])?,
        })
    }

    fn apply(&self, x: &mut [f32]) {
        kernels::layer_norm_rows(x, &self.gamma, &self.beta, LN_EPS);
    }
}

/// One transformer layer (post-LayerNorm, as BERT).
struct Layer {
    qkv: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    ffn_in: Linear,
    ffn_out: Linear,
    output_norm: LayerNorm,
}

/// The whole encoder: embeddings and six layers.
pub(crate) struct Encoder {
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
}

fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; m.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = m[r * cols + c];
        }
    }
    t
}

impl Encoder {
    /// Loads the weights of `model.safetensors`; fails unless they have
    /// all-MiniLM-L6-v2's shapes. With [`Precision::Int8`] the linear
    /// layers' weights are quantised on the way.
    pub(crate) fn load(path: &Path, precision: Precision) -> Result<Encoder, EmbedError> {
        let mut st = SafeTensors::read(path)?;
        let word = st.take("embeddings.word_embeddings.weight", &[VOCAB, HIDDEN])?;
        let position = st.take(
            "embeddings.position_embeddings.weight",
            &[MAX_POSITIONS, HIDDEN],
        )?;
        let token_types = st.take("embeddings.token_type_embeddings.weight", &[2, HIDDEN])?;
        let embedding_norm = LayerNorm::read(&mut st, "embeddings.LayerNorm")?;
        let mut layers = Vec::with_capacity(LAYERS);
        for i in 0..LAYERS {
            let p = format!("encoder.layer.{i}");
            let q = Linear::read(
                &mut st,
                &format!("{p}.attention.self.query"),
                HIDDEN,
                HIDDEN,
            )?;
            let k = Linear::read(&mut st, &format!("{p}.attention.self.key"), HIDDEN, HIDDEN)?;
            let v = Linear::read(
                &mut st,
                &format!("{p}.attention.self.value"),
                HIDDEN,
                HIDDEN,
            )?;
            layers.push(Layer {
                qkv: Linear::concat(&[q, k, v]),
                attention_out: Linear::read(
                    &mut st,
                    &format!("{p}.attention.output.dense"),
                    HIDDEN,
                    HIDDEN,
                )?,
                attention_norm: LayerNorm::read(
                    &mut st,
                    &format!("{p}.attention.output.LayerNorm"),
                )?,
                ffn_in: Linear::read(&mut st, &format!("{p}.intermediate.dense"), HIDDEN, FFN)?,
                ffn_out: Linear::read(&mut st, &format!("{p}.output.dense"), FFN, HIDDEN)?,
                output_norm: LayerNorm::read(&mut st, &format!("{p}.output.LayerNorm"))?,
            });
        }
        if precision == Precision::Int8 {
            for layer in &mut layers {
                for linear in [
                    &mut layer.qkv,
                    &mut layer.attention_out,
                    &mut layer.ffn_in,
                    &mut layer.ffn_out,
                ] {
                    linear.quantize();
                }
            }
        }
        Ok(Encoder {
            word,
            position,
            // Single-segment input: every token has type 0.
            token_type: token_types[..HIDDEN].to_vec(),
            embedding_norm,
            layers,
        })
    }

    /// Encodes a ragged batch of word-piece sequences (each at most
    /// [`MAX_POSITIONS`] long, ids below the vocabulary size) and returns,
    /// per sequence, the mean of its last hidden states, L2-normalised.
    pub(crate) fn embed(&self, seqs: &[&[u32]], par: Parallelism) -> Vec<Vec<f32>> {
        let tokens: usize = seqs.iter().map(|s| s.len()).sum();
        if tokens == 0 {
            return seqs.iter().map(|_| vec![0.0; HIDDEN]).collect();
        }
        let mut buffers = PassBuffers::take(tokens, seqs);
        let PassBuffers {
            x,
            qkv,
            context,
            hidden,
            attention_scratch,
        } = &mut buffers;
        let positions = seqs.iter().flat_map(|seq| seq.iter().enumerate());
        for (row, (pos, &id)) in x.chunks_exact_mut(HIDDEN).zip(positions) {
            // Out-of-range ids and positions cannot come from the tokenizer
            // (its vocabulary is this one, truncation is below 512); clamping
            // keeps a bad input from reading out of bounds.
            let word = &self.word[(id as usize).min(VOCAB - 1) * HIDDEN..][..HIDDEN];
            let position = &self.position[pos.min(MAX_POSITIONS - 1) * HIDDEN..][..HIDDEN];
            for (((o, w), p), t) in row.iter_mut().zip(word).zip(position).zip(&self.token_type) {
                *o = w + p + t;
            }
        }
        self.embedding_norm.apply(x);

        let lengths: Vec<usize> = seqs.iter().map(|s| s.len()).collect();
        for layer in &self.layers {
            layer.qkv.forward(x, tokens, qkv, false, par);
            kernels::attention(qkv, &lengths, HIDDEN, context, attention_scratch);
            // Residual: x += context · W_o + b_o, then LayerNorm.
            layer.attention_out.forward(context, tokens, x, true, par);
            layer.attention_norm.apply(x);
            layer.ffn_in.forward(x, tokens, hidden, false, par);
            kernels::gelu(hidden);
            layer.ffn_out.forward(hidden, tokens, x, true, par);
            layer.output_norm.apply(x);
        }

        let mut out = Vec::with_capacity(seqs.len());
        let mut start = 0;
        for &len in &lengths {
            let mut pooled = vec![0.0f32; HIDDEN];
            for row in x[start * HIDDEN..(start + len) * HIDDEN].chunks_exact(HIDDEN) {
                kernels::add_assign(&mut pooled, row);
            }
            start += len;
            // The mean's division by `len` is left out: normalising cancels it.
            let norm = pooled.iter().map(|v| v * v).sum::<f32>().sqrt();
            // sentence-transformers divides by max(norm, 1e-12).
            let scale = 1.0 / norm.max(1e-12);
            pooled.iter_mut().for_each(|v| *v *= scale);
            out.push(pooled);
        }
        buffers.give_back();
        out
    }
}

/// The activations of one forward pass, kept by each thread between its
/// passes. Allocated anew for every pass, these few megabytes went back to
/// the allocator at its end and, once returned to the OS, had to be faulted
/// in and zeroed by the kernel again for the next pass: keeping them took
/// the gateway's share of CPU in that zeroing from 8.8 % to 5.1 % under
/// load (docs/benchmarks.md, "Pages the gateway zeroed for nothing").
/// What a thread keeps is bounded by the largest pass (`MAX_POSITIONS`
/// tokens at most per text, 512 per chunk).
#[derive(Default)]
struct PassBuffers {
    /// The hidden state, `[tokens, HIDDEN]`.
    x: Vec<f32>,
    /// Queries, keys and values, `[tokens, 3 × HIDDEN]`.
    qkv: Vec<f32>,
    /// Attention's output, `[tokens, HIDDEN]`.
    context: Vec<f32>,
    /// The feed-forward block's inner activations, `[tokens, FFN]`.
    hidden: Vec<f32>,
    /// Per-head scores and sums for the longest text.
    attention_scratch: Vec<f32>,
}

thread_local! {
    static PASS_BUFFERS: Cell<PassBuffers> = Cell::default();
}

impl PassBuffers {
    /// This thread's buffers, zeroed and sized for `tokens` word pieces of
    /// `seqs`. A pass that starts on a thread already inside one (rayon
    /// can run another batch's pass while a thread waits in a split
    /// product) finds none kept and allocates its own.
    fn take(tokens: usize, seqs: &[&[u32]]) -> PassBuffers {
        let mut buffers = PASS_BUFFERS.take();
        let longest = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
        for (buffer, len) in [
            (&mut buffers.x, tokens * HIDDEN),
            (&mut buffers.qkv, tokens * 3 * HIDDEN),
            (&mut buffers.context, tokens * HIDDEN),
            (&mut buffers.hidden, tokens * FFN),
            (
                &mut buffers.attention_scratch,
                (kernels::HEAD_DIM + 1) * longest,
            ),
        ] {
            buffer.clear();
            buffer.resize(len, 0.0);
        }
        buffers
    }

    /// Keeps the buffers for this thread's next pass.
    fn give_back(self) {
        PASS_BUFFERS.set(self);
    }
}
