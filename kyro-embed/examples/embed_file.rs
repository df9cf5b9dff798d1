//! Development helper: embeds the lines of a file in batches and compares
//! with a reference `.fvecs` (cosine mean/min), printing texts/s.
//! `cargo run --release -p kyro-embed --example embed_file -- FILE [REF.fvecs] [BATCH] [THREADS] [LIMIT]`

use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let texts = std::fs::read_to_string(&args[1])?;
    let batch: usize = args.get(3).map_or(Ok(32), |s| s.parse())?;
    let threads: usize = args.get(4).map_or(Ok(2), |s| s.parse())?;
    let limit: usize = args.get(5).map_or(Ok(usize::MAX), |s| s.parse())?;
    let texts: Vec<&str> = texts.lines().take(limit).collect();
    let embedder = kyro_embed::Embedder::load(&kyro_embed::default_model_dir(), threads)?;
    let start = Instant::now();
    let mut vectors = Vec::new();
    for chunk in texts.chunks(batch) {
        vectors.extend(embedder.embed_batch(chunk)?);
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} texts in {secs:.3}s: {:.1} texts/s",
        texts.len(),
        texts.len() as f64 / secs
    );
    if let Some(reference) = args.get(2) {
        let bytes = std::fs::read(reference)?;
        let mut cos = Vec::new();
        for (i, v) in vectors.iter().enumerate() {
            let row = &bytes[i * (4 + 384 * 4) + 4..][..384 * 4];
            let r: Vec<f32> = row
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let dot: f32 = v.iter().zip(&r).map(|(a, b)| a * b).sum();
            let nr: f32 = r.iter().map(|a| a * a).sum::<f32>().sqrt();
            cos.push(dot / nr);
        }
        let mean = cos.iter().sum::<f32>() / cos.len() as f32;
        let min = cos.iter().copied().fold(f32::INFINITY, f32::min);
        println!("cosine mean {mean:.6} min {min:.6}");
    }
    Ok(())
}
