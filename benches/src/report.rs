//! The JSON result schema shared by `kyro-bench ann` and the Python anchors
//! (`benches/anchors/run_anchors.py`), so curves from different engines can
//! be plotted together.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::dataset::Matrix;
use crate::stats::{mean_recall, percentile};

/// One recall/throughput point of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// Search beam width.
    pub ef: usize,
    /// Mean recall@k against the exact ground truth.
    pub recall: f64,
    /// Queries per second on one thread, one query at a time.
    pub qps: f64,
    /// Median per-query latency in microseconds.
    pub p50_us: f64,
    /// 99th-percentile per-query latency in microseconds.
    pub p99_us: f64,
    /// Mean per-query latency in microseconds.
    #[serde(default)]
    pub mean_us: f64,
}

impl RunReport {
    /// The figures of one pass over the queries at `ef`: result ids (per
    /// query), per-query latencies in µs and the pass's wall time.
    pub fn from_pass(
        ef: usize,
        ids: &[Vec<u64>],
        gt: &Matrix<i32>,
        k: usize,
        mut latencies_us: Vec<f64>,
        wall_seconds: f64,
    ) -> Self {
        latencies_us.sort_by(f64::total_cmp);
        Self {
            ef,
            recall: mean_recall(ids, gt, k),
            qps: ids.len() as f64 / wall_seconds,
            p50_us: percentile(&latencies_us, 50.0),
            p99_us: percentile(&latencies_us, 99.0),
            mean_us: latencies_us.iter().sum::<f64>() / latencies_us.len().max(1) as f64,
        }
    }
}

/// A full `ann` result: build facts plus one [`RunReport`] per `ef`.
///
/// The key names are a contract with the anchors script and with any
/// dashboards reading these files: add keys, do not rename them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnReport {
    /// Which engine produced the numbers: `kyrodb`, `kyrodb-i8`, `hnswlib`, `faiss-hnsw`.
    pub engine: String,
    /// Base file stem, or `synthetic-N-DIM-C`.
    pub dataset: String,
    /// Number of indexed vectors.
    pub n: usize,
    /// Vector dimension.
    pub dim: usize,
    /// `cosine`, `dot` or `l2`.
    pub metric: String,
    /// HNSW `M`.
    pub m: usize,
    /// HNSW `ef_construction`.
    pub ef_construction: usize,
    /// Threads used for the build (searches always use one).
    pub threads: usize,
    /// `none` or `i8`.
    pub quantization: String,
    /// Wall-clock build time.
    pub build_seconds: f64,
    /// Index memory as reported by the engine.
    pub index_bytes: u64,
    /// Peak RSS of the whole benchmark process (dataset and ground truth included).
    pub peak_rss_bytes: Option<u64>,
    /// One entry per `ef`, in the order measured.
    pub runs: Vec<RunReport>,
    /// Neighbours requested per query (the k of recall@k).
    #[serde(default)]
    pub k: usize,
    /// Number of queries measured.
    #[serde(default)]
    pub n_queries: usize,
    /// `n / build_seconds`.
    #[serde(default)]
    pub build_vectors_per_second: f64,
    /// `index_bytes / n`.
    #[serde(default)]
    pub bytes_per_vector: f64,
    /// With `--storage`: seconds to reopen the instance after a clean close.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_seconds: Option<f64>,
    /// With `--storage`: seconds to reopen after a writer was SIGKILLed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_after_kill_seconds: Option<f64>,
    /// With `--storage`: peak RSS from the reopen to the end of the sweep
    /// (the data set freed), i.e. what serving the instance costs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving_rss_bytes: Option<u64>,
    /// With `--storage`: seconds spent sealing the hot tier to the cold tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flush_seconds: Option<f64>,
}

/// One selectivity of `kyro-bench filter`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilterRun {
    /// Fraction of the base points the filter matches.
    pub selectivity: f64,
    /// Mean recall@k against the exact filtered ground truth.
    pub recall: f64,
    /// Queries per second on one thread.
    pub qps: f64,
    /// How the planner answered most queries: `exact` or `graph`.
    pub plan: String,
    /// Points the filter matched.
    pub matching: u64,
}

/// A `kyro-bench filter` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilterReport {
    /// Base file stem, or `synthetic-N-DIM-C`.
    pub dataset: String,
    /// Number of indexed vectors.
    pub n: usize,
    /// Vector dimension.
    pub dim: usize,
    /// Neighbours per query.
    pub k: usize,
    /// Search `ef` of graph plans.
    pub ef: usize,
    /// One entry per selectivity.
    pub runs: Vec<FilterRun>,
}

impl FilterReport {
    /// Writes the report as pretty JSON.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let json = serde_json::to_string_pretty(self).context("serialising report")?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))
    }
}

impl AnnReport {
    /// Writes the report as pretty JSON.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let json = serde_json::to_string_pretty(self).context("serialising report")?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))
    }
}

/// The subset of a result file that plotting needs. Deliberately lenient so
/// files from other tools (or older versions) still plot.
#[derive(Debug, Clone, Deserialize)]
pub struct CurveFile {
    /// Engine label; the file stem is used when missing.
    #[serde(default)]
    pub engine: Option<String>,
    /// Dataset name, used in the title.
    #[serde(default)]
    pub dataset: Option<String>,
    /// Metric name, used in the title.
    #[serde(default)]
    pub metric: Option<String>,
    /// k of recall@k, used in the axis label.
    #[serde(default)]
    pub k: Option<usize>,
    /// The measured points.
    pub runs: Vec<CurvePoint>,
}

/// One point of a [`CurveFile`].
#[derive(Debug, Clone, Deserialize)]
pub struct CurvePoint {
    /// Search beam width (optional so foreign files still load).
    #[serde(default)]
    pub ef: Option<usize>,
    /// Recall in `[0, 1]`.
    pub recall: f64,
    /// Queries per second.
    pub qps: f64,
}

impl CurveFile {
    /// Loads a result file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a kyro-bench result file", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_has_contract_keys_and_plots() {
        let report = AnnReport {
            engine: "kyrodb".into(),
            dataset: "synthetic-10-2-1".into(),
            n: 10,
            dim: 2,
            metric: "l2".into(),
            m: 16,
            ef_construction: 200,
            threads: 2,
            quantization: "none".into(),
            build_seconds: 0.5,
            index_bytes: 1000,
            peak_rss_bytes: Some(1 << 20),
            runs: vec![RunReport {
                ef: 10,
                recall: 0.9,
                qps: 1000.0,
                p50_us: 900.0,
                p99_us: 2000.0,
                mean_us: 1000.0,
            }],
            k: 10,
            n_queries: 5,
            build_vectors_per_second: 20.0,
            bytes_per_vector: 100.0,
            open_seconds: None,
            open_after_kill_seconds: None,
            serving_rss_bytes: None,
            flush_seconds: None,
        };
        let value = serde_json::to_value(&report).unwrap();
        // Storage-only keys are left out of bare-index reports.
        assert!(value.get("open_seconds").is_none());
        for key in [
            "dataset",
            "n",
            "dim",
            "metric",
            "m",
            "ef_construction",
            "threads",
            "quantization",
            "build_seconds",
            "index_bytes",
            "peak_rss_bytes",
            "runs",
        ] {
            assert!(value.get(key).is_some(), "missing {key}");
        }
        for key in ["ef", "recall", "qps", "p50_us", "p99_us"] {
            assert!(value["runs"][0].get(key).is_some(), "missing runs[].{key}");
        }

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        report.write(&path).unwrap();
        let curve = CurveFile::load(&path).unwrap();
        assert_eq!(curve.engine.as_deref(), Some("kyrodb"));
        assert_eq!(curve.runs[0].ef, Some(10));
    }

    #[test]
    fn curve_file_accepts_anchor_output() {
        let json = r#"{"engine":"hnswlib","dataset":"d","runs":[{"ef":10,"recall":0.5,"qps":1e4,"qps_batch":2e4,"p50_us":1,"p99_us":2}],"extra":true}"#;
        let curve: CurveFile = serde_json::from_str(json).unwrap();
        assert_eq!(curve.runs.len(), 1);
        assert_eq!(curve.k, None);
    }
}
