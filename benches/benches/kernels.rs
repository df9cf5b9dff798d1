//! Distance-kernel micro-benchmarks: each SIMD kernel in
//! `kyro_engine::distance::kernels` against its portable reference in
//! `kyro_engine::distance::scalar`, at the dimensions of common embedding
//! models (128: SIFT, 384: MiniLM, 512: CLIP, 768: BERT, 1536: OpenAI).
//!
//! Run with `cargo bench -p kyro-bench --bench kernels`; add a filter such as
//! `-- dot_f32` to run one group. Throughput is reported in elements/s so
//! different dimensions are comparable.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kyro_engine::distance::{kernels, scalar};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DIMS: [usize; 5] = [128, 384, 512, 768, 1536];

fn random_f32(rng: &mut ChaCha8Rng, dim: usize) -> Vec<f32> {
    (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn random_i8(rng: &mut ChaCha8Rng, dim: usize) -> Vec<i8> {
    // Symmetric range: -128 has no positive counterpart, and quantisers in
    // practice emit [-127, 127].
    (0..dim).map(|_| rng.random_range(-127i8..=127)).collect()
}

/// A plain `f32` kernel function.
type F32Kernel = fn(&[f32], &[f32]) -> f32;

/// Benchmarks one f32 kernel pair. Generic over the function types (rather
/// than taking `fn` pointers) so both sides are direct, inlinable calls and
/// the comparison is not skewed by an indirect call on short vectors.
/// `numkong`, when given, is numkong's own kernel for the same formula (an FFI
/// call, so never inlined anyway), so that the reason the engine uses its own
/// x86 `f32` kernels stays measured.
fn bench_f32<S, R>(c: &mut Criterion, name: &str, simd: S, reference: R, numkong: Option<F32Kernel>)
where
    S: Fn(&[f32], &[f32]) -> f32,
    R: Fn(&[f32], &[f32]) -> f32,
{
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut group = c.benchmark_group(name);
    for dim in DIMS {
        let (a, b) = (random_f32(&mut rng, dim), random_f32(&mut rng, dim));
        // A fast kernel that computes the wrong thing is not a win: check
        // agreement (SIMD reassociates sums, so allow rounding slack).
        let (fast, slow) = (simd(&a, &b), reference(&a, &b));
        assert!(
            (fast - slow).abs() <= 1e-3 * slow.abs().max(1.0),
            "{name} dim {dim}: simd {fast} vs scalar {slow}"
        );
        group.throughput(Throughput::Elements(dim as u64));
        group.bench_with_input(BenchmarkId::new("simd", dim), &dim, |bench, _| {
            bench.iter(|| simd(black_box(&a), black_box(&b)))
        });
        group.bench_with_input(BenchmarkId::new("scalar", dim), &dim, |bench, _| {
            bench.iter(|| reference(black_box(&a), black_box(&b)))
        });
        if let Some(numkong) = numkong {
            group.bench_with_input(BenchmarkId::new("numkong", dim), &dim, |bench, _| {
                bench.iter(|| numkong(black_box(&a), black_box(&b)))
            });
        }
    }
    group.finish();
}

/// Benchmarks one i8 kernel pair; integer results must match exactly.
fn bench_i8<T, S, R>(c: &mut Criterion, name: &str, simd: S, reference: R)
where
    T: PartialEq + std::fmt::Debug,
    S: Fn(&[i8], &[i8]) -> T,
    R: Fn(&[i8], &[i8]) -> T,
{
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let mut group = c.benchmark_group(name);
    for dim in DIMS {
        let (a, b) = (random_i8(&mut rng, dim), random_i8(&mut rng, dim));
        assert_eq!(simd(&a, &b), reference(&a, &b), "{name} dim {dim}");
        group.throughput(Throughput::Elements(dim as u64));
        group.bench_with_input(BenchmarkId::new("simd", dim), &dim, |bench, _| {
            bench.iter(|| simd(black_box(&a), black_box(&b)))
        });
        group.bench_with_input(BenchmarkId::new("scalar", dim), &dim, |bench, _| {
            bench.iter(|| reference(black_box(&a), black_box(&b)))
        });
    }
    group.finish();
}

fn distance_kernels(c: &mut Criterion) {
    bench_f32(
        c,
        "dot_f32",
        kernels::dot_f32,
        scalar::dot_f32,
        Some(kernels::numkong_f32::dot_f32),
    );
    bench_f32(
        c,
        "l2sq_f32",
        kernels::l2sq_f32,
        scalar::l2sq_f32,
        Some(kernels::numkong_f32::l2sq_f32),
    );
    bench_f32(
        c,
        "cosine_distance_f32",
        kernels::cosine_distance_f32,
        scalar::cosine_distance_f32,
        None,
    );
    bench_i8(c, "dot_i8", kernels::dot_i8, scalar::dot_i8);
    bench_i8(c, "l2sq_i8", kernels::l2sq_i8, scalar::l2sq_i8);
}

criterion_group! {
    name = benches;
    // Short windows keep the 50 benchmarks to a few minutes; kernel timings
    // are stable enough that longer runs barely narrow the intervals.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = distance_kernels
}
criterion_main!(benches);
