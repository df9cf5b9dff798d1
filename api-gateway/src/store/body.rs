//! [`StoredBody`]: an episode's redacted capture as stored, a JSON object
//! kept as text. Readers parse only what they need: ranking reads a few
//! fields ([`StoredBody::summary`]) of every candidate, and an answer copies
//! the object's members into its JSON without building a tree of values.
//! Parsing every candidate's whole document (traces, diffs, actions) into
//! `serde_json::Value`s was a sixth of the gateway's own CPU under load.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;

/// The stored JSON object of an episode.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredBody(String);

/// The fields of a body that ranking, reflect and the skills list read.
#[derive(Debug, Default, Deserialize)]
pub struct BodySummary {
    #[serde(default)]
    pub goal: Option<String>,
    #[serde(default)]
    pub resolution: Option<String>,
    /// An object of scalars, when the capture had one.
    #[serde(default)]
    pub environment_info: Value,
    /// An object of `key → value` strings (normalised at capture).
    #[serde(default)]
    pub preconditions: Value,
    /// An object of `package → version constraint`.
    #[serde(default)]
    pub resolved_in: Value,
    // Every other member is skipped (serde's `IgnoredAny`) without being built.
}

impl StoredBody {
    /// The body of a capture (always a JSON object).
    pub fn from_value(value: &Value) -> Result<StoredBody, serde_json::Error> {
        serde_json::to_string(value).map(StoredBody)
    }

    /// A body as read from the database.
    pub(super) fn from_text(text: String) -> StoredBody {
        StoredBody(text)
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The fields ranking reads; missing or malformed ones are empty.
    pub fn summary(&self) -> BodySummary {
        serde_json::from_str(&self.0).unwrap_or_default()
    }
}

/// Serialises as the stored object (so `#[serde(flatten)]` puts its members
/// beside the other fields), each member copied as raw JSON text.
impl Serialize for StoredBody {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let members: BTreeMap<String, &RawValue> =
            serde_json::from_str(&self.0).map_err(serde::ser::Error::custom)?;
        members.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_body_round_trips_and_flattens_like_its_value() {
        let value = json!({
            "goal": "deploy the \"api\"",
            "error_trace": "line 1\nline 2",
            "environment_info": {"os": "linux", "python": 3.11},
            "preconditions": {"python": "3.11"},
            "resolved_in": {"numpy": ">=1.26.2"},
            "resolution": null,
            "tags": ["a", "b"],
        });
        let body = StoredBody::from_value(&value).unwrap();
        assert_eq!(serde_json::from_str::<Value>(body.as_str()).unwrap(), value);

        #[derive(Serialize)]
        struct View<'a> {
            id: u64,
            #[serde(flatten)]
            body: &'a StoredBody,
        }
        let out = serde_json::to_value(View { id: 7, body: &body }).unwrap();
        let mut expected = value.clone();
        expected["id"] = json!(7);
        assert_eq!(out, expected);

        let summary = body.summary();
        assert_eq!(summary.goal.as_deref(), Some("deploy the \"api\""));
        assert_eq!(summary.resolution, None);
        assert_eq!(summary.preconditions, json!({"python": "3.11"}));
        assert_eq!(summary.resolved_in["numpy"], ">=1.26.2");
        assert_eq!(summary.environment_info["python"], json!(3.11));
    }

    #[test]
    fn a_malformed_body_summarises_as_empty_and_fails_to_serialise() {
        let body = StoredBody::from_text("not json".to_owned());
        assert!(body.summary().goal.is_none());
        assert!(serde_json::to_string(&body).is_err());
    }
}
