//! Requests a client gets wrong as a whole (issue 15, items 4 and 5): a
//! filter nested too deeply for the decoder, a message over the size limit,
//! a BulkInsert message naming an invalid namespace. Each gets the status a
//! gRPC client expects, is counted in `kyro_requests_total` like any other
//! refusal, and leaves the server serving.

mod common;

use bytes::{Buf, BufMut};
use common::{insert, search, string, vector, write_config, TestServer, ALICE, TEXT_DIM};
use kyro_proto::v1 as pb;
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};

/// A filter `negate`d `depth` times around `tool == "cargo"`, encoded by
/// hand from the outside in: prost's encoder recurses once per level.
fn deep_filter_bytes(depth: usize) -> Vec<u8> {
    let leaf = common::eq("tool", "cargo").encode_to_vec();
    // lengths[i]: bytes of the filter with i negations around the leaf.
    let mut lengths = vec![leaf.len()];
    for i in 0..depth {
        let inner = lengths[i];
        lengths.push(1 + prost::length_delimiter_len(inner) + inner);
    }
    let mut out = Vec::with_capacity(lengths[depth]);
    for level in (0..depth).rev() {
        out.push(0x1a); // field 3 (negate), length-delimited
        prost::encode_length_delimiter(lengths[level], &mut out).expect("a Vec grows");
    }
    out.extend_from_slice(&leaf);
    out
}

/// `tool == "cargo"` negated `levels` times, built with prost's types.
fn nested_filter(levels: usize) -> pb::Filter {
    let mut filter = common::eq("tool", "cargo");
    for _ in 0..levels {
        filter = pb::Filter {
            kind: Some(pb::filter::Kind::Negate(Box::new(filter))),
        };
    }
    filter
}

/// A SearchRequest's bytes with the filter of `deep_filter_bytes(depth)`.
fn deep_search_bytes(depth: usize) -> Vec<u8> {
    let mut bytes = search("tools", vector(TEXT_DIM, 1), 3).encode_to_vec();
    let filter = deep_filter_bytes(depth);
    bytes.push(0x2a); // field 5 (filter), length-delimited
    prost::encode_length_delimiter(filter.len(), &mut bytes).expect("a Vec grows");
    bytes.extend_from_slice(&filter);
    bytes
}

/// Sends pre-encoded request bytes and decodes a `SearchResponse`.
#[derive(Clone, Copy, Default)]
struct RawSearchCodec;

struct RawEncoder;
struct SearchResponseDecoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for SearchResponseDecoder {
    type Item = pb::SearchResponse;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<pb::SearchResponse>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        pb::SearchResponse::decode(bytes)
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }
}

impl Codec for RawSearchCodec {
    type Encode = Vec<u8>;
    type Decode = pb::SearchResponse;
    type Encoder = RawEncoder;
    type Decoder = SearchResponseDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> SearchResponseDecoder {
        SearchResponseDecoder
    }
}

async fn raw_search(server: &TestServer, bytes: Vec<u8>) -> Result<pb::SearchResponse, Status> {
    let mut grpc = tonic::client::Grpc::new(common::channel(server.text).await);
    grpc.ready().await.expect("channel ready");
    let mut request = tonic::Request::new(bytes);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", ALICE.key).parse().expect("ascii"),
    );
    grpc.unary(
        request,
        http::uri::PathAndQuery::from_static("/kyro.v1.Kyro/Search"),
        RawSearchCodec,
    )
    .await
    .map(tonic::Response::into_inner)
}

fn metric(body: &str, series: &str) -> u64 {
    body.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_filters_are_invalid_argument_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("data"));
    let mut alice = server.text(&ALICE).await;
    alice
        .insert(insert(
            "tools",
            1,
            vector(TEXT_DIM, 1),
            &[("tool", string("cargo"))],
        ))
        .await
        .unwrap();
    // The hand encoding is what prost makes for a shallow filter.
    let shallow = raw_search(&server, deep_search_bytes(3)).await.unwrap();
    assert_eq!(shallow.hits.len(), 0, "not(not(not(tool == cargo)))");

    let invalid = r#"kyro_requests_total{instance="text",rpc="Search",code="INVALID_ARGUMENT"}"#;
    let before = metric(&server.http_get("/metrics").1, invalid);
    for depth in [60, 1_000, 100_000] {
        let status = raw_search(&server, deep_search_bytes(depth))
            .await
            .expect_err("a filter nested {depth} deep is refused");
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "depth {depth}: {status:?}"
        );
        assert!(
            status.message().starts_with("filter"),
            "depth {depth}: {}",
            status.message()
        );
        assert!(
            status.message().contains("16"),
            "depth {depth}: {}",
            status.message()
        );
    }
    let after = metric(&server.http_get("/metrics").1, invalid);
    assert_eq!(after - before, 3, "every refusal is counted");

    // Every RPC that takes a filter refuses it the same way (150 levels:
    // beyond the decoder's limit, within what prost encodes recursively).
    let filter = || nested_filter(150);
    let status = alice
        .count(pb::CountRequest {
            namespace: "tools".into(),
            filter: Some(filter()),
        })
        .await
        .expect_err("Count with a 150-deep filter");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let status = alice
        .scroll(pb::ScrollRequest {
            namespace: "tools".into(),
            filter: Some(filter()),
            ..Default::default()
        })
        .await
        .expect_err("Scroll with a 150-deep filter");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let status = alice
        .delete_by_filter(pb::DeleteByFilterRequest {
            namespace: "tools".into(),
            filter: Some(filter()),
        })
        .await
        .expect_err("DeleteByFilter with a 150-deep filter");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let body = server.http_get("/metrics").1;
    for rpc in ["Count", "Scroll", "DeleteByFilter"] {
        let series = format!(
            r#"kyro_requests_total{{instance="text",rpc="{rpc}",code="INVALID_ARGUMENT"}}"#
        );
        assert_eq!(metric(&body, &series), 1, "{rpc}");
    }
    // Nothing was deleted, and the server still answers.
    let reply = alice
        .search(search("tools", vector(TEXT_DIM, 1), 1))
        .await
        .unwrap();
    assert_eq!(reply.into_inner().hits[0].doc_id, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_are_resource_exhausted_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "[limits]\nmax_message_bytes = 4096\n");
    let server = TestServer::start_with(&dir.path().join("data"), Some(&config), &[]);
    let mut alice = server.text(&ALICE).await;
    let big = insert(
        "ns",
        1,
        vector(TEXT_DIM, 1),
        &[("note", string(&"x".repeat(3000)))],
    );
    let status = alice.insert(big.clone()).await.expect_err("over the limit");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("too large"),
        "{}",
        status.message()
    );
    // In a stream, too.
    let message = pb::BulkInsertRequest {
        namespace: "ns".into(),
        points: vec![pb::Point {
            doc_id: big.doc_id,
            vector: big.vector,
            payload: big.payload,
        }],
    };
    let status = alice
        .bulk_insert(tokio_stream::iter(vec![message]))
        .await
        .expect_err("over the limit");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let body = server.http_get("/metrics").1;
    for rpc in ["Insert", "BulkInsert"] {
        let series = format!(
            r#"kyro_requests_total{{instance="text",rpc="{rpc}",code="RESOURCE_EXHAUSTED"}}"#
        );
        assert_eq!(metric(&body, &series), 1, "{rpc}\n{body}");
    }
    alice
        .insert(insert("ns", 1, vector(TEXT_DIM, 1), &[]))
        .await
        .unwrap();
    let count = alice
        .count(pb::CountRequest {
            namespace: "ns".into(),
            filter: None,
        })
        .await
        .unwrap()
        .into_inner()
        .count;
    assert_eq!(count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_insert_message_with_a_bad_namespace_refuses_its_points_and_the_stream_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("data"));
    let mut alice = server.text(&ALICE).await;
    let message = |namespace: &str, first: u64| pb::BulkInsertRequest {
        namespace: namespace.into(),
        points: (first..first + 3)
            .map(|doc_id| pb::Point {
                doc_id,
                vector: vector(TEXT_DIM, doc_id),
                payload: Default::default(),
            })
            .collect(),
    };
    let reply = alice
        .bulk_insert(tokio_stream::iter(vec![
            message("good", 0),
            message("bad name!", 3),
            message("good", 6),
        ]))
        .await
        .expect("the stream completes")
        .into_inner();
    assert_eq!((reply.inserted, reply.failed), (6, 3));
    let refused: Vec<(u64, u64)> = reply.errors.iter().map(|e| (e.index, e.doc_id)).collect();
    assert_eq!(refused, vec![(3, 3), (4, 4), (5, 5)]);
    assert!(
        reply
            .errors
            .iter()
            .all(|e| e.message.starts_with("namespace")),
        "{:?}",
        reply.errors
    );
    let count = alice
        .count(pb::CountRequest {
            namespace: "good".into(),
            filter: None,
        })
        .await
        .unwrap()
        .into_inner()
        .count;
    assert_eq!(count, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_case_insensitive() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("data"));
    let mut grpc = pb::kyro_client::KyroClient::new(common::channel(server.text).await);
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let mut request = tonic::Request::new(pb::StatsRequest {});
        request.metadata_mut().insert(
            "authorization",
            format!("{scheme} {}", ALICE.key).parse().expect("ascii"),
        );
        let stats = grpc.stats(request).await.expect(scheme).into_inner();
        assert_eq!(stats.dim as usize, TEXT_DIM);
    }
}
