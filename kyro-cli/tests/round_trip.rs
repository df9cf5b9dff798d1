//! Export → drop → import gives back the same points and payloads, in
//! every format, against a real kyro-server.

mod common;

use common::*;
use kyro_cli::formats::{open_reader, Format};

/// 2,500 points: several Scroll pages and BulkInsert batches, cold
/// segments (hot_max_points is 1,000 in the test server) and the hot tier.
const POINTS: u64 = 2500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_drop_import_gives_back_the_same_points_in_every_format() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::start(root.path());
    let mut client = server.client(&WRITER).await;
    // Ids with gaps, so row numbers would not do.
    let points: Vec<_> = (0..POINTS).map(|i| point(i * 3 + 1)).collect();
    insert(&mut client, "episodes", points).await;
    let original = read_all(&mut client, "episodes").await;
    assert_eq!(original.len(), POINTS as usize);

    for format in ["jsonl", "npy", "fvecs", "parquet"] {
        let file = root.path().join(format!("episodes.{format}"));
        let meta = root.path().join(format!("episodes.{format}.meta.jsonl"));
        let file_arg = file.to_str().unwrap();
        let meta_arg = meta.to_str().unwrap();
        let mut export = vec![
            "export",
            "episodes",
            "-o",
            file_arg,
            "--page-size",
            "700",
            "--json",
        ];
        let mut import = vec![
            "import",
            "episodes",
            "-i",
            file_arg,
            "--batch-size",
            "600",
            "--json",
        ];
        if format == "npy" || format == "fvecs" {
            export.extend(["--meta", meta_arg]);
            import.extend(["--meta", meta_arg]);
        }
        let exported = kyro(&server, &WRITER, &export).json();
        assert_eq!(exported["exported"], POINTS, "{format}");
        assert!(file.exists(), "{format}: no output file");
        assert!(
            !root
                .path()
                .join(format!("episodes.{format}.partial"))
                .exists(),
            "{format}: the partial file was left"
        );

        // The file holds what the server holds, read independently of kyro's import.
        let mut reader = open_reader(
            Format::resolve(None, &file).unwrap(),
            &file,
            (format == "npy" || format == "fvecs").then_some(meta.as_path()),
        )
        .unwrap();
        let mut rows = 0;
        while let Some(record) = reader.next_record().unwrap() {
            let id = record.id.expect("an id");
            let stored = &original[&id];
            assert_eq!(record.payload, stored.payload, "{format}: doc {id}");
            assert_eq!(record.vector, stored.vector, "{format}: doc {id}");
            rows += 1;
        }
        assert_eq!(rows, POINTS, "{format}: rows in the file");

        drop_namespace(&mut client, "episodes").await;
        assert_eq!(count(&mut client, "episodes").await, 0);
        let imported = kyro(&server, &WRITER, &import).json();
        assert_eq!(imported["imported"], POINTS, "{format}");
        assert_eq!(
            imported["batches"], 5,
            "{format}: 2,500 points in batches of 600"
        );
        assert!(
            !root
                .path()
                .join(format!("episodes.{format}.kyro-import"))
                .exists(),
            "{format}: a completed import removes its checkpoint"
        );
        let back = read_all(&mut client, "episodes").await;
        assert_same_points(&original, &back, format);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vectors_only_files_without_meta_get_row_numbers_as_ids() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::start(root.path());
    let mut client = server.client(&WRITER).await;
    insert(
        &mut client,
        "source",
        (0..50).map(|i| point(i + 100)).collect(),
    )
    .await;
    let file = root.path().join("v.npy");
    let export = kyro(
        &server,
        &WRITER,
        &["export", "source", "-o", file.to_str().unwrap()],
    );
    export.ok();
    assert!(
        export.stderr.contains("npy files hold vectors only"),
        "the loss of ids and payloads is announced: {}",
        export.stderr
    );
    kyro(
        &server,
        &WRITER,
        &[
            "import",
            "copy",
            "-i",
            file.to_str().unwrap(),
            "--id-start",
            "1000",
        ],
    )
    .ok();
    let source = read_all(&mut client, "source").await;
    let copy = read_all(&mut client, "copy").await;
    assert_eq!(
        copy.keys().copied().collect::<Vec<_>>(),
        (1000..1050).collect::<Vec<_>>()
    );
    for (row, original) in source.values().enumerate() {
        let copied = &copy[&(1000 + row as u64)];
        assert_eq!(copied.vector, original.vector, "row {row}");
        assert!(copied.payload.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_with_a_filter_writes_only_matching_points() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::start(root.path());
    let mut client = server.client(&WRITER).await;
    insert(&mut client, "episodes", (0..300).map(point).collect()).await;
    let file = root.path().join("cargo.jsonl");
    let filter = r#"{"eq": {"key": "tool", "value": {"string_value": "cargo"}}}"#;
    let run = kyro(
        &server,
        &WRITER,
        &[
            "export",
            "episodes",
            "-o",
            file.to_str().unwrap(),
            "--filter",
            filter,
            "--json",
        ],
    );
    let expected = (0..300u64)
        .filter(|i| !i.is_multiple_of(7) && i.is_multiple_of(3))
        .count();
    assert_eq!(run.json()["exported"], expected as u64);
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.lines().count(), expected);
    assert!(text.lines().all(|l| l.contains("\"tool\":\"cargo\"")));
}
