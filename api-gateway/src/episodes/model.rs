//! Episode bodies as clients send them (field names of the earlier Python
//! service), their documented limits (each enforced with a 422 naming the
//! field), and the stored, redacted form.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::engine::IMAGE_DIM;
use crate::error::ApiError;

/// Limits of a capture body (documented in `docs/gateway.md`).
pub mod limits {
    pub const GOAL_CHARS: std::ops::RangeInclusive<usize> = 10..=2_000;
    pub const TOOLS: std::ops::RangeInclusive<usize> = 1..=20;
    pub const TOOL_CHARS: usize = 200;
    pub const ACTIONS: std::ops::RangeInclusive<usize> = 1..=50;
    pub const ACTION_CHARS: usize = 2_000;
    pub const TRACE_CHARS: std::ops::RangeInclusive<usize> = 10..=20_000;
    pub const DIFF_CHARS: usize = 50_000;
    pub const RESOLUTION_CHARS: usize = 10_000;
    pub const TAGS: usize = 20;
    pub const TAG_CHARS: usize = 64;
    pub const MAP_ENTRIES: usize = 100;
    pub const MAP_VALUE_CHARS: usize = 1_000;
    pub const ENVIRONMENT_BYTES: usize = 20_000;
    pub const SCREENSHOT_BYTES: usize = 5 * 1024 * 1024;
    pub const NAME_CHARS: usize = 200;
}

/// The error classes a capture may name.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    ConfigurationError,
    PermissionError,
    NetworkError,
    ResourceError,
    DependencyError,
    TimeoutError,
    ValidationError,
    Unknown,
}

impl ErrorClass {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::ConfigurationError => "configuration_error",
            ErrorClass::PermissionError => "permission_error",
            ErrorClass::NetworkError => "network_error",
            ErrorClass::ResourceError => "resource_error",
            ErrorClass::DependencyError => "dependency_error",
            ErrorClass::TimeoutError => "timeout_error",
            ErrorClass::ValidationError => "validation_error",
            ErrorClass::Unknown => "unknown",
        }
    }
}

/// Key → value pairs given as an object (`{"python": "3.11"}`) or as a list
/// of `key=value` strings; both normalise to one sorted map.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(untagged)]
pub enum KeyValues {
    Map(serde_json::Map<String, serde_json::Value>),
    List(Vec<String>),
    #[default]
    #[serde(skip)]
    Empty,
}

impl KeyValues {
    /// The normalised map: keys trimmed and lower-cased, values as text.
    pub fn normalise(&self, field: &str) -> Result<BTreeMap<String, String>, ApiError> {
        let mut out = BTreeMap::new();
        let mut put = |key: &str, value: String, at: String| -> Result<(), ApiError> {
            let key = key.trim().to_ascii_lowercase();
            if key.is_empty() {
                return Err(ApiError::validation(at, "keys must not be empty"));
            }
            if value.chars().count() > limits::MAP_VALUE_CHARS {
                return Err(ApiError::validation(
                    at,
                    format!("values are at most {} characters", limits::MAP_VALUE_CHARS),
                ));
            }
            out.insert(key, value.trim().to_owned());
            Ok(())
        };
        match self {
            KeyValues::Empty => {}
            KeyValues::Map(map) => {
                for (key, value) in map {
                    let text = match value {
                        serde_json::Value::String(s) => s.clone(),
                        serde_json::Value::Null => String::new(),
                        other => other.to_string(),
                    };
                    put(key, text, format!("{field}.{key}"))?;
                }
            }
            KeyValues::List(items) => {
                for (i, item) in items.iter().enumerate() {
                    let Some((key, value)) = item.split_once('=') else {
                        return Err(ApiError::validation(
                            format!("{field}[{i}]"),
                            "expected a key=value string",
                        ));
                    };
                    put(
                        key,
                        value.trim_start_matches('=').to_owned(),
                        format!("{field}[{i}]"),
                    )?;
                }
            }
        }
        if out.len() > limits::MAP_ENTRIES {
            return Err(ApiError::validation(
                field,
                format!("at most {} entries", limits::MAP_ENTRIES),
            ));
        }
        Ok(out)
    }
}

/// `POST /api/v1/capture`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct CaptureRequest {
    pub goal: String,
    pub tool_chain: Vec<String>,
    pub actions_taken: Vec<String>,
    pub error_trace: String,
    pub error_class: ErrorClass,
    #[serde(default)]
    pub code_state_diff: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub environment_info: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    #[schema(schema_with = crate::api_schema::key_values)]
    pub preconditions: KeyValues,
    #[serde(default)]
    pub resolution: Option<String>,
    #[serde(default)]
    pub time_to_resolve_seconds: Option<f64>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default = "default_severity")]
    pub severity: i64,
    #[serde(default)]
    pub screenshot_base64: Option<String>,
    #[serde(default)]
    pub image_embedding: Option<Vec<f32>>,
    /// The repository or project (scopes search and reflect).
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub branch: Option<String>,
    /// Versions that fix this failure: `{"numpy": ">=1.26.2"}`.
    #[serde(default)]
    pub resolved_in: BTreeMap<String, String>,
}

fn default_severity() -> i64 {
    3
}

fn chars(text: &str) -> usize {
    text.chars().count()
}

fn check_len(
    field: &str,
    text: &str,
    range: std::ops::RangeInclusive<usize>,
) -> Result<(), ApiError> {
    let n = chars(text);
    if !range.contains(&n) {
        return Err(ApiError::validation(
            field,
            format!(
                "must be {}..={} characters, got {n}",
                range.start(),
                range.end()
            ),
        ));
    }
    Ok(())
}

/// A validated 512-dim image vector, or a 422 naming `field`.
pub fn check_image_embedding(field: &str, vector: &[f32]) -> Result<(), ApiError> {
    if vector.len() != IMAGE_DIM {
        return Err(ApiError::validation(
            field,
            format!("expected {IMAGE_DIM} dimensions, got {}", vector.len()),
        ));
    }
    if let Some(i) = vector.iter().position(|v| !v.is_finite()) {
        return Err(ApiError::validation(
            format!("{field}[{i}]"),
            "must be finite",
        ));
    }
    if vector.iter().all(|v| *v == 0.0) {
        return Err(ApiError::validation(field, "must not be all zeros"));
    }
    Ok(())
}

/// A validated capture: the limits hold, preconditions are normalised and
/// the screenshot decoded.
#[derive(Debug, Clone)]
pub struct ValidCapture {
    pub request: CaptureRequest,
    pub preconditions: BTreeMap<String, String>,
    pub screenshot: Option<Vec<u8>>,
}

impl CaptureRequest {
    /// Checks every documented limit.
    pub fn validate(self) -> Result<ValidCapture, ApiError> {
        use limits::*;
        check_len("goal", &self.goal, GOAL_CHARS)?;
        if !TOOLS.contains(&self.tool_chain.len()) {
            return Err(ApiError::validation(
                "tool_chain",
                format!("must hold 1..=20 tools, got {}", self.tool_chain.len()),
            ));
        }
        for (i, tool) in self.tool_chain.iter().enumerate() {
            check_len(&format!("tool_chain[{i}]"), tool.trim(), 1..=TOOL_CHARS)?;
        }
        if !ACTIONS.contains(&self.actions_taken.len()) {
            return Err(ApiError::validation(
                "actions_taken",
                format!("must hold 1..=50 actions, got {}", self.actions_taken.len()),
            ));
        }
        for (i, action) in self.actions_taken.iter().enumerate() {
            check_len(
                &format!("actions_taken[{i}]"),
                action.trim(),
                1..=ACTION_CHARS,
            )?;
        }
        check_len("error_trace", &self.error_trace, TRACE_CHARS)?;
        if let Some(diff) = &self.code_state_diff {
            check_len("code_state_diff", diff, 0..=DIFF_CHARS)?;
        }
        if serde_json::to_string(&self.environment_info)
            .map(|s| s.len())
            .unwrap_or(usize::MAX)
            > ENVIRONMENT_BYTES
        {
            return Err(ApiError::validation(
                "environment_info",
                format!("at most {ENVIRONMENT_BYTES} bytes of JSON"),
            ));
        }
        let preconditions = self.preconditions.normalise("preconditions")?;
        if let Some(resolution) = &self.resolution {
            check_len("resolution", resolution, 0..=RESOLUTION_CHARS)?;
        }
        if let Some(seconds) = self.time_to_resolve_seconds {
            if !seconds.is_finite() || seconds < 0.0 {
                return Err(ApiError::validation(
                    "time_to_resolve_seconds",
                    "must be a non-negative number",
                ));
            }
        }
        if self.tags.len() > TAGS {
            return Err(ApiError::validation(
                "tags",
                format!("at most {TAGS} tags, got {}", self.tags.len()),
            ));
        }
        for (i, tag) in self.tags.iter().enumerate() {
            check_len(&format!("tags[{i}]"), tag.trim(), 1..=TAG_CHARS)?;
        }
        if !(1..=5).contains(&self.severity) {
            return Err(ApiError::validation(
                "severity",
                format!("must be 1..=5 (1 = critical), got {}", self.severity),
            ));
        }
        for (field, value) in [("project", &self.project), ("branch", &self.branch)] {
            if let Some(value) = value {
                check_len(field, value.trim(), 1..=NAME_CHARS)?;
            }
        }
        if self.resolved_in.len() > MAP_ENTRIES {
            return Err(ApiError::validation("resolved_in", "too many entries"));
        }
        for (package, constraint) in &self.resolved_in {
            if crate::episodes::ranking::VersionConstraint::parse(constraint).is_none() {
                return Err(ApiError::validation(
                    format!("resolved_in.{package}"),
                    format!("{constraint:?} is not a version constraint (e.g. \">=1.26.2\")"),
                ));
            }
        }
        let screenshot = match &self.screenshot_base64 {
            None => None,
            Some(text) => {
                // A data URL prefix is accepted.
                let data = text.split_once("base64,").map_or(text.as_str(), |(_, d)| d);
                if data.len() > SCREENSHOT_BYTES / 3 * 4 + 8 {
                    return Err(ApiError::validation(
                        "screenshot_base64",
                        format!("at most {SCREENSHOT_BYTES} bytes decoded"),
                    ));
                }
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(data.trim())
                    .map_err(|e| {
                        ApiError::validation("screenshot_base64", format!("not base64: {e}"))
                    })?;
                if bytes.len() > SCREENSHOT_BYTES {
                    return Err(ApiError::validation(
                        "screenshot_base64",
                        format!(
                            "at most {SCREENSHOT_BYTES} bytes decoded, got {}",
                            bytes.len()
                        ),
                    ));
                }
                Some(bytes)
            }
        };
        if let Some(vector) = &self.image_embedding {
            check_image_embedding("image_embedding", vector)?;
        }
        Ok(ValidCapture {
            request: self,
            preconditions,
            screenshot,
        })
    }
}

/// An episode's document as stored (redacted) in the customer database.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredEpisode {
    pub goal: String,
    pub tool_chain: Vec<String>,
    pub actions_taken: Vec<String>,
    pub error_trace: String,
    pub error_class: String,
    pub code_state_diff: Option<String>,
    pub environment_info: serde_json::Map<String, serde_json::Value>,
    pub preconditions: BTreeMap<String, String>,
    pub resolution: Option<String>,
    pub time_to_resolve_seconds: Option<f64>,
    pub tags: Vec<String>,
    pub severity: i64,
    pub project: Option<String>,
    pub branch: Option<String>,
    pub resolved_in: BTreeMap<String, String>,
    pub error_signature: String,
    /// SHA-256 of the screenshot (the image itself is not kept; only its
    /// embedding, in the image instance).
    pub screenshot_sha256: Option<String>,
}
