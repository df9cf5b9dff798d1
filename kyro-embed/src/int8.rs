//! Int8 matrix products for the encoder's linear layers.
//!
//! Weights are quantised once, at load, per output column (symmetric, `i8`
//! in −127..=127, one `f32` scale per column). Activations are quantised per
//! row at run time (symmetric scale, stored as `u8` with zero point 128), so
//! that a row's scale follows its own range. The product of a `u8` row and an
//! `i8` column is exact in `i32`; the zero point comes back out through each
//! column's sum of quantised weights:
//!
//! `y[r][n] = sx[r] · sw[n] · (Σk qx[r][k] · qw[k][n] − 128 · Σk qw[k][n])`.
//!
//! MiniLM's hidden states carry a few *outlier* features (one dimension of
//! the LayerNorm outputs reaches 6–30 where the median is 0.02–0.1, and each
//! feed-forward block has one or two such units). Scaled into a row's 8 bits
//! they would round every ordinary value to zero, so, as in LLM.int8(),
//! values beyond [`OUTLIER`] are taken out of the int8 product and multiplied
//! in `f32` against their weight rows (one or two per token: a negligible
//! share of the work). The choice is per value, so a text's vector does not
//! depend on the batch it is in.
//!
//! The products run on AVX-512 VNNI (`vpdpbusd`: 64 `u8 × i8` multiply-adds
//! per instruction, four times an `f32` FMA's 16) when the CPU has it, and on
//! a portable scalar loop (same integers, same result, far slower) when not;
//! [`crate::Precision::Auto`] picks int8 only where VNNI is present.

use std::cell::Cell;

use rayon::prelude::*;

/// Columns per block: four 512-bit accumulators of sixteen `i32`.
const BLOCK_COLS: usize = 64;
/// Rows per micro-kernel call (6 × 4 accumulators, 4 weight registers and a
/// broadcast: 29 of the 32 vector registers).
const TILE_ROWS: usize = 6;
/// Rows per parallel task when a product is split across threads.
const TASK_ROWS: usize = 16;
/// Inputs larger than this in magnitude are multiplied in `f32` (LLM.int8()'s
/// threshold; MiniLM's ordinary activations stay below ~5).
const OUTLIER: f32 = 6.0;

/// Whether this CPU runs the VNNI kernel.
pub fn vnni_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Activation rows quantised for [`QuantMatrix`]: `u8` values with zero
/// point 128 and a symmetric scale per row, computed without the outliers
/// (values beyond [`OUTLIER`], quantised to zero and listed apart).
#[derive(Default)]
struct QuantizedRows {
    q: Vec<u8>,
    scales: Vec<f32>,
    /// `(row, input, value)` of every outlier.
    outliers: Vec<(usize, usize, f32)>,
}

thread_local! {
    /// Each thread's rows of the last product it ran, whose buffers the
    /// next one reuses (see `encoder::PassBuffers` for why).
    static QUANTIZED_ROWS: Cell<QuantizedRows> = Cell::default();
}

impl QuantizedRows {
    /// Quantises the `width`-wide rows of `x`.
    #[cfg(test)]
    fn of(x: &[f32], width: usize) -> QuantizedRows {
        let mut quantized = QuantizedRows::default();
        quantized.fill(x, width);
        quantized
    }

    /// Quantises the `width`-wide rows of `x` into these buffers.
    fn fill(&mut self, x: &[f32], width: usize) {
        let rows = x.len() / width;
        self.q.clear();
        self.q.resize(x.len(), 0);
        self.scales.clear();
        self.scales.resize(rows, 0.0);
        self.outliers.clear();
        #[cfg(target_arch = "x86_64")]
        if vnni_available() && width.is_multiple_of(16) {
            for (row, (x, q)) in x
                .chunks_exact(width)
                .zip(self.q.chunks_exact_mut(width))
                .enumerate()
            {
                // SAFETY: AVX-512 F and BW are present (vnni_available checks
                // them); the row's width is a multiple of 16 (checked) and
                // `q` is as long as `x`.
                self.scales[row] = unsafe { quantize_row_avx512(x, q, row, &mut self.outliers) };
            }
            return;
        }
        crate::kernels::quantize_rows(x, width, OUTLIER, &mut self.q, &mut self.scales);
        for (row, x) in x.chunks_exact(width).enumerate() {
            for (k, &v) in x.iter().enumerate() {
                if v.abs() > OUTLIER {
                    self.outliers.push((row, k, v));
                }
            }
        }
    }
}

/// One row of [`QuantizedRows::of`] on AVX-512 (the same values as
/// `kernels::quantize_rows`, except that halves round to even): returns the
/// row's scale and appends its outliers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn quantize_row_avx512(
    x: &[f32],
    q: &mut [u8],
    row: usize,
    outliers: &mut Vec<(usize, usize, f32)>,
) -> f32 {
    use std::arch::x86_64::*;
    debug_assert!(x.len().is_multiple_of(16) && q.len() == x.len());
    let limit = _mm512_set1_ps(OUTLIER);
    let mut max = _mm512_setzero_ps();
    for (start, chunk) in x.chunks_exact(16).enumerate() {
        // SAFETY: a 16-float chunk, loaded unaligned.
        let v = unsafe { _mm512_loadu_ps(chunk.as_ptr()) };
        let magnitude = _mm512_abs_ps(v);
        let inlier = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(magnitude, limit);
        if inlier != 0xffff {
            for (lane, &value) in chunk.iter().enumerate() {
                if inlier & (1 << lane) == 0 {
                    outliers.push((row, start * 16 + lane, value));
                }
            }
        }
        max = _mm512_mask_max_ps(max, inlier, max, magnitude);
    }
    let max = _mm512_reduce_max_ps(max);
    let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
    let inverse = _mm512_set1_ps(1.0 / scale);
    let zero_point = _mm512_set1_ps(128.0);
    for (chunk, q) in x.chunks_exact(16).zip(q.chunks_exact_mut(16)) {
        // SAFETY: 16 floats in, 16 bytes out, unaligned.
        unsafe {
            let v = _mm512_loadu_ps(chunk.as_ptr());
            let inlier = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(_mm512_abs_ps(v), limit);
            let scaled = _mm512_maskz_fmadd_ps(inlier, v, inverse, zero_point);
            // Outliers (zeroed by the mask) get the zero point.
            let scaled = _mm512_mask_blend_ps(inlier, zero_point, scaled);
            let ints = _mm512_cvtps_epi32(scaled);
            _mm_storeu_si128(q.as_mut_ptr().cast(), _mm512_cvtusepi32_epi8(ints));
        }
    }
    scale
}

/// A weight matrix `[inputs, outputs]` quantised to `i8` per output column
/// and packed for the kernel: column blocks of [`BLOCK_COLS`], inside a block
/// groups of four consecutive inputs, inside a group the block's columns,
/// each holding its four inputs' bytes side by side (what `vpdpbusd` reads).
pub struct QuantMatrix {
    packed: Vec<i8>,
    /// The `f32` weights, `[inputs, outputs]`: the rows of outlier inputs.
    weights: Vec<f32>,
    /// Per output column: the dequantisation scale.
    scales: Vec<f32>,
    /// Per output column: 128 × the sum of its quantised weights (the zero
    /// point's contribution, subtracted from every accumulator).
    zero_point_sums: Vec<i32>,
    inputs: usize,
    outputs: usize,
}

impl QuantMatrix {
    /// Quantises `w` (`[inputs, outputs]`, row-major), which it keeps for
    /// the outliers' `f32` products. Gives `w` back when the shape does not
    /// fit the kernel (inputs a multiple of 4, outputs of 64; all of
    /// MiniLM's layers do).
    pub fn quantize(w: Vec<f32>, inputs: usize, outputs: usize) -> Result<QuantMatrix, Vec<f32>> {
        if !inputs.is_multiple_of(4)
            || !outputs.is_multiple_of(BLOCK_COLS)
            || w.len() != inputs * outputs
        {
            return Err(w);
        }
        let mut scales = vec![0.0f32; outputs];
        for row in w.chunks_exact(outputs) {
            for (s, v) in scales.iter_mut().zip(row) {
                *s = s.max(v.abs());
            }
        }
        for s in &mut scales {
            *s = if *s > 0.0 { *s / 127.0 } else { 1.0 };
        }
        let quantized = |k: usize, n: usize| -> i8 {
            (w[k * outputs + n] / scales[n])
                .round()
                .clamp(-127.0, 127.0) as i8
        };
        let mut zero_point_sums = vec![0i32; outputs];
        let mut packed = Vec::with_capacity(inputs * outputs);
        for block in (0..outputs).step_by(BLOCK_COLS) {
            for group in (0..inputs).step_by(4) {
                let sums = &mut zero_point_sums[block..block + BLOCK_COLS];
                for (n, sum) in (block..).zip(sums) {
                    for k in group..group + 4 {
                        let q = quantized(k, n);
                        *sum += 128 * i32::from(q);
                        packed.push(q);
                    }
                }
            }
        }
        Ok(QuantMatrix {
            packed,
            weights: w,
            scales,
            zero_point_sums,
            inputs,
            outputs,
        })
    }

    /// `out += x · W` for `rows` rows of `x` (`rows × inputs`, row-major;
    /// `out` is `rows × outputs`), with `x` quantised per row on the way.
    /// `threads > 1` splits the rows across the current rayon pool.
    pub fn accumulate(&self, x: &[f32], rows: usize, out: &mut [f32], threads: usize) {
        assert_eq!(x.len(), rows * self.inputs, "x is rows × inputs");
        assert_eq!(out.len(), rows * self.outputs, "out is rows × outputs");
        let task_rows = if threads > 1 {
            TASK_ROWS.min(rows.div_ceil(threads)).max(1)
        } else {
            rows.max(1)
        };
        let run = |(x, out): (&[f32], &mut [f32])| {
            let mut rows = QUANTIZED_ROWS.take();
            rows.fill(x, self.inputs);
            self.product(&rows.q, &rows.scales, out);
            for &(row, k, v) in &rows.outliers {
                let weights = &self.weights[k * self.outputs..][..self.outputs];
                crate::kernels::add_scaled(
                    &mut out[row * self.outputs..][..self.outputs],
                    v,
                    weights,
                );
            }
            QUANTIZED_ROWS.set(rows);
        };
        let (x_rows, out_rows) = (task_rows * self.inputs, task_rows * self.outputs);
        if threads > 1 {
            x.par_chunks(x_rows)
                .zip(out.par_chunks_mut(out_rows))
                .for_each(run);
        } else {
            x.chunks(x_rows).zip(out.chunks_mut(out_rows)).for_each(run);
        }
    }

    /// `out += dequantised(qx · W)` on already quantised rows.
    fn product(&self, qx: &[u8], row_scales: &[f32], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if vnni_available() {
            // SAFETY: the CPU has AVX-512 F, BW and VNNI (checked just
            // above), the target features of `product_vnni`; the slices'
            // lengths were checked by `accumulate` (qx is rows × inputs, out
            // rows × outputs, one scale per row).
            unsafe { self.product_vnni(qx, row_scales, out) };
            return;
        }
        self.product_scalar(qx, row_scales, out);
    }

    /// The reference the VNNI kernel must equal: the same integer sums.
    fn product_scalar(&self, qx: &[u8], row_scales: &[f32], out: &mut [f32]) {
        let (k_len, n_len) = (self.inputs, self.outputs);
        let mut acc = vec![0i32; n_len];
        for ((x, &sx), out) in qx
            .chunks_exact(k_len)
            .zip(row_scales)
            .zip(out.chunks_exact_mut(n_len))
        {
            acc.fill(0);
            for (block_index, block) in self.packed.chunks_exact(k_len * BLOCK_COLS).enumerate() {
                let acc = &mut acc[block_index * BLOCK_COLS..][..BLOCK_COLS];
                for (group, weights) in block.chunks_exact(4 * BLOCK_COLS).enumerate() {
                    let xs = &x[group * 4..group * 4 + 4];
                    for (a, w) in acc.iter_mut().zip(weights.chunks_exact(4)) {
                        *a += xs
                            .iter()
                            .zip(w)
                            .map(|(&xv, &wv)| i32::from(xv) * i32::from(wv))
                            .sum::<i32>();
                    }
                }
            }
            for n in 0..n_len {
                let exact = acc[n] - self.zero_point_sums[n];
                out[n] += exact as f32 * (sx * self.scales[n]);
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn product_vnni(&self, qx: &[u8], row_scales: &[f32], out: &mut [f32]) {
        let rows = row_scales.len();
        // Column blocks outside, rows inside: a block's weights (24 KiB for
        // 384 inputs) stay in L1 while every row passes over them.
        for block in (0..self.outputs).step_by(BLOCK_COLS) {
            let mut row = 0;
            while row < rows {
                let tile = (rows - row).min(TILE_ROWS);
                // SAFETY: rows row..row+tile exist in qx/out/row_scales and
                // the block's 64 columns exist in out and the packed weights
                // (outputs is a multiple of 64); the features are enabled.
                unsafe {
                    match tile {
                        6 => self.tile_vnni::<6>(qx, row_scales, out, row, block),
                        5 => self.tile_vnni::<5>(qx, row_scales, out, row, block),
                        4 => self.tile_vnni::<4>(qx, row_scales, out, row, block),
                        3 => self.tile_vnni::<3>(qx, row_scales, out, row, block),
                        2 => self.tile_vnni::<2>(qx, row_scales, out, row, block),
                        _ => self.tile_vnni::<1>(qx, row_scales, out, row, block),
                    }
                }
                row += tile;
            }
        }
    }

    /// `MR` rows × one 64-column block, over all inputs.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[inline]
    unsafe fn tile_vnni<const MR: usize>(
        &self,
        qx: &[u8],
        row_scales: &[f32],
        out: &mut [f32],
        row: usize,
        block: usize,
    ) {
        use std::arch::x86_64::*;
        let (k_len, n_len) = (self.inputs, self.outputs);
        debug_assert!((row + MR) * k_len <= qx.len() && block + BLOCK_COLS <= n_len);
        let weights = self.packed[block * k_len..][..k_len * BLOCK_COLS].as_ptr();
        let x = qx[row * k_len..][..MR * k_len].as_ptr();
        let mut acc = [[_mm512_setzero_si512(); 4]; MR];
        for group in 0..k_len / 4 {
            // SAFETY: group < inputs / 4, so the 256 bytes of this group's
            // weights lie inside the block (inputs × 64 bytes), and the four
            // bytes of each row at group × 4 inside that row of qx.
            unsafe {
                let w = weights.add(group * 4 * BLOCK_COLS);
                let w0 = _mm512_loadu_si512(w.cast());
                let w1 = _mm512_loadu_si512(w.add(64).cast());
                let w2 = _mm512_loadu_si512(w.add(128).cast());
                let w3 = _mm512_loadu_si512(w.add(192).cast());
                for (r, acc) in acc.iter_mut().enumerate() {
                    let four = x.add(r * k_len + group * 4).cast::<i32>().read_unaligned();
                    let a = _mm512_set1_epi32(four);
                    acc[0] = _mm512_dpbusd_epi32(acc[0], a, w0);
                    acc[1] = _mm512_dpbusd_epi32(acc[1], a, w1);
                    acc[2] = _mm512_dpbusd_epi32(acc[2], a, w2);
                    acc[3] = _mm512_dpbusd_epi32(acc[3], a, w3);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            let sx = _mm512_set1_ps(row_scales[row + r]);
            let out_row = &mut out[(row + r) * n_len + block..][..BLOCK_COLS];
            let sums = &self.zero_point_sums[block..][..BLOCK_COLS];
            let scales = &self.scales[block..][..BLOCK_COLS];
            for (part, &a) in acc.iter().enumerate() {
                let lanes = part * 16..part * 16 + 16;
                // SAFETY: each range is 16 elements inside a 64-element
                // slice; unaligned loads and stores.
                unsafe {
                    let exact = _mm512_sub_epi32(
                        a,
                        _mm512_loadu_si512(sums[lanes.clone()].as_ptr().cast()),
                    );
                    let scale = _mm512_mul_ps(sx, _mm512_loadu_ps(scales[lanes.clone()].as_ptr()));
                    let o = out_row[lanes].as_mut_ptr();
                    let sum = _mm512_fmadd_ps(_mm512_cvtepi32_ps(exact), scale, _mm512_loadu_ps(o));
                    _mm512_storeu_ps(o, sum);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn cosine(a: &[f32], b: &[f32]) -> f64 {
        let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
        for (x, y) in a.iter().zip(b) {
            dot += f64::from(*x) * f64::from(*y);
            na += f64::from(*x) * f64::from(*x);
            nb += f64::from(*y) * f64::from(*y);
        }
        dot / (na.sqrt() * nb.sqrt())
    }

    fn f32_product(x: &[f32], w: &[f32], rows: usize, inputs: usize, outputs: usize) -> Vec<f32> {
        let mut out = vec![0.0f32; rows * outputs];
        for r in 0..rows {
            for k in 0..inputs {
                for n in 0..outputs {
                    out[r * outputs + n] += x[r * inputs + k] * w[k * outputs + n];
                }
            }
        }
        out
    }

    #[test]
    fn outlier_inputs_are_multiplied_in_f32() {
        // One huge input per row, as MiniLM's LayerNorm outputs have: with it
        // inside the row's 8 bits the small values would all round to zero.
        let (rows, inputs, outputs) = (5, 384, 64);
        let mut x: Vec<f32> = random(rows * inputs, 3).iter().map(|v| v * 0.05).collect();
        for r in 0..rows {
            x[r * inputs + 99] = 25.0 + r as f32;
        }
        let w = random(inputs * outputs, 4);
        let mut want = f32_product(&x, &w, rows, inputs, outputs);
        let mut got = vec![0.0f32; rows * outputs];
        let q =
            QuantMatrix::quantize(w.clone(), inputs, outputs).unwrap_or_else(|_| panic!("fits"));
        q.accumulate(&x, rows, &mut got, 1);
        // Compare what the small values contribute: the outlier's product is
        // exact in f32, so subtract it from both.
        for r in 0..rows {
            for n in 0..outputs {
                let outlier = x[r * inputs + 99] * w[99 * outputs + n];
                want[r * outputs + n] -= outlier;
                got[r * outputs + n] -= outlier;
            }
        }
        let cosine = cosine(&got, &want);
        assert!(cosine > 0.999, "cosine of the ordinary part {cosine}");
    }

    #[test]
    fn the_avx512_quantiser_agrees_with_the_portable_one() {
        let width = 384;
        let mut x = random(6 * width, 5);
        x[99] = 28.0;
        x[width + 7] = -9.5;
        x[3 * width + 200] = 6.5;
        let fast = QuantizedRows::of(&x, width);
        let mut q = vec![0u8; x.len()];
        let mut scales = vec![0.0f32; 6];
        crate::kernels::quantize_rows(&x, width, OUTLIER, &mut q, &mut scales);
        assert_eq!(fast.scales, scales);
        for (i, (a, b)) in fast.q.iter().zip(&q).enumerate() {
            // Halves round to even on one side, up on the other.
            assert!(a.abs_diff(*b) <= 1, "value {i}: {a} vs {b}");
        }
        assert_eq!(q[99], 128, "an outlier is quantised to zero");
        assert_eq!(
            fast.outliers,
            vec![(0, 99, 28.0), (1, 7, -9.5), (3, 200, 6.5)]
        );
    }

    #[test]
    fn shapes_the_kernel_cannot_take_are_refused() {
        assert!(QuantMatrix::quantize(vec![0.0; 6 * 64], 6, 64).is_err());
        assert!(QuantMatrix::quantize(vec![0.0; 8 * 48], 8, 48).is_err());
        assert!(QuantMatrix::quantize(vec![0.0; 8 * 64], 8, 64).is_ok());
    }

    #[test]
    fn int8_product_is_close_to_the_f32_product() {
        let (rows, inputs, outputs) = (7, 384, 128);
        let x = random(rows * inputs, 1);
        let w = random(inputs * outputs, 2);
        let want = f32_product(&x, &w, rows, inputs, outputs);
        let q =
            QuantMatrix::quantize(w.clone(), inputs, outputs).unwrap_or_else(|_| panic!("fits"));
        let mut got = vec![0.0f32; rows * outputs];
        q.accumulate(&x, rows, &mut got, 1);
        let cosine = cosine(&got, &want);
        assert!(cosine > 0.9998, "cosine {cosine}");
    }

    #[test]
    fn every_kernel_the_cpu_has_equals_the_scalar_reference() {
        // Row counts that exercise every tile height and the tails.
        for rows in [1, 2, 3, 4, 5, 9, 17] {
            let (inputs, outputs) = (96, 192);
            let x = random(rows * inputs, 10 + rows as u64);
            let w = random(inputs * outputs, 20 + rows as u64);
            let q = QuantMatrix::quantize(w.clone(), inputs, outputs)
                .unwrap_or_else(|_| panic!("fits"));
            let QuantizedRows {
                q: qx,
                scales,
                outliers: _,
            } = QuantizedRows::of(&x, inputs);
            let mut reference = vec![0.5f32; rows * outputs];
            q.product_scalar(&qx, &scales, &mut reference);
            #[cfg(target_arch = "x86_64")]
            if vnni_available() {
                let mut vnni = vec![0.5f32; rows * outputs];
                // SAFETY: VNNI is present (checked); shapes as in `product`.
                unsafe { q.product_vnni(&qx, &scales, &mut vnni) };
                for (a, b) in vnni.iter().zip(&reference) {
                    // Same integers; only the final f32 multiply-add may
                    // round differently (FMA versus multiply then add).
                    assert!(
                        (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                        "{a} vs {b} at {rows} rows"
                    );
                }
            } else {
                eprintln!("no AVX-512 VNNI on this CPU: only the scalar kernel ran");
            }
            // Split across threads, the same sums.
            let mut split = vec![0.5f32; rows * outputs];
            rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .unwrap()
                .install(|| q.accumulate(&x, rows, &mut split, 2));
            let mut whole = vec![0.5f32; rows * outputs];
            q.accumulate(&x, rows, &mut whole, 1);
            assert_eq!(split, whole, "{rows} rows");
        }
    }
}
