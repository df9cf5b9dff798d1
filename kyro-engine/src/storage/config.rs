//! Configuration of a storage instance, with every default in one place.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::distance::Metric;
use crate::error::EngineError;
use crate::hnsw::HnswParams;
use crate::index::{Quantization, MAX_EF};

/// When an acknowledged write is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// A write is acknowledged only once its log record is fsynced.
    /// Concurrent writers share fsyncs (group commit).
    #[default]
    Always,
    /// Writes are acknowledged once in the operating system's page cache; a
    /// background thread fsyncs the log every this many milliseconds, which
    /// bounds what a power loss can take. A process crash loses nothing.
    IntervalMs(u64),
    /// The log is never fsynced by the engine (the OS flushes it eventually).
    /// A process crash loses nothing; a power loss may lose recent writes.
    Never,
}

impl fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsyncPolicy::Always => f.write_str("always"),
            FsyncPolicy::IntervalMs(ms) => write!(f, "interval_ms={ms}"),
            FsyncPolicy::Never => f.write_str("never"),
        }
    }
}

impl FromStr for FsyncPolicy {
    type Err = EngineError;

    /// `always`, `never`, `interval_ms=N` (or `interval_ms:N`, or a bare
    /// number of milliseconds).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let invalid = || EngineError::InvalidParameter {
            field: "fsync",
            reason: format!("{s:?}: expected always, never or interval_ms=N (N ≥ 1)"),
        };
        match lower.as_str() {
            "always" => return Ok(FsyncPolicy::Always),
            "never" => return Ok(FsyncPolicy::Never),
            _ => {}
        }
        let number = lower
            .strip_prefix("interval_ms")
            .map(|rest| rest.trim_start_matches(['=', ':', ' ']))
            .unwrap_or(&lower);
        match number.parse::<u64>() {
            Ok(ms) if ms >= 1 => Ok(FsyncPolicy::IntervalMs(ms)),
            _ => Err(invalid()),
        }
    }
}

/// When the background optimizer merges and rewrites cold segments.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptimizerConfig {
    /// Run the optimizer (and the background sealer) in a background thread.
    /// When off, segments change only through [`crate::storage::Instance::flush`]
    /// and [`crate::storage::Instance::optimize`].
    pub background: bool,
    /// How often the background thread looks for work.
    pub interval: Duration,
    /// A cold segment with fewer live points than this is "small".
    pub small_segment_points: usize,
    /// Merge the small segments of a namespace once there are this many.
    pub merge_min_segments: usize,
    /// Rewrite a segment once this fraction of its points has been deleted.
    pub rewrite_deleted_fraction: f64,
    /// Threads a merge or rewrite builds its graph with.
    pub build_threads: usize,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self {
            background: true,
            interval: Duration::from_secs(5),
            small_segment_points: 200_000,
            merge_min_segments: 4,
            rewrite_deleted_fraction: 0.2,
            build_threads: 1,
        }
    }
}

/// Sizes of the learned-frequency caches in front of the tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Bytes of search results cached (0 turns the query cache off).
    pub query_cache_bytes: u64,
    /// Bytes of cold points (payload + vector) cached (0 turns it off).
    pub point_cache_bytes: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            query_cache_bytes: 64 << 20,
            point_cache_bytes: 64 << 20,
        }
    }
}

/// How searches are planned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlannerConfig {
    /// A namespace with fewer live points than this is always searched
    /// exactly (recall 1.0).
    pub exact_namespace_points: usize,
    /// A filter matching at most this many points is answered by an exact
    /// scan of the matching points instead of a graph traversal (on MiniLM
    /// the scan wins up to ~8,000 matches: `docs/benchmarks.md`).
    pub exact_filter_matches: usize,
    /// A filter matching less than this fraction of the namespace is scanned
    /// exactly too: the graph walk would visit too many non-matching points.
    pub exact_filter_selectivity: f64,
}

impl Default for PlannerConfig {
    fn default() -> Self {
        Self {
            exact_namespace_points: 10_000,
            exact_filter_matches: 8_000,
            exact_filter_selectivity: 0.01,
        }
    }
}

/// Everything an [`crate::storage::Instance`] is configured with.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceConfig {
    /// Dimension of every vector of the instance.
    pub dim: usize,
    /// How vectors are compared.
    pub metric: Metric,
    /// Graph parameters of every segment.
    pub hnsw: HnswParams,
    /// Traversal precision of cold segments (`I8`: traverse the `i8` copy,
    /// rescore from the `f32` file). The hot tier always traverses `f32`.
    pub cold_quantization: Quantization,
    /// When acknowledged writes reach the disk.
    pub fsync: FsyncPolicy,
    /// The hot segment of a namespace is sealed into a cold segment once it
    /// holds this many points.
    pub hot_max_points: usize,
    /// Query planning thresholds.
    pub planner: PlannerConfig,
    /// Background merges and rewrites.
    pub optimizer: OptimizerConfig,
    /// Cache sizes.
    pub cache: CacheConfig,
    /// Default `ef` of a search that does not give one.
    pub default_ef: usize,
}

impl InstanceConfig {
    /// Defaults for an instance of `dim` dimensions compared by `metric`.
    pub fn new(dim: usize, metric: Metric) -> Self {
        Self {
            dim,
            metric,
            hnsw: HnswParams::default(),
            cold_quantization: Quantization::I8,
            fsync: FsyncPolicy::Always,
            hot_max_points: 100_000,
            planner: PlannerConfig::default(),
            optimizer: OptimizerConfig::default(),
            cache: CacheConfig::default(),
            default_ef: 64,
        }
    }

    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), EngineError> {
        crate::index::IndexConfig::new(self.dim, self.metric).validate()?;
        self.hnsw.validate()?;
        let positive = |field: &'static str, value: usize| {
            if value == 0 {
                Err(EngineError::InvalidParameter {
                    field,
                    reason: "must be at least 1".into(),
                })
            } else {
                Ok(())
            }
        };
        positive("hot_max_points", self.hot_max_points)?;
        positive("default_ef", self.default_ef)?;
        positive(
            "optimizer.merge_min_segments",
            self.optimizer.merge_min_segments,
        )?;
        positive("optimizer.build_threads", self.optimizer.build_threads)?;
        // The background threads wake up this often: zero would spin.
        positive(
            "optimizer.interval (ms)",
            self.optimizer.interval.as_millis().min(usize::MAX as u128) as usize,
        )?;
        if !(0.0..=1.0).contains(&self.optimizer.rewrite_deleted_fraction) {
            return Err(EngineError::InvalidParameter {
                field: "optimizer.rewrite_deleted_fraction",
                reason: format!(
                    "must be in 0..=1, got {}",
                    self.optimizer.rewrite_deleted_fraction
                ),
            });
        }
        if !(0.0..=1.0).contains(&self.planner.exact_filter_selectivity) {
            return Err(EngineError::InvalidParameter {
                field: "planner.exact_filter_selectivity",
                reason: format!(
                    "must be in 0..=1, got {}",
                    self.planner.exact_filter_selectivity
                ),
            });
        }
        Ok(())
    }

    /// The graph configuration of a segment of this instance.
    pub(crate) fn index_config(&self) -> crate::index::IndexConfig {
        crate::index::IndexConfig {
            dim: self.dim,
            metric: self.metric,
            // Every point is made findable at the ef searches use by default
            // (a default above what a search accepts is checked at that).
            hnsw: HnswParams {
                findable_ef: self.default_ef.min(MAX_EF),
                ..self.hnsw
            },
            quantization: Quantization::None,
        }
    }

    /// The graph settings of a merge's new cold segment: with `i8` cold
    /// segments, the graph is built with its `i8` copy, so the findability
    /// pass walks it as the segment's searches will (an `f32` check left
    /// 579 of 100,000 random points missed by the `i8` walk at ef 64, an
    /// `i8` check 91: `docs/benchmarks.md`, "Crash test"), and the segment
    /// keeps that copy.
    pub(crate) fn cold_index_config(&self) -> crate::index::IndexConfig {
        crate::index::IndexConfig {
            quantization: self.cold_quantization,
            ..self.index_config()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_default_ef_gives_graph_settings_that_validate() {
        // The findability pass runs at the default ef; a large one (searches
        // accept up to MAX_EF) must not make the graphs unbuildable.
        for default_ef in [1, 64, 20_000, MAX_EF, MAX_EF + 1] {
            let mut config = InstanceConfig::new(8, Metric::Cosine);
            config.default_ef = default_ef;
            assert_eq!(
                config.index_config().validate(),
                Ok(()),
                "default_ef {default_ef}"
            );
            assert_eq!(
                config.cold_index_config().validate(),
                Ok(()),
                "default_ef {default_ef}"
            );
        }
    }

    #[test]
    fn fsync_policy_parses_every_documented_form() {
        assert_eq!("always".parse::<FsyncPolicy>(), Ok(FsyncPolicy::Always));
        assert_eq!("NEVER".parse::<FsyncPolicy>(), Ok(FsyncPolicy::Never));
        assert_eq!(
            "interval_ms=100".parse::<FsyncPolicy>(),
            Ok(FsyncPolicy::IntervalMs(100))
        );
        assert_eq!(
            "250".parse::<FsyncPolicy>(),
            Ok(FsyncPolicy::IntervalMs(250))
        );
        assert!("interval_ms=0".parse::<FsyncPolicy>().is_err());
        assert!("sometimes".parse::<FsyncPolicy>().is_err());
    }

    #[test]
    fn config_rejects_out_of_range_fields_by_name() {
        let mut config = InstanceConfig::new(8, Metric::Cosine);
        config.hot_max_points = 0;
        let err = config.validate().unwrap_err();
        assert!(err.to_string().contains("hot_max_points"), "{err}");
        let mut config = InstanceConfig::new(0, Metric::Cosine);
        config.hot_max_points = 10;
        assert!(config.validate().unwrap_err().to_string().contains("dim"));
    }
}
