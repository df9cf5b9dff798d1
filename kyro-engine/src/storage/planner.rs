//! The query planner: per search, an exact scan of the candidate points or a
//! filter-aware graph traversal, from exact cardinalities (the payload index
//! evaluates a filter to a bitmap, so its size is known, not estimated).

use super::config::PlannerConfig;
use super::request::QueryPlan;

/// Chooses how to answer a search over a namespace of `live` points of which
/// `matching` pass the filter (`None`: no filter).
///
/// Exact when the namespace is small (recall 1.0 costs little), when few
/// points match (scoring them all is cheaper than walking a graph mostly made
/// of non-matching points), or when the matching fraction is so low that a
/// filtered traversal would visit too many non-matching points to stay
/// accurate. Otherwise the graph.
pub(crate) fn plan(config: &PlannerConfig, live: u64, matching: Option<u64>) -> QueryPlan {
    if live < config.exact_namespace_points as u64 {
        return QueryPlan::Exact;
    }
    match matching {
        None => QueryPlan::Graph,
        Some(matching) => {
            let selectivity = matching as f64 / live as f64;
            if matching <= config.exact_filter_matches as u64
                || selectivity < config.exact_filter_selectivity
            {
                QueryPlan::Exact
            } else {
                QueryPlan::Graph
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_namespaces_are_always_searched_exactly() {
        let config = PlannerConfig::default();
        assert_eq!(plan(&config, 9_999, None), QueryPlan::Exact);
        assert_eq!(plan(&config, 9_999, Some(9_000)), QueryPlan::Exact);
        assert_eq!(plan(&config, 50_000, None), QueryPlan::Graph);
    }

    #[test]
    fn selective_filters_scan_and_broad_filters_traverse() {
        let config = PlannerConfig::default();
        assert_eq!(plan(&config, 1_000_000, Some(1_500)), QueryPlan::Exact);
        assert_eq!(plan(&config, 1_000_000, Some(8_000)), QueryPlan::Exact);
        assert_eq!(plan(&config, 1_000_000, Some(15_000)), QueryPlan::Graph);
        assert_eq!(plan(&config, 50_000, Some(5_000)), QueryPlan::Exact);
        assert_eq!(plan(&config, 50_000, Some(9_000)), QueryPlan::Graph);
        assert_eq!(plan(&config, 1_000_000, Some(500_000)), QueryPlan::Graph);
        assert_eq!(plan(&config, 50_000, Some(25_000)), QueryPlan::Graph);
    }
}
