//! Payloads between the API's typed `Value`s and JSON: what JSON Lines,
//! Parquet's `payload` column and the tables show.
//!
//! The mapping is one to one, so an export imports back to the same
//! payload: a string is `string_value`, a JSON integer `integer_value`, a
//! number written with a fraction or exponent (`2.0`, `1e3`) `float_value`,
//! `true`/`false` `bool_value`, and an array of strings
//! `string_list_value`. Anything else (null, objects, mixed arrays,
//! integers beyond i64) has no payload type and is refused with the
//! field's name.

use std::collections::HashMap;

use kyro_proto::v1 as pb;
use serde_json::{Map, Number, Value as Json};

/// A payload as the API carries it.
pub type Payload = HashMap<String, pb::Value>;

/// The JSON form of a payload, keys sorted (so output is stable).
pub fn to_json(payload: &Payload) -> Map<String, Json> {
    let mut keys: Vec<&String> = payload.keys().collect();
    keys.sort();
    keys.into_iter()
        .map(|key| (key.clone(), value_to_json(&payload[key])))
        .collect()
}

/// The JSON form of one value.
pub fn value_to_json(value: &pb::Value) -> Json {
    use pb::value::Kind;
    match &value.kind {
        Some(Kind::StringValue(s)) => Json::String(s.clone()),
        Some(Kind::IntegerValue(i)) => Json::Number((*i).into()),
        // The server refuses non-finite floats, so `from_f64` always succeeds
        // on what it returns; null marks the impossible case.
        Some(Kind::FloatValue(f)) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Some(Kind::BoolValue(b)) => Json::Bool(*b),
        Some(Kind::StringListValue(list)) => {
            Json::Array(list.values.iter().cloned().map(Json::String).collect())
        }
        None => Json::Null,
    }
}

/// The API form of a JSON payload; an error names the field (`payload.tags:
/// …`).
pub fn from_json(object: &Map<String, Json>) -> Result<Payload, String> {
    object
        .iter()
        .map(|(key, value)| Ok((key.clone(), value_from_json(key, value)?)))
        .collect()
}

fn value_from_json(key: &str, value: &Json) -> Result<pb::Value, String> {
    use pb::value::Kind;
    let kind = match value {
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Bool(b) => Kind::BoolValue(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Kind::IntegerValue(i)
            } else if n.is_u64() {
                return Err(format!(
                    "payload.{key}: integer {n} does not fit a 64-bit signed integer"
                ));
            } else {
                match n.as_f64() {
                    Some(f) if f.is_finite() => Kind::FloatValue(f),
                    _ => return Err(format!("payload.{key}: number {n} is not a finite float")),
                }
            }
        }
        Json::Array(items) => {
            let mut values = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item {
                    Json::String(s) => values.push(s.clone()),
                    other => {
                        return Err(format!(
                            "payload.{key}[{i}]: lists hold strings only, got {}",
                            json_type(other)
                        ))
                    }
                }
            }
            Kind::StringListValue(pb::StringList { values })
        }
        Json::Null => {
            return Err(format!(
                "payload.{key}: null is not a payload value (leave the field out)"
            ))
        }
        Json::Object(_) => {
            return Err(format!(
                "payload.{key}: nested objects are not payload values (string, integer, float, bool or list of strings)"
            ))
        }
    };
    Ok(pb::Value { kind: Some(kind) })
}

/// The JSON type of a value, for messages.
pub fn json_type(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a bool",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_value_kind_survives_json_and_back() {
        let object = json!({
            "tool": "cargo", "exit": -101, "ratio": 0.25, "whole": 2.0,
            "ok": false, "tags": ["a", "b"], "none": []
        });
        let payload = from_json(object.as_object().unwrap()).unwrap();
        assert_eq!(
            payload["whole"].kind,
            Some(pb::value::Kind::FloatValue(2.0)),
            "2.0 stays a float"
        );
        assert_eq!(payload["exit"].kind, Some(pb::value::Kind::IntegerValue(-101)));
        let back = Json::Object(to_json(&payload));
        assert_eq!(back, object);
        // And through text: 2.0 is printed as 2.0, so it parses as a float again.
        let text = serde_json::to_string(&back).unwrap();
        let reparsed: Json = serde_json::from_str(&text).unwrap();
        assert_eq!(from_json(reparsed.as_object().unwrap()).unwrap(), payload);
    }

    #[test]
    fn values_without_a_payload_type_are_refused_with_the_field() {
        for (value, expected) in [
            (json!({"x": null}), "payload.x: null"),
            (json!({"x": {"y": 1}}), "payload.x: nested objects"),
            (json!({"x": ["a", 1]}), "payload.x[1]: lists hold strings only"),
            (json!({"x": 18446744073709551615u64}), "payload.x: integer"),
        ] {
            let error = from_json(value.as_object().unwrap()).unwrap_err();
            assert!(error.starts_with(expected), "{error}");
        }
    }
}
