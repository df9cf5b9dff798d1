//! Ranking of retrieved episodes. Four components, each in [0, 1]:
//!
//! - `similarity`: the engine's cosine similarity (clamped at 0).
//! - `precondition`: how well the episode's preconditions (and environment)
//!   match the caller's `current_state`: per shared key, 1.0 for equal
//!   values, version-aware for versions (`3.11` vs `3.11.4`: 0.9; same
//!   major.minor: 0.7; same major: 0.4; else 0), token overlap otherwise;
//!   the mean over shared keys. An episode without preconditions, or a
//!   query without state, scores a neutral 0.5 — not a perfect 1.0.
//! - `recency`: `0.5^(age / 30 days)` since the episode was last seen.
//! - `usage`: `0.7 × fix success rate + 0.3 × popularity`, where the rate is
//!   `(successes + 1) / (attempts + 2)` (0.5 with no feedback) and
//!   popularity `min(1, ln(1 + retrievals) / ln(101))`.
//!
//! The score is their weighted sum with weights 0.5 / 0.3 / 0.1 / 0.1 by
//! default, normalised to sum 1 when a caller sends others. An episode whose
//! `resolved_in` versions are met by `current_state` is stale: its score is
//! halved and the result says why.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::store::{BodySummary, EpisodeRow};

/// Half-life of the recency component, days.
pub const RECENCY_HALF_LIFE_DAYS: f64 = 30.0;
/// What a stale episode's score is multiplied by.
pub const STALE_FACTOR: f32 = 0.5;

/// Weights of the four components.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RankingWeights {
    #[serde(default)]
    pub similarity: f32,
    #[serde(default)]
    pub precondition: f32,
    #[serde(default)]
    pub recency: f32,
    #[serde(default)]
    pub usage: f32,
}

impl Default for RankingWeights {
    fn default() -> Self {
        Self {
            similarity: 0.5,
            precondition: 0.3,
            recency: 0.1,
            usage: 0.1,
        }
    }
}

impl RankingWeights {
    /// Normalised to sum 1; a 422 on `ranking_weights` when a weight is
    /// negative or not finite, or all are 0.
    pub fn normalised(self) -> Result<RankingWeights, ApiError> {
        let all = [self.similarity, self.precondition, self.recency, self.usage];
        if all.iter().any(|w| !w.is_finite() || *w < 0.0) {
            return Err(ApiError::validation(
                "ranking_weights",
                "weights must be finite and non-negative",
            ));
        }
        let sum: f32 = all.iter().sum();
        if sum <= 0.0 {
            return Err(ApiError::validation(
                "ranking_weights",
                "at least one weight must be positive",
            ));
        }
        Ok(RankingWeights {
            similarity: self.similarity / sum,
            precondition: self.precondition / sum,
            recency: self.recency / sum,
            usage: self.usage / sum,
        })
    }
}

/// The four components of one result.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Components {
    pub similarity: f32,
    pub precondition: f32,
    pub recency: f32,
    pub usage: f32,
}

/// A ranked episode.
#[derive(Debug, Clone)]
pub struct Ranked {
    pub row: EpisodeRow,
    pub components: Components,
    pub score: f32,
    /// Why it was demoted (stale by version), if it was.
    pub demoted: Option<String>,
    pub explanation: String,
    /// The episode's stored resolution, if it has one.
    pub resolution: Option<String>,
}

/// A parsed version: numeric components (`3.11.4` → [3, 11, 4]).
fn version(text: &str) -> Option<Vec<u64>> {
    let text = text.trim().trim_start_matches(['v', 'V']);
    if text.is_empty() {
        return None;
    }
    let parts: Option<Vec<u64>> = text.split('.').map(|p| p.parse().ok()).collect();
    parts.filter(|p| !p.is_empty())
}

/// A version requirement such as `>=1.26.2`, `<2`, `==3.11` or `1.2`
/// (bare: at least).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionConstraint {
    op: &'static str,
    version: Vec<u64>,
}

impl VersionConstraint {
    /// Parses a constraint; `None` when it is not one.
    pub fn parse(text: &str) -> Option<VersionConstraint> {
        let text = text.trim();
        for op in [">=", "<=", "==", ">", "<", "="] {
            if let Some(rest) = text.strip_prefix(op) {
                return Some(VersionConstraint {
                    op: if op == "=" { "==" } else { op },
                    version: version(rest)?,
                });
            }
        }
        Some(VersionConstraint {
            op: ">=",
            version: version(text)?,
        })
    }

    /// Whether `value` (a version) meets the constraint.
    pub fn is_met_by(&self, value: &str) -> bool {
        let Some(have) = version(value) else {
            return false;
        };
        let width = have.len().max(self.version.len());
        let pad = |v: &[u64]| {
            let mut v = v.to_vec();
            v.resize(width, 0);
            v
        };
        let (have, want) = (pad(&have), pad(&self.version));
        match self.op {
            ">=" => have >= want,
            ">" => have > want,
            "<=" => have <= want,
            "<" => have < want,
            _ => have == want,
        }
    }
}

fn tokens(text: &str) -> std::collections::BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(|t| t.to_lowercase())
        .collect()
}

fn jaccard(a: &str, b: &str) -> f32 {
    let (a, b) = (tokens(a), tokens(b));
    let union = a.union(&b).count();
    if union == 0 {
        return 0.0;
    }
    a.intersection(&b).count() as f32 / union as f32
}

/// How well a stored value matches the current one.
fn value_match(stored: &str, current: &str) -> f32 {
    if stored.eq_ignore_ascii_case(current) {
        return 1.0;
    }
    if let (Some(a), Some(b)) = (version(stored), version(current)) {
        let shared = a.len().min(b.len());
        if a[..shared] == b[..shared] {
            return 0.9;
        }
        if a.len() >= 2 && b.len() >= 2 && a[..2] == b[..2] {
            return 0.7;
        }
        if a[0] == b[0] {
            return 0.4;
        }
        return 0.0;
    }
    jaccard(stored, current)
}

/// The precondition component (see the module doc).
pub fn precondition_score(
    expected: &BTreeMap<String, String>,
    current: &BTreeMap<String, String>,
) -> f32 {
    if expected.is_empty() || current.is_empty() {
        return 0.5;
    }
    let scores: Vec<f32> = expected
        .iter()
        .filter_map(|(key, value)| current.get(key).map(|now| value_match(value, now)))
        .collect();
    if scores.is_empty() {
        // No shared key: only the wording can tell.
        let all_expected: Vec<&str> = expected.values().map(String::as_str).collect();
        let all_current: Vec<&str> = current.values().map(String::as_str).collect();
        return 0.4 + 0.2 * jaccard(&all_expected.join(" "), &all_current.join(" "));
    }
    scores.iter().sum::<f32>() / scores.len() as f32
}

/// The recency component for an episode last seen at `last_seen`.
pub fn recency_score(last_seen: i64, now: i64) -> f32 {
    let days = (now - last_seen).max(0) as f64 / 86_400.0;
    0.5f64.powf(days / RECENCY_HALF_LIFE_DAYS) as f32
}

/// The usage component.
pub fn usage_score(row: &EpisodeRow) -> f32 {
    let attempts = row.fix_successes + row.fix_failures;
    let rate = (row.fix_successes as f64 + 1.0) / (attempts as f64 + 2.0);
    let popularity = ((1.0 + row.retrievals as f64).ln() / 101f64.ln()).min(1.0);
    (0.7 * rate + 0.3 * popularity) as f32
}

/// The expected state of an episode: its preconditions, plus its
/// environment's scalar entries where the preconditions do not say.
pub fn expected_state(body: &BodySummary) -> BTreeMap<String, String> {
    let mut expected = BTreeMap::new();
    if let Some(env) = body.environment_info.as_object() {
        for (key, value) in env {
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => continue,
            };
            expected.insert(key.trim().to_ascii_lowercase(), text);
        }
    }
    if let Some(pre) = body.preconditions.as_object() {
        for (key, value) in pre {
            if let Some(text) = value.as_str() {
                expected.insert(key.clone(), text.to_owned());
            }
        }
    }
    expected
}

/// Why a stale episode is demoted: a `resolved_in` version (an object of
/// package → constraint) the current state meets.
pub fn staleness(
    resolved_in: &serde_json::Value,
    current: &BTreeMap<String, String>,
) -> Option<String> {
    let resolved = resolved_in.as_object()?;
    for (package, constraint) in resolved {
        let constraint_text = constraint.as_str()?;
        let Some(have) = current.get(&package.to_ascii_lowercase()) else {
            continue;
        };
        if VersionConstraint::parse(constraint_text).is_some_and(|c| c.is_met_by(have)) {
            return Some(format!(
                "fixed in {package}{}{constraint_text}; current {package} is {have}",
                if constraint_text.starts_with(['<', '>', '=']) {
                    ""
                } else {
                    " "
                }
            ));
        }
    }
    None
}

fn excerpt(text: &str, chars: usize) -> String {
    let mut out: String = text.chars().take(chars).collect();
    if text.chars().count() > chars {
        out.push('…');
    }
    out.replace('\n', " ")
}

/// Ranks one episode.
pub fn rank(
    row: EpisodeRow,
    similarity: f32,
    current: &BTreeMap<String, String>,
    weights: &RankingWeights,
    now: i64,
) -> Ranked {
    let body = row.body.summary();
    let expected = expected_state(&body);
    let components = Components {
        similarity: similarity.clamp(0.0, 1.0),
        precondition: precondition_score(&expected, current),
        recency: recency_score(row.last_seen_at, now),
        usage: usage_score(&row),
    };
    let mut score = weights.similarity * components.similarity
        + weights.precondition * components.precondition
        + weights.recency * components.recency
        + weights.usage * components.usage;
    let demoted = staleness(&body.resolved_in, current);
    if demoted.is_some() {
        score *= STALE_FACTOR;
    }
    let goal = body.goal.as_deref().unwrap_or_default();
    let attempts = row.fix_successes + row.fix_failures;
    let mut explanation = format!(
        "{:.0}% similar to \"{}\" ({}, seen {}×)",
        components.similarity * 100.0,
        excerpt(goal, 60),
        row.error_class,
        row.occurrences
    );
    let shared: Vec<&String> = expected
        .keys()
        .filter(|k| current.contains_key(*k))
        .collect();
    if !shared.is_empty() {
        explanation.push_str(&format!(
            "; preconditions {:.0}% matched on {}",
            components.precondition * 100.0,
            shared
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if attempts > 0 {
        explanation.push_str(&format!("; fix worked {}/{}", row.fix_successes, attempts));
    }
    if row.is_skill() {
        explanation.push_str("; a proven skill");
    }
    if let Some(reason) = &demoted {
        explanation.push_str(&format!("; demoted: {reason}"));
    }
    Ranked {
        row,
        components,
        score,
        demoted,
        explanation,
        resolution: body.resolution,
    }
}

/// Skills first, then by score (then by id, for a stable order).
pub fn sort(ranked: &mut [Ranked]) {
    ranked.sort_by(order);
}

/// The order of [`sort`]: skills first, then by score (higher first), then
/// by id.
pub fn order(a: &Ranked, b: &Ranked) -> std::cmp::Ordering {
    b.row
        .is_skill()
        .cmp(&a.row.is_skill())
        .then(b.score.total_cmp(&a.score))
        .then(a.row.id.cmp(&b.row.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn preconditions_compare_versions_and_stay_neutral_without_data() {
        let stored = map(&[("python", "3.11.4")]);
        assert_eq!(
            precondition_score(&stored, &map(&[("python", "3.11.4")])),
            1.0
        );
        assert_eq!(
            precondition_score(&stored, &map(&[("python", "3.11")])),
            0.9
        );
        assert_eq!(
            precondition_score(&stored, &map(&[("python", "3.11.9")])),
            0.7
        );
        assert_eq!(precondition_score(&stored, &map(&[("python", "3.9")])), 0.4);
        assert_eq!(precondition_score(&stored, &map(&[("python", "2.7")])), 0.0);
        assert_eq!(
            precondition_score(&BTreeMap::new(), &map(&[("python", "3")])),
            0.5
        );
        assert_eq!(precondition_score(&stored, &BTreeMap::new()), 0.5);
        let os = map(&[("os", "ubuntu 22.04 lts")]);
        let score = precondition_score(&os, &map(&[("os", "Ubuntu 22.04")]));
        assert!(score > 0.5 && score < 1.0, "{score}");
    }

    #[test]
    fn constraints_and_staleness() {
        let c = VersionConstraint::parse(">=1.26.2").unwrap();
        assert!(c.is_met_by("1.26.2"));
        assert!(c.is_met_by("1.27"));
        assert!(!c.is_met_by("1.26.1"));
        assert!(VersionConstraint::parse("<2").unwrap().is_met_by("1.9.9"));
        assert!(VersionConstraint::parse("1.2").unwrap().is_met_by("1.2.0"));
        assert!(VersionConstraint::parse("soon").is_none());
        let resolved = serde_json::json!({"numpy": ">=1.26.2"});
        assert!(staleness(&resolved, &map(&[("numpy", "1.26.3")])).is_some());
        assert!(staleness(&resolved, &map(&[("numpy", "1.25.0")])).is_none());
        assert!(staleness(&resolved, &BTreeMap::new()).is_none());
        assert!(staleness(&serde_json::Value::Null, &map(&[("numpy", "2")])).is_none());
    }

    #[test]
    fn weights_normalise_and_bad_ones_name_the_field() {
        let w = RankingWeights {
            similarity: 2.0,
            precondition: 1.0,
            recency: 1.0,
            usage: 0.0,
        }
        .normalised()
        .unwrap();
        assert!((w.similarity - 0.5).abs() < 1e-6);
        assert!((w.precondition - 0.25).abs() < 1e-6);
        let bad = RankingWeights {
            similarity: -1.0,
            ..RankingWeights::default()
        };
        assert!(
            matches!(bad.normalised(), Err(ApiError::Validation { field, .. }) if field == "ranking_weights")
        );
        let sum: f32 = {
            let d = RankingWeights::default().normalised().unwrap();
            d.similarity + d.precondition + d.recency + d.usage
        };
        assert!((sum - 1.0).abs() < 1e-6);
    }

    #[test]
    fn recency_halves_every_half_life() {
        assert_eq!(recency_score(0, 0), 1.0);
        let half = recency_score(0, 30 * 86_400);
        assert!((half - 0.5).abs() < 1e-6);
    }
}
