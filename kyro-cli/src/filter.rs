//! `--filter`: a payload filter written as in `docs/api.md` (the protobuf
//! JSON mapping), e.g. `{"eq": {"key": "tool", "value": {"string_value":
//! "cargo"}}}`, parsed into the API's `Filter`.

use kyro_proto::v1 as pb;
use serde_json::{Map, Value as Json};

use crate::payload::json_type;

/// Parses a filter; an error names the path of the offending part
/// (`filter.all_of.conditions[1].range: …`).
pub fn parse(text: &str) -> Result<pb::Filter, String> {
    let json: Json = serde_json::from_str(text).map_err(|e| format!("--filter: not JSON: {e}"))?;
    filter(&json, "filter")
}

fn object<'a>(json: &'a Json, at: &str) -> Result<&'a Map<String, Json>, String> {
    json.as_object()
        .ok_or_else(|| format!("{at}: expected an object, got {}", json_type(json)))
}

fn string(json: &Map<String, Json>, field: &str, at: &str) -> Result<String, String> {
    match json.get(field) {
        Some(Json::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!(
            "{at}.{field}: expected a string, got {}",
            json_type(other)
        )),
        None => Err(format!("{at}: missing {field:?}")),
    }
}

fn filter(json: &Json, at: &str) -> Result<pb::Filter, String> {
    use pb::filter::Kind;
    let map = object(json, at)?;
    if map.len() != 1 {
        return Err(format!(
            "{at}: exactly one of all_of, any_of, negate, eq, is_in, range, exists (got {} keys)",
            map.len()
        ));
    }
    let (name, body) = map.iter().next().ok_or_else(|| format!("{at}: empty"))?;
    let here = format!("{at}.{name}");
    let kind = match name.as_str() {
        "all_of" | "any_of" => {
            let list = object(body, &here)?;
            let conditions = list
                .get("conditions")
                .and_then(Json::as_array)
                .ok_or_else(|| format!("{here}: expected {{\"conditions\": [...]}}"))?;
            let conditions = conditions
                .iter()
                .enumerate()
                .map(|(i, c)| filter(c, &format!("{here}.conditions[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            let list = pb::FilterList { conditions };
            if name == "all_of" {
                Kind::AllOf(list)
            } else {
                Kind::AnyOf(list)
            }
        }
        "negate" => Kind::Negate(Box::new(filter(body, &here)?)),
        "eq" => {
            let eq = object(body, &here)?;
            Kind::Eq(pb::FieldEquals {
                key: string(eq, "key", &here)?,
                value: Some(scalar(
                    eq.get("value")
                        .ok_or_else(|| format!("{here}: missing \"value\""))?,
                    &format!("{here}.value"),
                )?),
            })
        }
        "is_in" => {
            let is_in = object(body, &here)?;
            let values = is_in
                .get("values")
                .and_then(Json::as_array)
                .ok_or_else(|| format!("{here}: expected \"values\": [...]"))?;
            Kind::IsIn(pb::FieldIn {
                key: string(is_in, "key", &here)?,
                values: values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| scalar(v, &format!("{here}.values[{i}]")))
                    .collect::<Result<_, _>>()?,
            })
        }
        "range" => {
            let range = object(body, &here)?;
            let bound = |name: &str| {
                range
                    .get(name)
                    .map(|v| scalar(v, &format!("{here}.{name}")))
                    .transpose()
            };
            Kind::Range(pb::FieldRange {
                key: string(range, "key", &here)?,
                gt: bound("gt")?,
                gte: bound("gte")?,
                lt: bound("lt")?,
                lte: bound("lte")?,
            })
        }
        "exists" => Kind::Exists(pb::FieldExists {
            key: string(object(body, &here)?, "key", &here)?,
        }),
        other => {
            return Err(format!(
            "{at}: unknown condition {other:?} (all_of, any_of, negate, eq, is_in, range, exists)"
        ))
        }
    };
    Ok(pb::Filter { kind: Some(kind) })
}

/// `{"string_value": "x"}`, `{"integer_value": 3}` (or `"3"`),
/// `{"float_value": 0.5}`, `{"bool_value": true}`.
fn scalar(json: &Json, at: &str) -> Result<pb::Scalar, String> {
    use pb::scalar::Kind;
    let map = object(json, at)?;
    let (name, value) = match map.iter().next() {
        Some(entry) if map.len() == 1 => entry,
        _ => {
            return Err(format!(
                "{at}: exactly one of string_value, integer_value, float_value, bool_value"
            ))
        }
    };
    let wrong = || format!("{at}.{name}: got {}", json_type(value));
    let kind = match name.as_str() {
        "string_value" => Kind::StringValue(value.as_str().ok_or_else(wrong)?.to_owned()),
        "integer_value" => Kind::IntegerValue(match value {
            Json::String(s) => s.parse().map_err(|_| wrong())?,
            _ => value.as_i64().ok_or_else(wrong)?,
        }),
        "float_value" => Kind::FloatValue(value.as_f64().ok_or_else(wrong)?),
        "bool_value" => Kind::BoolValue(value.as_bool().ok_or_else(wrong)?),
        other => return Err(format!("{at}: unknown value kind {other:?}")),
    };
    Ok(pb::Scalar { kind: Some(kind) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_examples_parse() {
        let parsed = parse(
            r#"{"all_of": {"conditions": [
                {"eq": {"key": "tool", "value": {"string_value": "cargo"}}},
                {"range": {"key": "exit_code", "gte": {"integer_value": "1"}}},
                {"negate": {"exists": {"key": "fix"}}},
                {"is_in": {"key": "n", "values": [{"integer_value": 1}, {"float_value": 2.5}]}}
            ]}}"#,
        )
        .unwrap();
        let Some(pb::filter::Kind::AllOf(list)) = parsed.kind else {
            panic!("all_of expected")
        };
        assert_eq!(list.conditions.len(), 4);
        let Some(pb::filter::Kind::Range(range)) = &list.conditions[1].kind else {
            panic!("range expected")
        };
        assert_eq!(
            range.gte,
            Some(pb::Scalar {
                kind: Some(pb::scalar::Kind::IntegerValue(1))
            })
        );
    }

    #[test]
    fn mistakes_are_named_by_path() {
        for (text, expected) in [
            (r#"{"eq": {"key": "t"}}"#, "filter.eq: missing \"value\""),
            (
                r#"{"all_of": {"conditions": [{"exist": {"key": "x"}}]}}"#,
                "filter.all_of.conditions[0]: unknown condition \"exist\"",
            ),
            (
                r#"{"range": {"key": "x", "gt": {"integer_value": true}}}"#,
                "filter.range.gt.integer_value: got a bool",
            ),
            (r#"{"eq": {}, "exists": {}}"#, "filter: exactly one"),
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.starts_with(expected), "{text}: {error}");
        }
    }
}
