//! The kernels the engine calls: SIMD, chosen for the running CPU at first use.
//!
//! - `i8` kernels and cosine come from `numkong`, which compiles every backend
//!   its build probe accepts (AVX2, AVX-512, AVX-512 VNNI, NEON, SVE, …) into
//!   one binary and picks the best one for the running CPU: that is the
//!   runtime dispatch.
//! - `f32` dot and squared L2 — the calls graph traversal spends its time in —
//!   use the hand-written AVX-512 / AVX2 kernels of `x86.rs` on x86-64, and
//!   numkong elsewhere ([`numkong_f32`]). numkong accumulates `f32` in `f64`:
//!   exact, but 1.7–4.8× slower per call; `x86.rs` says why and
//!   `docs/benchmarks.md` has the measurement.
//!
//! All of them are tested against [`super::scalar`] for every dimension from
//! 1 to 1100.
//!
//! The numkong functions return `None` only when the two slices differ in
//! length. Every caller inside the engine has validated dimensions already, so
//! a length mismatch is a programming error: debug builds assert, release builds
//! fall back to the scalar reference (which zips over the common prefix)
//! rather than panic.

use numkong::{Angular, Dot, Euclidean};

use super::scalar;

#[cfg(target_arch = "x86_64")]
use super::x86;

#[cfg(target_arch = "x86_64")]
static X86_LEVEL: std::sync::LazyLock<x86::Level> = std::sync::LazyLock::new(x86::detect);

/// Which `f32` implementation [`dot_f32`] and [`l2sq_f32`] use on this CPU.
pub fn f32_implementation() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    match *X86_LEVEL {
        x86::Level::Avx512 => return "avx512f (kyro)",
        x86::Level::Avx2 => return "avx2+fma (kyro)",
        x86::Level::None => {}
    }
    "numkong"
}

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
    #[cfg(target_arch = "x86_64")]
    match *X86_LEVEL {
        // SAFETY: the CPU feature was detected at run time; the kernel reads
        // only the common prefix of the slices.
        x86::Level::Avx512 => return unsafe { x86::dot_f32_avx512(a, b) },
        // SAFETY: as above.
        x86::Level::Avx2 => return unsafe { x86::dot_f32_avx2(a, b) },
        x86::Level::None => {}
    }
    numkong_f32::dot_f32(a, b)
}

/// Squared Euclidean distance `Σ (aᵢ−bᵢ)²`.
#[inline]
pub fn l2sq_f32(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    match *X86_LEVEL {
        // SAFETY: the CPU feature was detected at run time; the kernel reads
        // only the common prefix of the slices.
        x86::Level::Avx512 => return unsafe { x86::l2sq_f32_avx512(a, b) },
        // SAFETY: as above.
        x86::Level::Avx2 => return unsafe { x86::l2sq_f32_avx2(a, b) },
        x86::Level::None => {}
    }
    numkong_f32::l2sq_f32(a, b)
}

/// One implementation of the `f32` kernels, by name.
#[derive(Clone, Copy)]
pub struct F32Kernels {
    /// What it is (`avx2+fma (kyro)`, `numkong`, …).
    pub name: &'static str,
    /// Inner product.
    pub dot: fn(&[f32], &[f32]) -> f32,
    /// Squared Euclidean distance.
    pub l2sq: fn(&[f32], &[f32]) -> f32,
}

/// Every `f32` implementation the running CPU can execute, the dispatched
/// one among them: tests hold each to the scalar reference, so that a kernel
/// the dispatcher does not pick on this machine (AVX2 on an AVX-512 CPU) is
/// still checked.
pub fn supported_f32_kernels() -> Vec<F32Kernels> {
    #[allow(unused_mut)]
    let mut kernels = Vec::new();
    #[cfg(target_arch = "x86_64")]
    for level in x86::supported() {
        kernels.push(match level {
            x86::Level::Avx512 => F32Kernels {
                name: "avx512f (kyro)",
                // SAFETY (both): listed only when `x86::supported` detected
                // AVX-512F on this CPU; the kernels read the common prefix.
                dot: |a, b| unsafe { x86::dot_f32_avx512(a, b) },
                l2sq: |a, b| unsafe { x86::l2sq_f32_avx512(a, b) },
            },
            x86::Level::Avx2 => F32Kernels {
                name: "avx2+fma (kyro)",
                // SAFETY (both): listed only when AVX2 and FMA were detected.
                dot: |a, b| unsafe { x86::dot_f32_avx2(a, b) },
                l2sq: |a, b| unsafe { x86::l2sq_f32_avx2(a, b) },
            },
            x86::Level::None => continue,
        });
    }
    kernels.push(F32Kernels {
        name: "numkong",
        dot: numkong_f32::dot_f32,
        l2sq: numkong_f32::l2sq_f32,
    });
    kernels
}

/// numkong's own `f32` kernels (`f64` accumulation): the engine's `f32` path
/// off x86-64, and the comparison point in the kernel benchmarks.
pub mod numkong_f32 {
    use numkong::{Dot, Euclidean};

    use super::scalar;

    /// Inner product `Σ aᵢ·bᵢ`.
    #[inline]
    pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
        f32::dot(a, b).map_or_else(|| scalar::dot_f32(a, b), |d| d as f32)
    }

    /// Squared Euclidean distance `Σ (aᵢ−bᵢ)²`.
    #[inline]
    pub fn l2sq_f32(a: &[f32], b: &[f32]) -> f32 {
        f32::sqeuclidean(a, b).map_or_else(|| scalar::l2sq_f32(a, b), |d| d as f32)
    }
}

/// Cosine distance `1 − a·b / (‖a‖·‖b‖)`, in `[0, 2]`.
#[inline]
pub fn cosine_distance_f32(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    f32::angular(a, b).map_or_else(
        || scalar::cosine_distance_f32(a, b),
        |d| (d as f32).clamp(0.0, 2.0),
    )
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
