//! The embedder against sentence-transformers' own vectors: the real
//! all-MiniLM-L6-v2 model (fetched by `scripts/fetch-model.sh`) on the
//! shared `minilm-npm-50k` texts and their reference embeddings.
//!
//! Without the model or the data set these tests print why and pass, except
//! under `CI=true` with the data set present, where a missing model fails.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use kyro_embed::{BatcherConfig, EmbedService, Embedder, Precision, MAX_WORD_PIECES};

fn dataset_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets/minilm-npm-50k")
}

/// The embedder, the 1,000 query texts and their reference vectors.
type Setup = (Embedder, Vec<String>, Vec<Vec<f32>>);

/// The model and the query set, or `None` (with a message) when absent.
fn setup() -> Option<&'static Setup> {
    static SETUP: OnceLock<Option<Setup>> = OnceLock::new();
    SETUP
        .get_or_init(|| {
            let data = dataset_dir();
            let has_data = data.join("query.txt").is_file() && data.join("query.fvecs").is_file();
            let model_dir = kyro_embed::default_model_dir();
            let embedder = match Embedder::load(&model_dir, 2) {
                Ok(e) => e,
                Err(e) => {
                    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
                    assert!(
                        !(ci && has_data),
                        "CI: cannot load the model from {}: {e}",
                        model_dir.display()
                    );
                    eprintln!(
                        "SKIPPED: no model at {} ({e}); run scripts/fetch-model.sh",
                        model_dir.display()
                    );
                    return None;
                }
            };
            if !has_data {
                eprintln!("SKIPPED: no data set at {}", data.display());
                return None;
            }
            let texts = std::fs::read_to_string(data.join("query.txt")).expect("query.txt");
            let texts: Vec<String> = texts.lines().map(str::to_owned).collect();
            let reference = read_fvecs(&data.join("query.fvecs"));
            assert_eq!(
                texts.len(),
                reference.len(),
                "query.txt and query.fvecs disagree"
            );
            Some((embedder, texts, reference))
        })
        .as_ref()
}

fn read_fvecs(path: &std::path::Path) -> Vec<Vec<f32>> {
    let bytes = std::fs::read(path).expect("fvecs");
    let mut out = Vec::new();
    let mut rest = bytes.as_slice();
    while rest.len() >= 4 {
        let dim = i32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let row = &rest[4..4 + dim * 4];
        out.push(
            row.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        );
        rest = &rest[4 + dim * 4..];
    }
    out
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

fn assert_unit_and_finite(v: &[f32], what: &str) {
    assert_eq!(v.len(), 384, "{what}: width");
    assert!(v.iter().all(|x| x.is_finite()), "{what}: not finite");
    let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "{what}: norm {norm}");
}

/// Cosines of `embedder`'s vectors for `texts` to `reference`, in batches of
/// 32; prints and returns (mean, minimum, line of the minimum).
fn cosines_to_reference(
    embedder: &Embedder,
    texts: &[String],
    reference: &[Vec<f32>],
) -> (f32, f32, usize) {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut cosines = Vec::new();
    for (chunk, expected) in refs.chunks(32).zip(reference.chunks(32)) {
        let vectors = embedder.embed_batch(chunk).expect("embed");
        cosines.extend(vectors.iter().zip(expected).map(|(v, r)| cosine(v, r)));
    }
    assert_eq!(cosines.len(), 1000);
    let mean = cosines.iter().sum::<f32>() / cosines.len() as f32;
    let (worst, min) =
        cosines
            .iter()
            .copied()
            .enumerate()
            .fold(
                (0, f32::INFINITY),
                |acc, (i, c)| if c < acc.1 { (i, c) } else { acc },
            );
    eprintln!(
        "{}: cosine to the reference over {} texts: mean {mean:.6}, min {min:.6} (line {worst})",
        embedder.precision(),
        cosines.len()
    );
    (mean, min, worst)
}

/// The embedder at int8 precision (loaded once), when the model is here.
fn int8_embedder() -> Option<&'static Embedder> {
    static INT8: OnceLock<Option<Embedder>> = OnceLock::new();
    setup()?;
    INT8.get_or_init(|| {
        Some(
            Embedder::load_with_precision(&kyro_embed::default_model_dir(), 2, Precision::Int8)
                .expect("the model loads at int8"),
        )
    })
    .as_ref()
}

#[test]
fn every_query_text_matches_its_reference_vector() {
    let Some((embedder, texts, reference)) = setup() else {
        return;
    };
    assert_eq!(embedder.precision(), Precision::F32);
    let (_, min, worst) = cosines_to_reference(embedder, texts, reference);
    assert!(
        min >= 0.999,
        "line {worst} ({:?}) has cosine {min}",
        texts[worst]
    );
}

#[test]
fn int8_products_keep_every_query_text_within_the_quantised_bar() {
    let (Some((_, texts, reference)), Some(int8)) = (setup(), int8_embedder()) else {
        return;
    };
    assert_eq!(int8.precision(), Precision::Int8);
    let (mean, min, worst) = cosines_to_reference(int8, texts, reference);
    assert!(mean >= 0.999, "int8 mean cosine {mean}");
    assert!(
        min >= 0.995,
        "int8: line {worst} ({:?}) has cosine {min}",
        texts[worst]
    );
}

#[test]
fn int8_vectors_are_the_same_alone_and_inside_a_mixed_batch() {
    let (Some((_, queries, _)), Some(int8)) = (setup(), int8_embedder()) else {
        return;
    };
    let mut texts = edge_texts();
    texts.extend(queries.iter().take(40).cloned());
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let together = int8.embed_batch(&refs).expect("batch");
    for (i, text) in refs.iter().enumerate() {
        let alone = &int8.embed_batch(&[text]).expect("alone")[0];
        assert_unit_and_finite(alone, &format!("int8 text {i}"));
        let c = cosine(alone, &together[i]);
        assert!(c >= 0.9999, "int8 text {i}: cosine {c} alone vs in batch");
    }
}

#[test]
fn precision_names_parse_and_unknown_ones_are_refused() {
    assert_eq!("f32".parse::<Precision>().unwrap(), Precision::F32);
    assert_eq!("int8".parse::<Precision>().unwrap(), Precision::Int8);
    assert_ne!(Precision::Auto.resolve(), Precision::Auto);
    let err = "fp16".parse::<Precision>().unwrap_err().to_string();
    assert!(err.contains("fp16") && err.contains("int8"), "{err}");
}

#[test]
fn hello_world_starts_with_sentence_transformers_values() {
    let Some((embedder, _, _)) = setup() else {
        return;
    };
    let v = &embedder.embed_batch(&["hello world"]).expect("embed")[0];
    let expected = [-0.0345, 0.0310, 0.0067, 0.0261, -0.0394];
    for (i, (got, want)) in v.iter().zip(expected).enumerate() {
        assert!((got - want).abs() < 1e-3, "component {i}: {got} vs {want}");
    }
}

/// Empty, whitespace-only, 100 KB, CJK, emoji and combining marks, each
/// embedded alone and in one mixed-length batch.
fn edge_texts() -> Vec<String> {
    let long: String = "error: linker `cc` not found while compiling kyro-engine v0.1.0; "
        .repeat(100 * 1024 / 64)
        .chars()
        .take(100 * 1024)
        .collect();
    vec![
        String::new(),
        " \t\n  \r\n ".to_string(),
        long,
        "数据库连接超时，请检查网络配置".to_string(),
        "build failed 🔥🚀 again 🤦‍♂️".to_string(),
        "cafe\u{301} na\u{308}ive Zo\u{308}e".to_string(),
        "hello world".to_string(),
        "TypeError: Cannot read properties of undefined (reading 'map') at App.render".to_string(),
    ]
}

#[test]
fn edge_texts_embed_without_error_and_long_ones_are_truncated() {
    let Some((embedder, _, _)) = setup() else {
        return;
    };
    let texts = edge_texts();
    for text in &texts {
        let v = embedder.embed_batch(&[text]).expect("embed");
        assert_unit_and_finite(
            &v[0],
            &format!("{:?}", text.chars().take(20).collect::<String>()),
        );
        let tokens = embedder.count_tokens(text).expect("tokens");
        assert!(
            (2..=MAX_WORD_PIECES).contains(&tokens),
            "{tokens} word pieces"
        );
    }
    assert_eq!(embedder.count_tokens("").expect("tokens"), 2, "[CLS] [SEP]");
    assert_eq!(
        embedder.count_tokens(&texts[2]).expect("tokens"),
        MAX_WORD_PIECES
    );
    // CJK characters are split one per piece, not unknown as a whole.
    assert!(embedder.count_tokens(&texts[3]).expect("tokens") > 10);
}

#[test]
fn a_text_has_the_same_vector_alone_and_inside_a_mixed_batch() {
    let Some((embedder, queries, _)) = setup() else {
        return;
    };
    let mut texts = edge_texts();
    texts.extend(queries.iter().take(40).cloned());
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let together = embedder.embed_batch(&refs).expect("batch");
    let reversed: Vec<&str> = refs.iter().rev().copied().collect();
    let backwards = embedder.embed_batch(&reversed).expect("batch");
    for (i, text) in refs.iter().enumerate() {
        let alone = &embedder.embed_batch(&[text]).expect("alone")[0];
        let c = cosine(alone, &together[i]);
        assert!(c >= 0.9999, "text {i}: cosine {c} alone vs in batch");
        let c = cosine(alone, &backwards[refs.len() - 1 - i]);
        assert!(
            c >= 0.9999,
            "text {i}: cosine {c} alone vs in reversed batch"
        );
    }
}

/// Query texts, a service started around a fresh embedder, and a runtime
/// with two workers to call it from.
struct ServiceCase {
    texts: Vec<String>,
    service: EmbedService,
    runtime: tokio::runtime::Runtime,
}

/// `take` query texts from the `skip`-th, with a service of `config`;
/// `None` (skipped) without the model or the data set.
fn service_case(skip: usize, take: usize, config: BatcherConfig) -> Option<ServiceCase> {
    let (_, queries, _) = setup()?;
    Some(ServiceCase {
        texts: queries.iter().skip(skip).take(take).cloned().collect(),
        service: EmbedService::start(
            Embedder::load(&kyro_embed::default_model_dir(), 2).expect("model"),
            config,
        ),
        runtime: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .expect("runtime"),
    })
}

/// Each of `texts` embedded through `service` by a task of its own, all
/// spawned at once on `runtime`; the vectors in the order of `texts`, each
/// checked against what a direct batch of `texts` gives.
fn embed_concurrently(
    runtime: &tokio::runtime::Runtime,
    service: &EmbedService,
    texts: &[String],
) -> Vec<Arc<[f32]>> {
    let got: Vec<Arc<[f32]>> = runtime.block_on(async {
        let calls: Vec<_> = texts
            .iter()
            .cloned()
            .map(|t| {
                let service = service.clone();
                tokio::spawn(async move { service.embed(&t).await })
            })
            .collect();
        let mut out = Vec::new();
        for call in calls {
            out.push(call.await.expect("task").expect("embed"));
        }
        out
    });
    let (embedder, _, _) = setup().expect("setup");
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let expected = embedder.embed_batch(&refs).expect("batch");
    assert_eq!(got.len(), expected.len());
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        let c = cosine(g, e);
        assert!(c >= 0.9999, "caller {i}: cosine {c}");
    }
    got
}

#[test]
fn sixty_four_concurrent_callers_get_the_batch_vectors_and_repeats_hit_the_cache() {
    let Some(ServiceCase {
        texts,
        service,
        runtime,
    }) = service_case(100, 64, BatcherConfig::default())
    else {
        return;
    };
    let got = embed_concurrently(&runtime, &service, &texts);
    let before = service.stats();
    assert_eq!(before.texts_embedded, 64);
    assert_eq!(before.cache_misses, 64);
    assert!(before.batches >= 1 && before.batches <= 64);

    let again = runtime.block_on(service.embed(&texts[7])).expect("repeat");
    assert_eq!(&*again, &*got[7]);
    let after = service.stats();
    assert_eq!(after.cache_hits, before.cache_hits + 1);
    assert_eq!(after.texts_embedded, 64, "a repeat is not embedded again");

    let many = runtime
        .block_on(service.embed_many(&[
            texts[3].clone(),
            "a brand new text".into(),
            texts[5].clone(),
        ]))
        .expect("many");
    assert_eq!(&*many[0], &*got[3]);
    assert_eq!(&*many[2], &*got[5]);
    assert_unit_and_finite(&many[1], "new text");
    assert_eq!(service.stats().texts_embedded, 65);
}

/// More callers than two batches hold: batches overlap on the pool (up to
/// two at once), and every caller still gets its own text's vector.
#[test]
fn callers_of_overlapping_batches_each_get_their_own_vector() {
    let config = BatcherConfig {
        max_batch: 8,
        cache_capacity: 0,
        ..BatcherConfig::default()
    };
    let Some(ServiceCase {
        texts,
        service,
        runtime,
    }) = service_case(200, 240, config)
    else {
        return;
    };
    embed_concurrently(&runtime, &service, &texts);
    let stats = service.stats();
    assert_eq!(stats.texts_embedded, 240);
    assert!(stats.batches >= 30, "batches of at most 8: {stats:?}");
}

#[test]
fn embedder_and_service_can_be_shared_across_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<Embedder>();
    shared::<EmbedService>();
}
