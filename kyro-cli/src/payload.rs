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

use std::collections::{BTreeMap, HashMap};

use kyro_proto::v1 as pb;
use serde_json::value::RawValue;
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

/// The API form of a payload written as a JSON object (`{"tool":
/// "cargo", …}`; `null` is an empty payload); an error names the field
/// (`payload.tags: …`).
///
/// Numbers are read from their text with the standard library's correctly
/// rounded parser, so a float written by [`to_json`] reads back bit for bit
/// (serde_json's default number parsing may be one unit off in the last
/// place).
pub fn from_json_text(text: &str) -> Result<Payload, String> {
    let object: Option<BTreeMap<String, Box<RawValue>>> =
        serde_json::from_str(text).map_err(|e| format!("payload: expected a JSON object: {e}"))?;
    object
        .unwrap_or_default()
        .into_iter()
        .map(|(key, raw)| {
            let value = value_from_raw(&key, raw.get())?;
            Ok((key, value))
        })
        .collect()
}

fn value_from_raw(key: &str, raw: &str) -> Result<pb::Value, String> {
    use pb::value::Kind;
    let raw = raw.trim();
    let kind = match raw.as_bytes().first() {
        Some(b'-' | b'0'..=b'9') => number(key, raw)?,
        _ => {
            let json: Json =
                serde_json::from_str(raw).map_err(|e| format!("payload.{key}: {e}"))?;
            match json {
                Json::String(s) => Kind::StringValue(s),
                Json::Bool(b) => Kind::BoolValue(b),
                Json::Array(items) => {
                    let mut values = Vec::with_capacity(items.len());
                    for (i, item) in items.into_iter().enumerate() {
                        match item {
                            Json::String(s) => values.push(s),
                            other => {
                                return Err(format!(
                                    "payload.{key}[{i}]: lists hold strings only, got {}",
                                    json_type(&other)
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
                Json::Number(_) => number(key, raw)?,
            }
        }
    };
    Ok(pb::Value { kind: Some(kind) })
}

/// A JSON number: an integer without a fraction or exponent, else a float.
fn number(key: &str, raw: &str) -> Result<pb::value::Kind, String> {
    use pb::value::Kind;
    if raw.contains(['.', 'e', 'E']) {
        match raw.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Kind::FloatValue(f)),
            _ => Err(format!("payload.{key}: number {raw} is not a finite float")),
        }
    } else {
        raw.parse::<i64>().map(Kind::IntegerValue).map_err(|_| {
            format!("payload.{key}: integer {raw} does not fit a 64-bit signed integer")
        })
    }
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
        let payload = from_json_text(&object.to_string()).unwrap();
        assert_eq!(
            payload["whole"].kind,
            Some(pb::value::Kind::FloatValue(2.0)),
            "2.0 stays a float"
        );
        assert_eq!(
            payload["exit"].kind,
            Some(pb::value::Kind::IntegerValue(-101))
        );
        let back = Json::Object(to_json(&payload));
        assert_eq!(back, object);
        // And through text: 2.0 is printed as 2.0, so it parses as a float again.
        let text = serde_json::to_string(&back).unwrap();
        assert_eq!(from_json_text(&text).unwrap(), payload);
        assert!(from_json_text("null").unwrap().is_empty());
    }

    #[test]
    fn floats_read_back_bit_for_bit() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..100_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let x = f64::from_bits(state);
            if !x.is_finite() {
                continue;
            }
            let mut payload = Payload::new();
            payload.insert(
                "x".into(),
                pb::Value {
                    kind: Some(pb::value::Kind::FloatValue(x)),
                },
            );
            let text = Json::Object(to_json(&payload)).to_string();
            assert_eq!(from_json_text(&text).unwrap(), payload, "{text}");
        }
    }

    #[test]
    fn values_without_a_payload_type_are_refused_with_the_field() {
        for (value, expected) in [
            (json!({"x": null}), "payload.x: null"),
            (json!({"x": {"y": 1}}), "payload.x: nested objects"),
            (
                json!({"x": ["a", 1]}),
                "payload.x[1]: lists hold strings only",
            ),
            (json!({"x": 18446744073709551615u64}), "payload.x: integer"),
            (json!([1, 2]), "payload: expected a JSON object"),
        ] {
            let error = from_json_text(&value.to_string()).unwrap_err();
            assert!(error.starts_with(expected), "{error}");
        }
    }
}
