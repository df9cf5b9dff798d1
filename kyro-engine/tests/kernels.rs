//! The SIMD kernels agree with the scalar reference at every dimension, and
//! non-finite input is refused at the API boundary.

mod common;

use kyro_engine::distance::{kernels, scalar, validate_vector, ScalarQuantizer};
use kyro_engine::{EngineError, FlatIndex, HnswIndex, IndexConfig, Metric, VectorIndex};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Relative agreement expected between the SIMD (f64-accumulated, then
/// rounded) and the scalar (f64) kernels.
fn close(simd: f32, reference: f32, scale: f32) -> bool {
    (simd - reference).abs() <= 1e-5 * scale.max(1.0)
}

#[test]
fn every_f32_kernel_this_cpu_runs_matches_the_scalar_reference() {
    let kernels = kernels::supported_f32_kernels();
    let names: Vec<&str> = kernels.iter().map(|k| k.name).collect();
    println!("f32 kernels tested: {names:?}");
    assert!(names.contains(&"numkong"));
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        assert!(names.contains(&"avx2+fma (kyro)"), "{names:?}");
    }
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    for dim in 1..=1100 {
        let a: Vec<f32> = (0..dim).map(|_| rng.random_range(-2.0..2.0)).collect();
        let b: Vec<f32> = (0..dim).map(|_| rng.random_range(-2.0..2.0)).collect();
        let magnitude: f32 = a.iter().zip(&b).map(|(x, y)| (x * y).abs()).sum();
        let (dot, l2) = (scalar::dot_f32(&a, &b), scalar::l2sq_f32(&a, &b));
        for kernel in &kernels {
            let d = (kernel.dot)(&a, &b);
            assert!(
                close(d, dot, magnitude),
                "{} dot dim {dim}: {d} vs {dot}",
                kernel.name
            );
            let d = (kernel.l2sq)(&a, &b);
            assert!(
                close(d, l2, l2),
                "{} l2sq dim {dim}: {d} vs {l2}",
                kernel.name
            );
        }
    }
}

#[test]
fn f32_kernels_match_scalar_reference_for_every_dimension_up_to_1100() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for dim in 1..=1100 {
        let a: Vec<f32> = (0..dim).map(|_| rng.random_range(-2.0..2.0)).collect();
        let b: Vec<f32> = (0..dim).map(|_| rng.random_range(-2.0..2.0)).collect();
        let magnitude: f32 = a.iter().zip(&b).map(|(x, y)| (x * y).abs()).sum();

        let (d, r) = (kernels::dot_f32(&a, &b), scalar::dot_f32(&a, &b));
        assert!(close(d, r, magnitude), "dot dim {dim}: {d} vs {r}");

        let (d, r) = (kernels::l2sq_f32(&a, &b), scalar::l2sq_f32(&a, &b));
        assert!(close(d, r, r), "l2sq dim {dim}: {d} vs {r}");

        let d = kernels::numkong_f32::dot_f32(&a, &b);
        let r = scalar::dot_f32(&a, &b);
        assert!(close(d, r, magnitude), "numkong dot dim {dim}: {d} vs {r}");
        let (d, r) = (
            kernels::numkong_f32::l2sq_f32(&a, &b),
            scalar::l2sq_f32(&a, &b),
        );
        assert!(close(d, r, r), "numkong l2sq dim {dim}: {d} vs {r}");

        let (d, r) = (
            kernels::cosine_distance_f32(&a, &b),
            scalar::cosine_distance_f32(&a, &b),
        );
        assert!((d - r).abs() <= 1e-4, "cosine dim {dim}: {d} vs {r}");
        assert!(
            (0.0..=2.0).contains(&d),
            "cosine dim {dim} out of range: {d}"
        );
    }
}

#[test]
fn i8_kernels_match_scalar_reference_exactly_for_every_dimension_up_to_1100() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    for dim in 1..=1100 {
        // The full range, −128 included, is legal input to the kernels.
        let a: Vec<i8> = (0..dim).map(|_| rng.random()).collect();
        let b: Vec<i8> = (0..dim).map(|_| rng.random()).collect();
        assert_eq!(
            kernels::dot_i8(&a, &b),
            scalar::dot_i8(&a, &b),
            "dot_i8 dim {dim}"
        );
        assert_eq!(
            kernels::l2sq_i8(&a, &b),
            scalar::l2sq_i8(&a, &b),
            "l2sq_i8 dim {dim}"
        );
    }
}

#[test]
fn i8_kernels_are_exact_at_the_extremes_of_the_range() {
    for dim in [1, 15, 16, 17, 63, 64, 65, 384, 1100] {
        let lo = vec![-128i8; dim];
        let hi = vec![127i8; dim];
        assert_eq!(kernels::dot_i8(&lo, &lo), 128 * 128 * dim as i32);
        assert_eq!(kernels::dot_i8(&lo, &hi), -128 * 127 * dim as i32);
        assert_eq!(kernels::l2sq_i8(&lo, &hi), 255 * 255 * dim as u32);
    }
}

#[test]
fn metric_distances_order_as_documented() {
    let a = [1.0f32, 0.0];
    let near = [0.9f32, 0.1];
    let far = [-1.0f32, 0.0];
    for metric in Metric::ALL {
        let dn = kyro_engine::distance::distance(metric, &a, &near);
        let df = kyro_engine::distance::distance(metric, &a, &far);
        assert!(dn < df, "{metric}: near {dn} should be below far {df}");
    }
    // Dot is a true inner product: scaling a vector scales the score.
    let d1 = kyro_engine::distance::distance(Metric::Dot, &a, &[2.0, 0.0]);
    let d2 = kyro_engine::distance::distance(Metric::Dot, &a, &[4.0, 0.0]);
    assert_eq!((d1, d2), (-2.0, -4.0));
    // Cosine ignores scale.
    let c1 = kyro_engine::distance::distance(Metric::Cosine, &a, &[2.0, 0.0]);
    assert!(c1.abs() < 1e-6);
}

#[test]
fn non_finite_components_are_rejected_with_their_position() {
    for metric in Metric::ALL {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut v = vec![0.5f32; 8];
            v[3] = bad;
            match validate_vector(metric, 8, &v) {
                Err(EngineError::NonFiniteComponent { index: 3, .. }) => {}
                other => panic!("{metric} with {bad}: {other:?}"),
            }
        }
    }
}

#[test]
fn indexes_refuse_bad_vectors_on_insert_and_search() {
    let config = IndexConfig::new(4, Metric::Cosine);
    let hnsw = HnswIndex::new(config).expect("index");
    let flat = FlatIndex::new(config).expect("index");
    let indexes: [&dyn VectorIndex; 2] = [&hnsw, &flat];
    for index in indexes {
        assert!(matches!(
            index.insert(1, &[1.0, f32::NAN, 0.0, 0.0]),
            Err(EngineError::NonFiniteComponent { index: 1, .. })
        ));
        assert!(matches!(
            index.insert(1, &[1.0, 0.0, 0.0]),
            Err(EngineError::DimensionMismatch {
                expected: 4,
                got: 3
            })
        ));
        assert!(matches!(
            index.insert(1, &[0.0; 4]),
            Err(EngineError::ZeroVectorForCosine)
        ));
        index
            .insert(1, &[1.0, 0.0, 0.0, 0.0])
            .expect("valid insert");
        assert!(matches!(
            index.search(&[f32::INFINITY, 0.0, 0.0, 0.0], 1, 10),
            Err(EngineError::NonFiniteComponent { index: 0, .. })
        ));
        assert!(matches!(
            index.search(&[1.0, 0.0, 0.0, 0.0], 0, 10),
            Err(EngineError::InvalidParameter { field: "k", .. })
        ));
        // Nothing bad was stored.
        assert_eq!(index.len(), 1);
    }
}

#[test]
fn quantizer_round_trips_within_half_a_step() {
    let data = common::clustered(500, 16, 4, 3);
    for metric in Metric::ALL {
        let q = ScalarQuantizer::calibrate(metric, 16, &data);
        let (offset, scale) = q.parameters();
        let mut clipped = 0usize;
        for v in data.chunks(16) {
            let codes = q.quantize(v);
            for (&x, &c) in v.iter().zip(&codes) {
                let back = offset + scale * f32::from(c);
                if (back - x).abs() > scale * 0.5 + 1e-6 {
                    clipped += 1;
                }
            }
        }
        // Only the calibrated tails (0.05 % of components) may be clamped.
        assert!(
            clipped <= data.len() / 1000 + 1,
            "{metric}: {clipped} clamped"
        );
    }
}
