//! The `kyro-bench` binary end to end: files written by `synth` are read back
//! by `ann`, and the JSON report has the documented shape and sane values.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn kyro_bench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kyro-bench"))
        .args(args)
        .output()
        .expect("kyro-bench runs")
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).to_string_lossy().into_owned()
}

#[test]
fn synth_then_ann_writes_the_documented_json_with_high_recall() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (base, query, gt, json) = (
        path(dir.path(), "b.fvecs"),
        path(dir.path(), "q.fvecs"),
        path(dir.path(), "g.ivecs"),
        path(dir.path(), "out.json"),
    );
    let synth = kyro_bench(&[
        "synth",
        "--synthetic",
        "3000,16,8",
        "--queries",
        "100",
        "--out-base",
        &base,
        "--out-query",
        &query,
        "--out-gt",
        &gt,
        "--metric",
        "l2",
        "--k",
        "20",
    ]);
    assert!(
        synth.status.success(),
        "{}",
        String::from_utf8_lossy(&synth.stderr)
    );

    let ann = kyro_bench(&[
        "ann",
        "--base",
        &base,
        "--query",
        &query,
        "--gt",
        &gt,
        "--metric",
        "l2",
        "--ef",
        "10,80",
        "--k",
        "10",
        "--threads",
        "2",
        "--json",
        &json,
    ]);
    assert!(
        ann.status.success(),
        "{}",
        String::from_utf8_lossy(&ann.stderr)
    );

    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written")).expect("json");
    for key in [
        "dataset",
        "n",
        "dim",
        "build_seconds",
        "index_bytes",
        "peak_rss_bytes",
        "runs",
    ] {
        assert!(report.get(key).is_some(), "missing {key}");
    }
    assert_eq!(report["n"], 3000);
    assert_eq!(report["dim"], 16);
    assert!(report["index_bytes"].as_u64().expect("bytes") >= 3000 * 16 * 4);
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2);
    for run in runs {
        for key in ["ef", "recall", "qps", "p50_us", "p99_us"] {
            assert!(run.get(key).is_some(), "run missing {key}");
        }
        assert!(run["qps"].as_f64().expect("qps") > 0.0);
        assert!(run["p50_us"].as_f64() <= run["p99_us"].as_f64());
    }
    let high = runs[1]["recall"].as_f64().expect("recall");
    assert!(high >= 0.95, "recall at ef=80: {high}");
}

#[test]
fn truncated_input_file_is_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = path(dir.path(), "cut.fvecs");
    // Header says 8 dimensions, but only 3 floats follow.
    let mut bytes = 8i32.to_le_bytes().to_vec();
    bytes.extend(std::iter::repeat_n(0u8, 12));
    std::fs::write(&base, bytes).expect("write");
    let out = kyro_bench(&["ann", "--base", &base, "--query", &base, "--ef", "10"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cut.fvecs"),
        "error names the file: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn cache_reports_every_trace_size_and_policy_with_hit_ratios_in_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = path(dir.path(), "cache.json");
    let out = kyro_bench(&[
        "cache",
        "--keys",
        "2000",
        "--requests",
        "20000",
        "--seed",
        "3",
        "--json",
        &json,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written")).expect("json");
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 4 * 3 * 3);
    for trace in ["zipf-0.8", "zipf-1.0", "zipf-1.2", "shifting"] {
        for size_pct in [0.5, 1.0, 10.0] {
            for policy in ["kyro", "lru", "moka"] {
                let run = runs
                    .iter()
                    .find(|r| {
                        r["trace"] == trace
                            && r["size_pct"].as_f64() == Some(size_pct)
                            && r["policy"] == policy
                    })
                    .unwrap_or_else(|| panic!("no run for {trace} {size_pct}% {policy}"));
                let ratio = run["hit_ratio"].as_f64().expect("hit_ratio");
                assert!((0.0..=1.0).contains(&ratio), "{trace} {policy}: {ratio}");
            }
        }
    }
    // The printed table carries the same figures as the JSON: each row's
    // hit ratios, and a star on the best of the row.
    let table = String::from_utf8_lossy(&out.stdout);
    let ratio_of = |trace: &str, size_pct: f64, policy: &str| -> f64 {
        runs.iter()
            .find(|r| {
                r["trace"] == trace
                    && r["size_pct"].as_f64() == Some(size_pct)
                    && r["policy"] == policy
            })
            .and_then(|r| r["hit_ratio"].as_f64())
            .expect("a run")
    };
    let mut rows_checked = 0;
    for line in table.lines() {
        // trace  size%  entries  kyro  lru  moka  kyro-moka; the best
        // ratio of the row carries a star.
        let cells: Vec<&str> = line.split_whitespace().collect();
        let Some(trace) = cells
            .first()
            .filter(|t| t.starts_with("zipf") || **t == "shifting")
        else {
            continue;
        };
        assert_eq!(cells.len(), 7, "{line}");
        let size_pct: f64 = cells[1].trim_end_matches('%').parse().expect("size");
        let printed: Vec<f64> = cells[3..6]
            .iter()
            .map(|c| c.trim_end_matches('*').parse().expect("a hit ratio"))
            .collect();
        let expected: Vec<f64> = ["kyro", "lru", "moka"]
            .iter()
            .map(|p| ratio_of(trace, size_pct, p))
            .collect();
        for (got, want) in printed.iter().zip(&expected) {
            assert!((got - want).abs() <= 0.000_051, "{line}: {got} vs {want}");
        }
        let difference: f64 = cells[6].parse().expect("kyro-moka");
        assert!(
            (difference - (expected[0] - expected[2])).abs() <= 0.000_11,
            "{line}"
        );
        let best = expected.iter().cloned().fold(f64::MIN, f64::max);
        for (cell, ratio) in cells[3..6].iter().zip(&expected) {
            assert_eq!(
                cell.ends_with('*'),
                *ratio == best,
                "{line}: star misplaced"
            );
        }
        rows_checked += 1;
    }
    assert_eq!(rows_checked, 4 * 3, "a row per trace and size:\n{table}");
}
