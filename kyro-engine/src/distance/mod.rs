//! Distance metrics and the kernels that compute them.
//!
//! # Scores and their ordering — the one place this is defined
//!
//! Every distance the engine computes, stores or returns is a **distance: lower
//! means closer**, and results are always sorted by ascending distance.
//!
//! | metric | distance returned | range | notes |
//! | --- | --- | --- | --- |
//! | [`Metric::Cosine`] | `1 − a·b / (‖a‖·‖b‖)` | `[0, 2]` | vectors are L2-normalised when stored; a zero vector is rejected |
//! | [`Metric::Dot`] | `−a·b` | any real | a true inner product: vectors are stored as given, never normalised |
//! | [`Metric::L2`] | `Σ (aᵢ−bᵢ)²` | `[0, ∞)` | squared Euclidean: same order as Euclidean, no square root |
//!
//! A user-facing similarity, where wanted, is derived from this distance by the
//! layer that shows it (`1 − d` for cosine, `−d` for dot).
//!
//! Inputs holding NaN or ±∞ are rejected by [`validate_vector`] before they reach
//! any index, so kernels never see them.
//!
//! - [`scalar`]: portable reference kernels, the definitions.
//! - [`kernels`]: the SIMD kernels (numkong, plus hand-written x86 `f32`
//!   kernels), chosen at run time for the CPU.
//! - [`quantize`]: `i8` scalar quantisation for graph traversal.

pub mod kernels;
pub mod quantize;
pub mod scalar;
#[cfg(target_arch = "x86_64")]
mod x86;

use std::fmt;
use std::str::FromStr;

use crate::error::EngineError;

pub use quantize::ScalarQuantizer;

/// How two vectors are compared. See the module documentation for the exact
/// distance each returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Cosine distance `1 − cos(a, b)`.
    Cosine,
    /// Negated inner product `−a·b`.
    Dot,
    /// Squared Euclidean distance.
    L2,
}

impl Metric {
    /// Every metric, for tests and command-line help.
    pub const ALL: [Metric; 3] = [Metric::Cosine, Metric::Dot, Metric::L2];

    /// The metric's name as written in configuration and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::Dot => "dot",
            Metric::L2 => "l2",
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Metric {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "cosine" => Ok(Metric::Cosine),
            "dot" | "ip" | "inner_product" => Ok(Metric::Dot),
            "l2" | "euclidean" => Ok(Metric::L2),
            other => Err(EngineError::InvalidParameter {
                field: "metric",
                reason: format!("unknown metric {other:?}; expected cosine, dot or l2"),
            }),
        }
    }
}

/// The distance between two raw vectors under `metric` (see the module table),
/// computed with the SIMD kernels. Lengths must match.
pub fn distance(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    match metric {
        Metric::Cosine => kernels::cosine_distance_f32(a, b),
        Metric::Dot => -kernels::dot_f32(a, b),
        Metric::L2 => kernels::l2sq_f32(a, b),
    }
}

/// Distance between two vectors already prepared for storage by
/// [`prepare_vector`] (for cosine: both unit length, so `1 − a·b`).
#[inline]
pub(crate) fn prepared_distance(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    match metric {
        Metric::Cosine => 1.0 - kernels::dot_f32(a, b),
        Metric::Dot => -kernels::dot_f32(a, b),
        Metric::L2 => kernels::l2sq_f32(a, b),
    }
}

/// Checks a vector at the API boundary: the right length and only finite
/// components (and, for cosine, not all zero).
pub fn validate_vector(metric: Metric, dim: usize, vector: &[f32]) -> Result<(), EngineError> {
    if vector.len() != dim {
        return Err(EngineError::DimensionMismatch {
            expected: dim,
            got: vector.len(),
        });
    }
    if let Some((index, &value)) = vector.iter().enumerate().find(|(_, x)| !x.is_finite()) {
        return Err(EngineError::NonFiniteComponent { index, value });
    }
    if metric == Metric::Cosine && vector.iter().all(|&x| x == 0.0) {
        return Err(EngineError::ZeroVectorForCosine);
    }
    Ok(())
}

/// Validates `vector` and writes the form the index stores into `out`: a copy
/// for dot and L2, the unit-length direction for cosine.
pub fn prepare_vector(
    metric: Metric,
    dim: usize,
    vector: &[f32],
    out: &mut Vec<f32>,
) -> Result<(), EngineError> {
    validate_vector(metric, dim, vector)?;
    out.clear();
    out.extend_from_slice(vector);
    if metric == Metric::Cosine {
        let norm = kernels::dot_f32(vector, vector).sqrt();
        // A finite vector can still overflow its squared norm (components near
        // f32::MAX); such a vector has no usable direction in f32 either.
        if !norm.is_finite() || norm == 0.0 {
            return Err(EngineError::InvalidParameter {
                field: "vector",
                reason: format!("norm {norm} cannot be normalised"),
            });
        }
        out.iter_mut().for_each(|x| *x /= norm);
    }
    Ok(())
}
