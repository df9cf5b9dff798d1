//! SIMD kernels, served by `numkong`.
//!
//! numkong compiles every backend its build probe accepts (AVX2, AVX-512,
//! AVX-512 VNNI, NEON, SVE, …) into one binary and picks the best one for the
//! running CPU at first use: that is the runtime dispatch. `numkong` accumulates
//! `f32` products in `f64`, so its results agree with [`super::scalar`] to within
//! rounding of the final cast; the tests in this module hold it to that.
//!
//! The numkong functions return `None` only when the two slices differ in
//! length. Every caller inside the engine has validated dimensions already, so
//! a length mismatch is a programming error: debug builds assert, release builds
//! fall back to the scalar reference (which zips over the common prefix)
//! rather than panic.

use numkong::{Angular, Dot, Euclidean};

use super::scalar;

/// Names of the instruction sets numkong found on this CPU, for reports.
pub fn capabilities() -> Vec<&'static str> {
    let caps = numkong::available();
    let known = [
        (numkong::cap::HASWELL, "haswell(avx2)"),
        (numkong::cap::SKYLAKE, "skylake(avx512)"),
        (numkong::cap::ICELAKE, "icelake(avx512-vnni)"),
        (numkong::cap::GENOA, "genoa(avx512-bf16)"),
        (numkong::cap::SAPPHIRE, "sapphire(avx512-fp16)"),
        (numkong::cap::TURIN, "turin(avx512)"),
        (numkong::cap::NEON, "neon"),
        (numkong::cap::SVE, "sve"),
    ];
    known
        .iter()
        .filter(|(bit, _)| caps & bit != 0)
        .map(|&(_, name)| name)
        .collect()
}

/// Inner product `Σ aᵢ·bᵢ`.
#[inline]
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    f32::dot(a, b).map_or_else(|| scalar::dot_f32(a, b), |d| d as f32)
}

/// Squared Euclidean distance `Σ (aᵢ−bᵢ)²`.
#[inline]
pub fn l2sq_f32(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    f32::sqeuclidean(a, b).map_or_else(|| scalar::l2sq_f32(a, b), |d| d as f32)
}

/// Cosine distance `1 − a·b / (‖a‖·‖b‖)`, in `[0, 2]`.
#[inline]
pub fn cosine_distance_f32(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    f32::angular(a, b).map_or_else(|| scalar::cosine_distance_f32(a, b), |d| (d as f32).clamp(0.0, 2.0))
}

/// Inner product of two `i8` vectors, exact.
#[inline]
pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    debug_assert_eq!(a.len(), b.len());
    i8::dot(a, b).unwrap_or_else(|| scalar::dot_i8(a, b))
}

/// Squared Euclidean distance of two `i8` vectors, exact.
#[inline]
pub fn l2sq_i8(a: &[i8], b: &[i8]) -> u32 {
    debug_assert_eq!(a.len(), b.len());
    i8::sqeuclidean(a, b).unwrap_or_else(|| scalar::l2sq_i8(a, b))
}
