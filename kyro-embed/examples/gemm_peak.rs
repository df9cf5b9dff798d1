//! Measures the machine's f32 GEMM throughput (GFLOP/s) with the `gemm`
//! crate, and the int8 product's (GOP/s, one multiply-add = 2 operations)
//! with kyro-embed's VNNI kernel, on the encoder's own shapes, one pass per
//! thread, so that the embedder's speed can be set against the physical
//! ceiling.
//! `cargo run --release -p kyro-embed --example gemm_peak -- [ROWS] [THREADS]`

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let m: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(512);
    let threads: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2);
    // (inputs, outputs) of a layer's products: QKV, attention out, FFN in, FFN out.
    let shapes = [(384usize, 1152usize), (384, 384), (384, 1536), (1536, 384)];
    let flops_per_round: f64 = shapes.iter().map(|&(k, n)| 2.0 * (m * k * n) as f64).sum();
    let rounds = 40;
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let bufs: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = shapes
                    .iter()
                    .map(|&(k, n)| {
                        (
                            vec![0.5f32; m * k],
                            vec![0.25f32; k * n],
                            vec![0.0f32; m * n],
                        )
                    })
                    .collect();
                let mut bufs = bufs;
                for _ in 0..rounds {
                    for (&(k, n), (a, b, c)) in shapes.iter().zip(bufs.iter_mut()) {
                        // SAFETY: the buffers have exactly m×k, k×n and m×n
                        // elements, row-major, and `c` is exclusively borrowed.
                        unsafe {
                            gemm::gemm(
                                m,
                                n,
                                k,
                                c.as_mut_ptr(),
                                1,
                                n as isize,
                                false,
                                a.as_ptr(),
                                1,
                                k as isize,
                                b.as_ptr(),
                                1,
                                n as isize,
                                0.0,
                                1.0,
                                false,
                                false,
                                false,
                                gemm::Parallelism::None,
                            );
                        }
                    }
                }
            });
        }
    });
    let secs = start.elapsed().as_secs_f64();
    let gflops = flops_per_round * rounds as f64 * threads as f64 / secs / 1e9;
    println!("gemm f32, {m} rows, encoder shapes, {threads} thread(s): {gflops:.1} GFLOP/s");

    use kyro_embed::int8_product::{vnni_available, QuantMatrix};
    let int8_rounds = 4 * rounds;
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let layers: Vec<(QuantMatrix, Vec<f32>, Vec<f32>)> = shapes
                    .iter()
                    .map(|&(k, n)| {
                        let weights = (0..k * n).map(|i| ((i % 7) as f32 - 3.0) * 0.1).collect();
                        let Ok(q) = QuantMatrix::quantize(weights, k, n) else {
                            panic!("the encoder's shapes fit the int8 kernel");
                        };
                        let x = (0..m * k).map(|i| ((i % 5) as f32 - 2.0) * 0.3).collect();
                        (q, x, vec![0.0f32; m * n])
                    })
                    .collect();
                let mut layers = layers;
                for _ in 0..int8_rounds {
                    for (q, x, out) in layers.iter_mut() {
                        q.accumulate(x, m, out, 1);
                    }
                }
            });
        }
    });
    let secs = start.elapsed().as_secs_f64();
    let gops = flops_per_round * int8_rounds as f64 * threads as f64 / secs / 1e9;
    let kernel = if vnni_available() {
        "AVX-512 VNNI"
    } else {
        "portable scalar"
    };
    println!("int8 ({kernel}), {m} rows, encoder shapes, {threads} thread(s): {gops:.1} GOP/s (quantising the rows included)");
}
