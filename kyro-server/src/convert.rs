//! Translation between the wire types of `kyro.v1` and the engine's types.
//! Anything the wire allows but the engine cannot take (a value with no
//! kind, a filter with nothing set) is refused here with an error naming the
//! field; the engine then checks the limits it owns.

use std::collections::HashMap;

use kyro_engine::payload::{Filter, FilterValue, Payload, PayloadValue, Range};
use kyro_engine::storage::{NamespaceInfo, PointRecord, SearchHit};
use kyro_proto::v1 as pb;
use tonic::Status;

/// `INVALID_ARGUMENT` with a message starting with the field's path.
pub fn invalid(field: impl AsRef<str>, reason: impl AsRef<str>) -> Status {
    Status::invalid_argument(format!("{}: {}", field.as_ref(), reason.as_ref()))
}

/// A wire payload as an engine payload (validated later by the engine).
pub fn payload_from_wire(field: &str, wire: HashMap<String, pb::Value>) -> Result<Payload, Status> {
    let mut payload = Payload::new();
    // Sorted so the first error named is the same on every call.
    let mut entries: Vec<_> = wire.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, value) in entries {
        let value = match value.kind {
            Some(pb::value::Kind::StringValue(s)) => PayloadValue::String(s),
            Some(pb::value::Kind::IntegerValue(i)) => PayloadValue::Integer(i),
            Some(pb::value::Kind::FloatValue(f)) => PayloadValue::Float(f),
            Some(pb::value::Kind::BoolValue(b)) => PayloadValue::Bool(b),
            Some(pb::value::Kind::StringListValue(list)) => PayloadValue::StringList(list.values),
            None => return Err(invalid(format!("{field}.{key}"), "value has no kind set")),
        };
        payload.insert(key, value);
    }
    // The engine names offending fields `payload.<key>`; on the wire the
    // field may be `points[3].payload`.
    payload.validate().map_err(|e| {
        let message = e.to_string();
        let message = message.strip_prefix("payload").unwrap_or(&message);
        Status::invalid_argument(format!("{field}{message}"))
    })?;
    Ok(payload)
}

/// An engine payload on the wire.
pub fn payload_to_wire(payload: Payload) -> HashMap<String, pb::Value> {
    payload
        .iter()
        .map(|(key, value)| {
            let kind = match value {
                PayloadValue::String(s) => pb::value::Kind::StringValue(s.clone()),
                PayloadValue::Integer(i) => pb::value::Kind::IntegerValue(*i),
                PayloadValue::Float(f) => pb::value::Kind::FloatValue(*f),
                PayloadValue::Bool(b) => pb::value::Kind::BoolValue(*b),
                PayloadValue::StringList(list) => {
                    pb::value::Kind::StringListValue(pb::StringList {
                        values: list.clone(),
                    })
                }
            };
            (key.to_owned(), pb::Value { kind: Some(kind) })
        })
        .collect()
}

fn scalar_from_wire(field: &str, scalar: Option<pb::Scalar>) -> Result<FilterValue, Status> {
    match scalar.and_then(|s| s.kind) {
        Some(pb::scalar::Kind::StringValue(s)) => Ok(FilterValue::String(s)),
        Some(pb::scalar::Kind::IntegerValue(i)) => Ok(FilterValue::Integer(i)),
        Some(pb::scalar::Kind::FloatValue(f)) => Ok(FilterValue::Float(f)),
        Some(pb::scalar::Kind::BoolValue(b)) => Ok(FilterValue::Bool(b)),
        None => Err(invalid(field, "value has no kind set")),
    }
}

fn optional_bound(
    field: String,
    scalar: Option<pb::Scalar>,
) -> Result<Option<FilterValue>, Status> {
    match scalar {
        None => Ok(None),
        Some(s) => scalar_from_wire(&field, Some(s)).map(Some),
    }
}

/// Deepest filter nesting the converter follows; the engine's own limit is
/// lower, so anything it could accept gets through and a hostile, deeply
/// nested message is stopped before recursion gets expensive.
const MAX_WIRE_DEPTH: usize = 64;

/// A wire filter as an engine filter; `path` names it in errors (`filter`,
/// `filter.all_of[2].negate`).
pub fn filter_from_wire(path: &str, filter: pb::Filter) -> Result<Filter, Status> {
    filter_at(path, filter, 0)
}

fn filter_at(path: &str, filter: pb::Filter, depth: usize) -> Result<Filter, Status> {
    if depth > MAX_WIRE_DEPTH {
        return Err(invalid(
            path,
            format!("nested deeper than {MAX_WIRE_DEPTH}"),
        ));
    }
    let list = |name: &str, list: pb::FilterList| -> Result<Vec<Filter>, Status> {
        list.conditions
            .into_iter()
            .enumerate()
            .map(|(i, f)| filter_at(&format!("{path}.{name}[{i}]"), f, depth + 1))
            .collect()
    };
    match filter.kind {
        Some(pb::filter::Kind::AllOf(l)) => Ok(Filter::And(list("all_of", l)?)),
        Some(pb::filter::Kind::AnyOf(l)) => Ok(Filter::Or(list("any_of", l)?)),
        Some(pb::filter::Kind::Negate(inner)) => Ok(Filter::Not(Box::new(filter_at(
            &format!("{path}.negate"),
            *inner,
            depth + 1,
        )?))),
        Some(pb::filter::Kind::Eq(eq)) => Ok(Filter::Eq {
            value: scalar_from_wire(&format!("{path}.eq.value"), eq.value)?,
            key: eq.key,
        }),
        Some(pb::filter::Kind::IsIn(is_in)) => {
            let values = is_in
                .values
                .into_iter()
                .enumerate()
                .map(|(i, v)| scalar_from_wire(&format!("{path}.is_in.values[{i}]"), Some(v)))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Filter::In {
                key: is_in.key,
                values,
            })
        }
        Some(pb::filter::Kind::Range(range)) => {
            let bound = |name: &str, s| optional_bound(format!("{path}.range.{name}"), s);
            Ok(Filter::Range {
                range: Range {
                    gt: bound("gt", range.gt)?,
                    gte: bound("gte", range.gte)?,
                    lt: bound("lt", range.lt)?,
                    lte: bound("lte", range.lte)?,
                },
                key: range.key,
            })
        }
        Some(pb::filter::Kind::Exists(exists)) => Ok(Filter::Exists { key: exists.key }),
        None => Err(invalid(
            path,
            "no condition set (set one of all_of, any_of, negate, eq, is_in, range, exists)",
        )),
    }
}

/// An optional wire filter, validated by the engine's rules.
pub fn optional_filter(filter: Option<pb::Filter>) -> Result<Option<Filter>, Status> {
    filter
        .map(|f| {
            let filter = filter_from_wire("filter", f)?;
            filter
                .validate()
                .map_err(|e| Status::invalid_argument(wire_filter_path(&e.to_string())))
                .map(|()| filter)
        })
        .transpose()
}

/// Rewrites the path at the start of an engine filter error (`filter.and[1].not`)
/// with the wire's field names (`filter.all_of[1].negate`).
fn wire_filter_path(message: &str) -> String {
    let (path, rest) = message.split_once(": ").unwrap_or((message, ""));
    let path = path
        .split('.')
        .map(|segment| {
            let (name, index) = segment.split_at(segment.find('[').unwrap_or(segment.len()));
            let name = match name {
                "and" => "all_of",
                "or" => "any_of",
                "not" => "negate",
                "in" => "is_in",
                other => other,
            };
            format!("{name}{index}")
        })
        .collect::<Vec<_>>()
        .join(".");
    if rest.is_empty() {
        path
    } else {
        format!("{path}: {rest}")
    }
}

/// A stored point on the wire.
pub fn record_to_wire(record: PointRecord) -> pb::PointRecord {
    pb::PointRecord {
        doc_id: record.doc_id,
        vector: record.vector.unwrap_or_default(),
        payload: record.payload.map(payload_to_wire).unwrap_or_default(),
    }
}

/// A search hit on the wire.
pub fn hit_to_wire(hit: SearchHit) -> pb::ScoredPoint {
    pb::ScoredPoint {
        doc_id: hit.doc_id,
        score: hit.score,
        distance: hit.distance,
        payload: hit.payload.map(payload_to_wire).unwrap_or_default(),
        vector: hit.vector.unwrap_or_default(),
    }
}

/// Namespace sizes on the wire.
pub fn namespace_to_wire(info: NamespaceInfo) -> pb::NamespaceInfo {
    pb::NamespaceInfo {
        tenant: info.tenant,
        namespace: info.namespace,
        points: info.points,
        hot_points: info.hot_points,
        cold_segments: info.cold_segments as u64,
        cold_bytes: info.cold_bytes,
    }
}

/// Cache counters on the wire.
pub fn cache_to_wire(stats: kyro_engine::CacheStats) -> pb::CacheStats {
    pb::CacheStats {
        hits: stats.hits,
        misses: stats.misses,
        insertions: stats.insertions,
        evictions: stats.evictions,
        rejected: stats.rejected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(kind: pb::scalar::Kind) -> Option<pb::Scalar> {
        Some(pb::Scalar { kind: Some(kind) })
    }

    #[test]
    fn payload_round_trips() {
        let mut wire = HashMap::new();
        wire.insert(
            "tool".to_owned(),
            pb::Value {
                kind: Some(pb::value::Kind::StringValue("cargo".into())),
            },
        );
        wire.insert(
            "tags".to_owned(),
            pb::Value {
                kind: Some(pb::value::Kind::StringListValue(pb::StringList {
                    values: vec!["rust".into(), "build".into()],
                })),
            },
        );
        wire.insert(
            "exit".to_owned(),
            pb::Value {
                kind: Some(pb::value::Kind::IntegerValue(101)),
            },
        );
        let payload = payload_from_wire("payload", wire.clone()).unwrap();
        assert_eq!(payload.len(), 3);
        assert_eq!(payload_to_wire(payload), wire);
    }

    #[test]
    fn empty_values_and_filters_name_the_field() {
        let mut wire = HashMap::new();
        wire.insert("tool".to_owned(), pb::Value { kind: None });
        let err = payload_from_wire("payload", wire).unwrap_err();
        assert!(
            err.message().starts_with("payload.tool:"),
            "{}",
            err.message()
        );

        let filter = pb::Filter {
            kind: Some(pb::filter::Kind::AllOf(pb::FilterList {
                conditions: vec![
                    pb::Filter {
                        kind: Some(pb::filter::Kind::Exists(pb::FieldExists {
                            key: "a".into(),
                        })),
                    },
                    pb::Filter { kind: None },
                ],
            })),
        };
        let err = filter_from_wire("filter", filter).unwrap_err();
        assert!(
            err.message().starts_with("filter.all_of[1]:"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn filters_translate_to_engine_filters() {
        let filter = pb::Filter {
            kind: Some(pb::filter::Kind::AnyOf(pb::FilterList {
                conditions: vec![
                    pb::Filter {
                        kind: Some(pb::filter::Kind::Eq(pb::FieldEquals {
                            key: "lang".into(),
                            value: scalar(pb::scalar::Kind::StringValue("rust".into())),
                        })),
                    },
                    pb::Filter {
                        kind: Some(pb::filter::Kind::Range(pb::FieldRange {
                            key: "exit".into(),
                            gte: scalar(pb::scalar::Kind::IntegerValue(1)),
                            lt: scalar(pb::scalar::Kind::IntegerValue(128)),
                            ..Default::default()
                        })),
                    },
                ],
            })),
        };
        let engine = optional_filter(Some(filter)).unwrap().unwrap();
        assert_eq!(
            engine,
            Filter::or([
                Filter::eq("lang", "rust"),
                Filter::range("exit", Range::new().gte(1i64).lt(128i64)),
            ])
        );
        let rust = Payload::new().with("lang", "rust");
        let crash = Payload::new().with("exit", 139i64);
        assert!(engine.matches(&rust) && !engine.matches(&crash));
    }

    #[test]
    fn engine_filter_errors_use_wire_field_names() {
        let filter = pb::Filter {
            kind: Some(pb::filter::Kind::AllOf(pb::FilterList {
                conditions: vec![pb::Filter {
                    kind: Some(pb::filter::Kind::Negate(Box::new(pb::Filter {
                        kind: Some(pb::filter::Kind::IsIn(pb::FieldIn {
                            key: "lang".into(),
                            values: vec![],
                        })),
                    }))),
                }],
            })),
        };
        let err = optional_filter(Some(filter)).unwrap_err();
        assert!(
            err.message()
                .starts_with("filter.all_of[0].negate.is_in.values:"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn hostile_nesting_is_refused_without_deep_recursion() {
        let mut filter = pb::Filter {
            kind: Some(pb::filter::Kind::Exists(pb::FieldExists {
                key: "a".into(),
            })),
        };
        for _ in 0..10_000 {
            filter = pb::Filter {
                kind: Some(pb::filter::Kind::Negate(Box::new(filter))),
            };
        }
        let err = filter_from_wire("filter", filter).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
    }
}
