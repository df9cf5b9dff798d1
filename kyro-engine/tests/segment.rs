//! Sealed segments: written from an index, opened from mmap without any
//! rebuild, answering exactly as the index did; corruption is refused.

mod common;

use common::clustered_set;
use kyro_engine::segment::{ColdSegment, SegmentError};
use kyro_engine::{HnswIndex, IndexConfig, Metric, Quantization, SearchParams, VectorIndex};

const DIM: usize = 32;

fn built(quantization: Quantization) -> (HnswIndex, Vec<f32>) {
    let (base, queries) = clustered_set(3_000, 50, DIM, 10, 61);
    let mut config = IndexConfig::new(DIM, Metric::Cosine);
    config.quantization = quantization;
    let index = HnswIndex::build_parallel(config, &base, None, 2, &|_| {}).expect("build");
    (index, queries)
}

#[test]
fn segment_answers_exactly_as_the_index_it_was_written_from() {
    for quantization in [Quantization::None, Quantization::I8] {
        let (index, queries) = built(quantization);
        // Deleted points travel with the segment and stay hidden.
        for id in (0..3_000u64).step_by(7) {
            index.delete(id);
        }
        let dir = tempfile::tempdir().expect("tempdir");
        ColdSegment::write(&index, dir.path()).expect("write segment");
        let segment = ColdSegment::open(dir.path()).expect("open segment");
        assert_eq!(segment.len(), index.len());
        for q in queries.chunks(DIM) {
            let want = index.search(q, 10, 40).expect("index search");
            let got = segment
                .search_with(q, &SearchParams::new(10, 40))
                .expect("segment search");
            assert_eq!(got, want, "{quantization}");
            assert!(got.iter().all(|n| n.id % 7 != 0));
        }
        // Filters see the same internal ids as in the index.
        let even = |slot: u32| slot.is_multiple_of(2);
        let q = &queries[..DIM];
        let params = SearchParams::new(10, 40).with_filter(&even);
        assert_eq!(
            segment.search_with(q, &params).expect("filtered"),
            index.search_with(q, &params).expect("filtered")
        );
    }
}

#[test]
fn a_corrupt_or_torn_file_is_refused_with_its_name() {
    let (index, _) = built(Quantization::None);
    let dir = tempfile::tempdir().expect("tempdir");
    ColdSegment::write(&index, dir.path()).expect("write segment");

    // One flipped byte in the vectors.
    let vectors = dir.path().join("vectors.f32");
    let mut bytes = std::fs::read(&vectors).expect("read");
    bytes[1000] ^= 0x40;
    std::fs::write(&vectors, &bytes).expect("write");
    match ColdSegment::open(dir.path()) {
        Err(SegmentError::Corrupt { path, reason }) => {
            assert!(path.ends_with("vectors.f32"));
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!(
            "expected corruption error, got {:?}",
            other.map(|s| s.len())
        ),
    }
    bytes[1000] ^= 0x40;
    std::fs::write(&vectors, &bytes).expect("restore");
    ColdSegment::open(dir.path()).expect("restored segment opens");

    // A torn graph file (cut short).
    let graph = dir.path().join("graph.hnsw");
    let full = std::fs::read(&graph).expect("read");
    std::fs::write(&graph, &full[..full.len() / 2]).expect("truncate");
    let err = ColdSegment::open(dir.path())
        .err()
        .expect("torn file refused");
    assert!(err.to_string().contains("graph.hnsw"), "{err}");
}

#[test]
fn a_missing_file_is_an_io_error_naming_it() {
    let (index, _) = built(Quantization::None);
    let dir = tempfile::tempdir().expect("tempdir");
    ColdSegment::write(&index, dir.path()).expect("write segment");
    std::fs::remove_file(dir.path().join("ids.u64")).expect("remove");
    let err = ColdSegment::open(dir.path()).err().expect("refused");
    assert!(matches!(err, SegmentError::Io { .. }));
    assert!(err.to_string().contains("ids.u64"), "{err}");
}
