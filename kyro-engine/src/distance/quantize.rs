//! `i8` scalar quantisation, used to traverse the graph over 4× fewer bytes.
//!
//! One global affine map `x ≈ offset + scale·q`, `q ∈ [−127, 127]`, is
//! calibrated on a sample of the stored (prepared) vectors. The range is taken
//! from quantiles of the sample's components rather than its extremes, so that a
//! few outliers do not waste the 8 bits; values outside are clamped.
//!
//! Why global and not per dimension: with one scale, the quantised distance is
//! the integer kernel times a constant, so the VNNI / SDOT `i8` kernels serve it
//! directly. Per-dimension scales would need a weighted kernel.
//!
//! - L2: the offset cancels in `a − b`, so `‖a−b‖² ≈ scale² · ‖qa−qb‖²`.
//! - Dot and cosine: the map is symmetric (`offset = 0`), so
//!   `a·b ≈ scale² · qa·qb`; cosine vectors are unit length, so the distance is
//!   `1 − scale²·qa·qb`.
//!
//! Quantised distances only rank traversal candidates; the final candidates are
//! rescored with exact `f32` distances.

use super::{kernels, Metric};

/// Fraction of the sample's components allowed to fall outside the calibrated
/// range (and be clamped), split between both tails.
const CLIP_FRACTION: f64 = 0.0005;

/// Largest magnitude of a quantised component; −128 is never produced so the
/// range stays symmetric.
const Q_MAX: f32 = 127.0;

/// An `f32 → i8` map calibrated for one metric. See the module documentation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScalarQuantizer {
    metric: Metric,
    offset: f32,
    scale: f32,
}

impl ScalarQuantizer {
    /// Calibrates on `sample`, a row-major block of prepared vectors of `dim`
    /// components. An empty or constant sample gives a harmless unit range.
    pub fn calibrate(metric: Metric, dim: usize, sample: &[f32]) -> Self {
        let rows = sample.len() / dim.max(1);
        // Cap the components we sort so calibrating a million rows stays cheap;
        // a strided subset of rows keeps the sample spread over the whole set.
        let max_rows = (1_000_000 / dim.max(1)).max(1);
        let stride = rows.div_ceil(max_rows).max(1);
        let mut values: Vec<f32> = (0..rows)
            .step_by(stride)
            .flat_map(|r| sample[r * dim..(r + 1) * dim].iter().copied())
            .collect();
        let (lo, hi) = if values.is_empty() {
            (-1.0, 1.0)
        } else {
            values.sort_unstable_by(f32::total_cmp);
            let tail = ((values.len() as f64) * CLIP_FRACTION / 2.0) as usize;
            (values[tail], values[values.len() - 1 - tail])
        };
        Self::from_range(metric, lo, hi)
    }

    /// A quantiser whose calibrated range is `[lo, hi]`.
    pub fn from_range(metric: Metric, lo: f32, hi: f32) -> Self {
        let (offset, half_width) = match metric {
            Metric::L2 => ((lo + hi) / 2.0, (hi - lo) / 2.0),
            Metric::Dot | Metric::Cosine => (0.0, lo.abs().max(hi.abs())),
        };
        let scale = if half_width > 0.0 && half_width.is_finite() {
            half_width / Q_MAX
        } else {
            1.0 / Q_MAX
        };
        Self {
            metric,
            offset,
            scale,
        }
    }

    /// The quantiser with map `x ≈ offset + scale·q`, as read back from
    /// [`ScalarQuantizer::parameters`] (e.g. from a segment file).
    pub fn from_parameters(metric: Metric, offset: f32, scale: f32) -> Self {
        Self {
            metric,
            offset,
            scale,
        }
    }

    /// The metric this quantiser was calibrated for.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// `(offset, scale)` of the map `x ≈ offset + scale·q`.
    pub fn parameters(&self) -> (f32, f32) {
        (self.offset, self.scale)
    }

    /// Quantises `vector` into `out` (same length).
    pub fn quantize_into(&self, vector: &[f32], out: &mut [i8]) {
        debug_assert_eq!(vector.len(), out.len());
        let inv = 1.0 / self.scale;
        for (q, &x) in out.iter_mut().zip(vector) {
            *q = ((x - self.offset) * inv).round().clamp(-Q_MAX, Q_MAX) as i8;
        }
    }

    /// Quantises `vector` into a new buffer.
    pub fn quantize(&self, vector: &[f32]) -> Vec<i8> {
        let mut out = vec![0i8; vector.len()];
        self.quantize_into(vector, &mut out);
        out
    }

    /// The approximate distance between two quantised vectors, on the same
    /// scale as the metric's exact distance.
    #[inline]
    pub fn distance(&self, a: &[i8], b: &[i8]) -> f32 {
        let s2 = self.scale * self.scale;
        match self.metric {
            Metric::L2 => s2 * kernels::l2sq_i8(a, b) as f32,
            Metric::Dot => -s2 * kernels::dot_i8(a, b) as f32,
            Metric::Cosine => 1.0 - s2 * kernels::dot_i8(a, b) as f32,
        }
    }
}
