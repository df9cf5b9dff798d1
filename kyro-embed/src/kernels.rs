//! The element-wise and attention kernels around the matrix products.
//!
//! Each public kernel is written once as plain Rust over slices, in a shape
//! the compiler vectorises (independent lanes, no cross-lane reductions in
//! the inner loop), and compiled twice: for the build's baseline target and
//! with AVX2+FMA, chosen at run time. The matrix products themselves are the
//! `gemm` crate's, which does its own run-time CPU detection.

/// Lanes accumulated independently in reductions, so that they vectorise.
const LANES: usize = 8;

/// Defines `pub(crate) fn $name` that runs `$body` compiled for AVX2+FMA when
/// the CPU has them, and for the baseline target otherwise.
macro_rules! multiversion {
    ($(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        pub(crate) fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) {
                    body($($arg),*)
                }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU has AVX2 and FMA (checked just above),
                    // the only requirement of a `target_feature` function.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (ac, bc) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[inline(always)]
fn sum(a: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = a.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for x in chunks {
        for l in 0..LANES {
            acc[l] += x[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `e^x`, Cephes' single-precision polynomial (relative error ~1e-7),
/// written without calls so that it vectorises. For `x ≤ 0` (softmax).
#[inline(always)]
#[allow(clippy::excessive_precision)] // Cephes' published coefficients
fn exp_nonpositive(x: f32) -> f32 {
    let x = x.clamp(-87.0, 0.0);
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut y = 1.987_569_1e-4f32;
    y = y * r + 1.398_199_9e-3;
    y = y * r + 8.333_452e-3;
    y = y * r + 4.166_579_6e-2;
    y = y * r + 1.666_666_5e-1;
    y = y * r + 5.000_000_1e-1;
    y = y * (r * r) + r + 1.0;
    y * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// `erf(x)`: the rational approximation of Eigen and TensorFlow (absolute
/// error below 1e-7 in `f32`), call-free so that it vectorises.
#[inline(always)]
#[allow(clippy::excessive_precision)] // Eigen's published coefficients
pub(crate) fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p + -2.101_024e-6;
    p = x2 * p + -5.692_506_4e-5;
    p = x2 * p + -7.349_906_3e-4;
    p = x2 * p + -2.954_600e-3;
    p = x2 * p + -1.609_603_3e-2;
    p *= x;
    let mut q = x2 * -1.456_607_2e-5 + -2.133_740_6e-4;
    q = x2 * q + -1.682_827e-3;
    q = x2 * q + -7.373_329e-3;
    q = x2 * q + -1.426_474e-2;
    p / q
}

multiversion! {
    /// `a += b`, element-wise.
    fn add_assign(a: &mut [f32], b: &[f32]) {
        for (x, y) in a.iter_mut().zip(b) {
            *x += y;
        }
    }
}

multiversion! {
    /// LayerNorm of every `gamma.len()`-wide row of `x`, in place.
    fn layer_norm_rows(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
        let width = gamma.len();
        for row in x.chunks_exact_mut(width) {
            let mean = sum(row) / width as f32;
            for v in row.iter_mut() {
                *v -= mean;
            }
            let var = dot(row, row) / width as f32;
            let scale = 1.0 / (var + eps).sqrt();
            for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
                *v = *v * scale * g + b;
            }
        }
    }
}

multiversion! {
    /// Quantises every `width`-wide row of `x` for the int8 products. Values
    /// larger in magnitude than `outlier` are left out (quantised to zero,
    /// the caller adds their products in `f32`); the rest get a symmetric
    /// scale per row (its largest magnitude maps to 127, written to
    /// `scales`) and are stored as `u8` with zero point 128 (1..=255) in `q`.
    fn quantize_rows(x: &[f32], width: usize, outlier: f32, q: &mut [u8], scales: &mut [f32]) {
        for ((row, q), scale) in x
            .chunks_exact(width)
            .zip(q.chunks_exact_mut(width))
            .zip(scales.iter_mut())
        {
            let inlier = |v: f32| if v.abs() > outlier { 0.0 } else { v };
            let mut max = [0.0f32; LANES];
            let chunks = row.chunks_exact(LANES);
            let tail = chunks
                .remainder()
                .iter()
                .fold(0.0f32, |m, &v| m.max(inlier(v).abs()));
            for c in chunks {
                for l in 0..LANES {
                    max[l] = max[l].max(inlier(c[l]).abs());
                }
            }
            let max = max.iter().fold(tail, |m, &v| m.max(v));
            *scale = if max > 0.0 { max / 127.0 } else { 1.0 };
            let inverse = 1.0 / *scale;
            for (q, &v) in q.iter_mut().zip(row) {
                // v / scale is in −127..=127; + 128.5 then truncation rounds
                // to nearest (halves up) inside 1..=255.
                *q = (inlier(v) * inverse + 128.5) as u8;
            }
        }
    }
}

multiversion! {
    /// `a += s · b`, element-wise.
    fn add_scaled(a: &mut [f32], s: f32, b: &[f32]) {
        for (x, y) in a.iter_mut().zip(b) {
            *x += s * y;
        }
    }
}

multiversion! {
    /// BERT's exact GELU, `x · (1 + erf(x / √2)) / 2`, in place.
    fn gelu(x: &mut [f32]) {
        for v in x.iter_mut() {
            *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
        }
    }
}

/// Width of one attention head (MiniLM: 384 / 12).
pub(crate) const HEAD_DIM: usize = 32;

multiversion! {
    /// Scaled dot-product attention of every head, per sequence. `qkv` holds
    /// each token's query, key and value side by side (`[tokens, 3 ×
    /// hidden]`, heads of [`HEAD_DIM`]); `context` receives the heads'
    /// outputs side by side (`[tokens, hidden]`); `scratch` is at least
    /// `(HEAD_DIM + 1) ×` the longest sequence. A head's keys are transposed
    /// into `scratch` first, so that a query's scores are computed for all
    /// keys at once (vectorised across keys rather than reduced per pair).
    fn attention(
        qkv: &[f32],
        lengths: &[usize],
        hidden: usize,
        context: &mut [f32],
        scratch: &mut [f32],
    ) {
        let scale = 1.0 / (HEAD_DIM as f32).sqrt();
        let stride = 3 * hidden;
        let mut start = 0;
        for &len in lengths {
            let seq = &qkv[start * stride..(start + len) * stride];
            let (keys_t, scores) = scratch.split_at_mut(HEAD_DIM * len);
            let scores = &mut scores[..len];
            for q_off in (0..hidden).step_by(HEAD_DIM) {
                let k_off = hidden + q_off;
                let v_off = 2 * hidden + q_off;
                for j in 0..len {
                    let k = &seq[j * stride + k_off..][..HEAD_DIM];
                    for (d, &v) in k.iter().enumerate() {
                        keys_t[d * len + j] = v;
                    }
                }
                for i in 0..len {
                    let q = &seq[i * stride + q_off..][..HEAD_DIM];
                    scores.fill(0.0);
                    for (&qd, keys) in q.iter().zip(keys_t.chunks_exact(len)) {
                        let qd = qd * scale;
                        for (s, k) in scores.iter_mut().zip(keys) {
                            *s += qd * k;
                        }
                    }
                    let max = scores.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
                    for s in scores.iter_mut() {
                        *s = exp_nonpositive(*s - max);
                    }
                    let inv = 1.0 / sum(scores);
                    let mut acc = [0.0f32; HEAD_DIM];
                    for (j, &p) in scores.iter().enumerate() {
                        let v = &seq[j * stride + v_off..][..HEAD_DIM];
                        for (a, v) in acc.iter_mut().zip(v) {
                            *a += p * v;
                        }
                    }
                    let out = &mut context[(start + i) * hidden + q_off..][..HEAD_DIM];
                    for (o, a) in out.iter_mut().zip(acc) {
                        *o = a * inv;
                    }
                }
            }
            start += len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_reference_values() {
        // erf at a few points, from a double-precision implementation.
        let cases: [(f32, f64); 9] = [
            (0.0, 0.0),
            (0.1, 0.112_462_916),
            (0.5, 0.520_499_876),
            (1.0, 0.842_700_793),
            (1.5, 0.966_105_146),
            (2.0, 0.995_322_265),
            (3.0, 0.999_977_910),
            (-0.7, -0.677_801_194),
            (10.0, 1.0),
        ];
        for (x, want) in cases {
            let got = f64::from(erf(x));
            assert!((got - want).abs() < 2e-7, "erf({x}) = {got} want {want}");
        }
    }

    #[test]
    fn exp_matches_std_on_softmax_range() {
        let mut x = -80.0f32;
        while x <= 0.0 {
            let (got, want) = (exp_nonpositive(x), x.exp());
            assert!(
                (got - want).abs() <= 4e-7 * want + 1e-37,
                "exp({x}) = {got} want {want}"
            );
            x += 0.037;
        }
    }
}
