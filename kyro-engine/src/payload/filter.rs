//! The filter language: [`Filter`] conditions over payload fields, their
//! limits and validation, their direct evaluation against one payload
//! ([`Filter::matches`], the definition the payload index must agree with), and
//! a canonical byte encoding for cache keys.

use std::cmp::Ordering;

use crate::error::EngineError;

use super::codec::{put_len, put_str};
use super::value::{validate_key, validate_string, Payload, PayloadValue};

/// Deepest nesting of `and`/`or`/`not` a filter may have; a lone condition has
/// depth 1.
pub const MAX_FILTER_DEPTH: usize = 16;
/// Most nodes (conditions and `and`/`or`/`not`) one filter may have.
pub const MAX_FILTER_NODES: usize = 1024;
/// Most values one `in` condition may list.
pub const MAX_IN_VALUES: usize = 1024;
/// Version byte [`Filter::encode`] starts with; bumped if the encoding changes,
/// so that cached entries keyed by old bytes are simply never hit.
pub const FILTER_ENCODING_VERSION: u8 = 1;

/// A value a filter compares a field with: a scalar (lists are only stored,
/// never compared against).
#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    /// Matches string fields, and string lists that contain it.
    String(String),
    /// A number: compares with integer and float fields exactly.
    Integer(i64),
    /// A number: compares with integer and float fields exactly; NaN is refused.
    Float(f64),
    /// Matches bool fields.
    Bool(bool),
}

impl FilterValue {
    /// The value as a number, when it is one.
    pub(super) fn number(&self) -> Option<Number> {
        match self {
            FilterValue::Integer(number) => Some(Number::Integer(*number)),
            FilterValue::Float(number) => Some(Number::Float(*number)),
            FilterValue::String(_) | FilterValue::Bool(_) => None,
        }
    }
}

impl From<&str> for FilterValue {
    fn from(value: &str) -> Self {
        FilterValue::String(value.to_owned())
    }
}

impl From<String> for FilterValue {
    fn from(value: String) -> Self {
        FilterValue::String(value)
    }
}

impl From<i64> for FilterValue {
    fn from(value: i64) -> Self {
        FilterValue::Integer(value)
    }
}

impl From<f64> for FilterValue {
    fn from(value: f64) -> Self {
        FilterValue::Float(value)
    }
}

impl From<bool> for FilterValue {
    fn from(value: bool) -> Self {
        FilterValue::Bool(value)
    }
}

/// The bounds of a range condition; every bound given must hold.
///
/// Bounds are all numbers (integers and floats mixed freely, compared exactly)
/// or all strings (compared as UTF-8 bytes, lexicographically). A number range
/// matches integer and float fields; a string range matches string fields and
/// string lists with at least one element in range.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Range {
    /// Exclusive lower bound.
    pub gt: Option<FilterValue>,
    /// Inclusive lower bound.
    pub gte: Option<FilterValue>,
    /// Exclusive upper bound.
    pub lt: Option<FilterValue>,
    /// Inclusive upper bound.
    pub lte: Option<FilterValue>,
}

/// Which values a range can match, decided by its bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RangeKind {
    /// Integer and float fields.
    Number,
    /// String fields and string-list elements.
    String,
}

impl Range {
    /// No bounds yet (not a valid range until one is set).
    pub fn new() -> Self {
        Self::default()
    }

    /// The range with exclusive lower bound `bound`.
    pub fn gt(mut self, bound: impl Into<FilterValue>) -> Self {
        self.gt = Some(bound.into());
        self
    }

    /// The range with inclusive lower bound `bound`.
    pub fn gte(mut self, bound: impl Into<FilterValue>) -> Self {
        self.gte = Some(bound.into());
        self
    }

    /// The range with exclusive upper bound `bound`.
    pub fn lt(mut self, bound: impl Into<FilterValue>) -> Self {
        self.lt = Some(bound.into());
        self
    }

    /// The range with inclusive upper bound `bound`.
    pub fn lte(mut self, bound: impl Into<FilterValue>) -> Self {
        self.lte = Some(bound.into());
        self
    }

    /// The bounds that are set, with their names.
    fn named_bounds(&self) -> impl Iterator<Item = (&'static str, &FilterValue)> {
        [
            ("gt", &self.gt),
            ("gte", &self.gte),
            ("lt", &self.lt),
            ("lte", &self.lte),
        ]
        .into_iter()
        .filter_map(|(name, bound)| bound.as_ref().map(|bound| (name, bound)))
    }

    /// The lower bounds that are set (`gt`, `gte`).
    pub(super) fn lower_bounds(&self) -> impl Iterator<Item = &FilterValue> {
        self.gt.iter().chain(self.gte.iter())
    }

    /// The upper bounds that are set (`lt`, `lte`).
    pub(super) fn upper_bounds(&self) -> impl Iterator<Item = &FilterValue> {
        self.lt.iter().chain(self.lte.iter())
    }

    /// What the range can match: `None` — it matches nothing — when it has no
    /// bound, a bool or NaN bound, or mixes numbers with strings (all refused
    /// by validation).
    pub(super) fn kind(&self) -> Option<RangeKind> {
        let mut kind = None;
        for (_, bound) in self.named_bounds() {
            let this = match bound {
                FilterValue::Integer(_) => RangeKind::Number,
                FilterValue::Float(number) if !number.is_nan() => RangeKind::Number,
                FilterValue::String(_) => RangeKind::String,
                FilterValue::Float(_) | FilterValue::Bool(_) => return None,
            };
            if kind.is_some_and(|kind| kind != this) {
                return None;
            }
            kind = Some(this);
        }
        kind
    }

    /// Whether `number` satisfies every bound.
    pub(super) fn contains_number(&self, number: Number) -> bool {
        self.satisfies_all(|bound| bound.number().and_then(|bound| number.compare(bound)))
    }

    /// Whether `text` satisfies every bound.
    pub(super) fn contains_str(&self, text: &str) -> bool {
        self.satisfies_all(|bound| match bound {
            FilterValue::String(bound) => Some(text.as_bytes().cmp(bound.as_bytes())),
            _ => None,
        })
    }

    /// Whether the value whose comparison with a bound `compare` gives
    /// satisfies every bound; an incomparable bound is never satisfied.
    fn satisfies_all(&self, compare: impl Fn(&FilterValue) -> Option<Ordering>) -> bool {
        let holds = |bound: &Option<FilterValue>, accepted: fn(Ordering) -> bool| {
            bound
                .as_ref()
                .is_none_or(|bound| compare(bound).is_some_and(accepted))
        };
        holds(&self.gt, Ordering::is_gt)
            && holds(&self.gte, Ordering::is_ge)
            && holds(&self.lt, Ordering::is_lt)
            && holds(&self.lte, Ordering::is_le)
    }

    /// Whether a stored value is in range (for a list: any element).
    fn matches_value(&self, stored: &PayloadValue) -> bool {
        match self.kind() {
            Some(RangeKind::Number) => {
                stored_number(stored).is_some_and(|number| self.contains_number(number))
            }
            Some(RangeKind::String) => match stored {
                PayloadValue::String(text) => self.contains_str(text),
                PayloadValue::StringList(items) => items.iter().any(|item| self.contains_str(item)),
                _ => false,
            },
            None => false,
        }
    }
}

/// A condition on a point's payload.
///
/// A condition on a field the payload lacks is false (so `not` of it is true).
/// Validate a filter from a client with [`Filter::validate`] before evaluating
/// it; [`Filter::matches`] defines what every filter means.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Every condition holds (validation requires at least one).
    And(Vec<Filter>),
    /// At least one condition holds (validation requires at least one).
    Or(Vec<Filter>),
    /// The condition does not hold.
    Not(Box<Filter>),
    /// The field equals `value`: same string, numerically equal number, same
    /// bool; a string list matches when it contains the string.
    Eq {
        /// The field's key.
        key: String,
        /// What it must equal.
        value: FilterValue,
    },
    /// The field equals one of `values` (as [`Filter::Eq`]).
    In {
        /// The field's key.
        key: String,
        /// What it may equal.
        values: Vec<FilterValue>,
    },
    /// The field lies within `range` (see [`Range`]).
    Range {
        /// The field's key.
        key: String,
        /// The bounds.
        range: Range,
    },
    /// The payload has the field, whatever its value.
    Exists {
        /// The field's key.
        key: String,
    },
}

impl Filter {
    /// All of `conditions`.
    pub fn and(conditions: impl IntoIterator<Item = Filter>) -> Filter {
        Filter::And(conditions.into_iter().collect())
    }

    /// Any of `conditions`.
    pub fn or(conditions: impl IntoIterator<Item = Filter>) -> Filter {
        Filter::Or(conditions.into_iter().collect())
    }

    /// The negation of `condition`.
    pub fn negate(condition: Filter) -> Filter {
        Filter::Not(Box::new(condition))
    }

    /// Field `key` equals `value`.
    pub fn eq(key: impl Into<String>, value: impl Into<FilterValue>) -> Filter {
        Filter::Eq {
            key: key.into(),
            value: value.into(),
        }
    }

    /// Field `key` equals one of `values`.
    pub fn is_in<V: Into<FilterValue>>(
        key: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> Filter {
        Filter::In {
            key: key.into(),
            values: values.into_iter().map(Into::into).collect(),
        }
    }

    /// Field `key` lies within `range`.
    pub fn range(key: impl Into<String>, range: Range) -> Filter {
        Filter::Range {
            key: key.into(),
            range,
        }
    }

    /// Payloads that have field `key`.
    pub fn exists(key: impl Into<String>) -> Filter {
        Filter::Exists { key: key.into() }
    }

    /// Whether `payload` satisfies the filter. This is the definition of every
    /// condition; the payload index computes the same sets with bitmaps.
    pub fn matches(&self, payload: &Payload) -> bool {
        match self {
            Filter::And(conditions) => conditions.iter().all(|c| c.matches(payload)),
            Filter::Or(conditions) => conditions.iter().any(|c| c.matches(payload)),
            Filter::Not(condition) => !condition.matches(payload),
            Filter::Eq { key, value } => payload
                .get(key)
                .is_some_and(|stored| value_equals(stored, value)),
            Filter::In { key, values } => payload
                .get(key)
                .is_some_and(|stored| values.iter().any(|value| value_equals(stored, value))),
            Filter::Range { key, range } => payload
                .get(key)
                .is_some_and(|stored| range.matches_value(stored)),
            Filter::Exists { key } => payload.get(key).is_some(),
        }
    }

    /// Checks the filter's shape and every key and value, naming where the
    /// problem is: `filter.and[1].range.gte`, `filter.not.in.values[3]`.
    ///
    /// Refused: nesting deeper than [`MAX_FILTER_DEPTH`], more than
    /// [`MAX_FILTER_NODES`] nodes, empty `and`/`or`/`in`, `in` with more than
    /// [`MAX_IN_VALUES`] values, invalid keys, NaN values, strings longer than
    /// any payload string, ranges without bounds, with bool bounds, or mixing
    /// string and number bounds.
    pub fn validate(&self) -> Result<(), EngineError> {
        let mut nodes = 0;
        self.validate_at("filter", 1, &mut nodes)
    }

    fn validate_at(&self, path: &str, depth: usize, nodes: &mut usize) -> Result<(), EngineError> {
        if depth > MAX_FILTER_DEPTH {
            return Err(invalid(
                path,
                format!("filter is nested deeper than {MAX_FILTER_DEPTH} levels"),
            ));
        }
        *nodes += 1;
        if *nodes > MAX_FILTER_NODES {
            return Err(invalid(
                path,
                format!("filter has more than {MAX_FILTER_NODES} conditions"),
            ));
        }
        match self {
            Filter::And(conditions) => {
                validate_children(&format!("{path}.and"), conditions, depth, nodes)
            }
            Filter::Or(conditions) => {
                validate_children(&format!("{path}.or"), conditions, depth, nodes)
            }
            Filter::Not(condition) => {
                condition.validate_at(&format!("{path}.not"), depth + 1, nodes)
            }
            Filter::Eq { key, value } => {
                check_key(&format!("{path}.eq.key"), key)?;
                check_value(&format!("{path}.eq.value"), value)
            }
            Filter::In { key, values } => {
                check_key(&format!("{path}.in.key"), key)?;
                let values_path = format!("{path}.in.values");
                if values.is_empty() {
                    return Err(invalid(&values_path, "needs at least one value".to_owned()));
                }
                if values.len() > MAX_IN_VALUES {
                    return Err(invalid(
                        &values_path,
                        format!(
                            "has {} values; at most {MAX_IN_VALUES} are allowed",
                            values.len()
                        ),
                    ));
                }
                for (position, value) in values.iter().enumerate() {
                    check_value(&format!("{values_path}[{position}]"), value)?;
                }
                Ok(())
            }
            Filter::Range { key, range } => {
                check_key(&format!("{path}.range.key"), key)?;
                check_range(&format!("{path}.range"), range)
            }
            Filter::Exists { key } => check_key(&format!("{path}.exists.key"), key),
        }
    }

    /// Canonical bytes of the filter, for use as a cache key: equal filters
    /// give equal bytes, and so do filters that differ only in the order or
    /// repetition of `and`/`or` conditions and `in` values, or in the sign of a
    /// zero. Different meanings give different bytes. Not meant to be decoded.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![FILTER_ENCODING_VERSION];
        self.encode_into(&mut out);
        out
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Filter::And(conditions) => {
                out.push(1);
                put_set(out, conditions.iter().map(Filter::encode_node));
            }
            Filter::Or(conditions) => {
                out.push(2);
                put_set(out, conditions.iter().map(Filter::encode_node));
            }
            Filter::Not(condition) => {
                out.push(3);
                condition.encode_into(out);
            }
            Filter::Eq { key, value } => {
                out.push(4);
                put_str(out, key);
                encode_value(out, value);
            }
            Filter::In { key, values } => {
                out.push(5);
                put_str(out, key);
                put_set(
                    out,
                    values.iter().map(|value| {
                        let mut bytes = Vec::new();
                        encode_value(&mut bytes, value);
                        bytes
                    }),
                );
            }
            Filter::Range { key, range } => {
                out.push(6);
                put_str(out, key);
                for bound in [&range.gt, &range.gte, &range.lt, &range.lte] {
                    match bound {
                        None => out.push(0),
                        Some(value) => {
                            out.push(1);
                            encode_value(out, value);
                        }
                    }
                }
            }
            Filter::Exists { key } => {
                out.push(7);
                put_str(out, key);
            }
        }
    }

    fn encode_node(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        self.encode_into(&mut bytes);
        bytes
    }
}

/// A number from a payload or a filter. Integers and floats compare exactly
/// with each other — never by converting the integer to `f64`, which would
/// make `2^53 + 1` equal to `2^53`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Number {
    /// An integer.
    Integer(i64),
    /// A float.
    Float(f64),
}

impl Number {
    /// The numeric order of `self` and `other`; `None` when a NaN is involved.
    /// `-0.0` equals `0.0`.
    pub(super) fn compare(self, other: Number) -> Option<Ordering> {
        match (self, other) {
            (Number::Integer(a), Number::Integer(b)) => Some(a.cmp(&b)),
            (Number::Float(a), Number::Float(b)) => a.partial_cmp(&b),
            (Number::Integer(a), Number::Float(b)) => compare_integer_float(a, b),
            (Number::Float(a), Number::Integer(b)) => {
                compare_integer_float(b, a).map(Ordering::reverse)
            }
        }
    }
}

/// Exact order of an integer and a float.
fn compare_integer_float(integer: i64, float: f64) -> Option<Ordering> {
    // 2^63: every i64 is below it; every float at or above it is above every i64.
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    if float.is_nan() {
        return None;
    }
    if float >= TWO_POW_63 {
        return Some(Ordering::Less);
    }
    if float < -TWO_POW_63 {
        return Some(Ordering::Greater);
    }
    // In [-2^63, 2^63) the integral part converts to i64 exactly; the
    // fractional part then breaks a tie.
    let whole = float.trunc();
    match integer.cmp(&(whole as i64)) {
        Ordering::Equal => (0.0).partial_cmp(&(float - whole)),
        unequal => Some(unequal),
    }
}

/// A stored value as a number, when it is one.
pub(super) fn stored_number(stored: &PayloadValue) -> Option<Number> {
    match stored {
        PayloadValue::Integer(number) => Some(Number::Integer(*number)),
        PayloadValue::Float(number) => Some(Number::Float(*number)),
        _ => None,
    }
}

/// Whether a stored value equals a filter value (see [`Filter::Eq`]).
fn value_equals(stored: &PayloadValue, wanted: &FilterValue) -> bool {
    match (stored, wanted) {
        (PayloadValue::String(text), FilterValue::String(wanted)) => text == wanted,
        (PayloadValue::StringList(items), FilterValue::String(wanted)) => {
            items.iter().any(|item| item == wanted)
        }
        (PayloadValue::Bool(flag), FilterValue::Bool(wanted)) => flag == wanted,
        _ => match (stored_number(stored), wanted.number()) {
            (Some(stored), Some(wanted)) => stored.compare(wanted) == Some(Ordering::Equal),
            _ => false,
        },
    }
}

fn validate_children(
    path: &str,
    conditions: &[Filter],
    depth: usize,
    nodes: &mut usize,
) -> Result<(), EngineError> {
    if conditions.is_empty() {
        return Err(invalid(path, "needs at least one condition".to_owned()));
    }
    for (position, condition) in conditions.iter().enumerate() {
        condition.validate_at(&format!("{path}[{position}]"), depth + 1, nodes)?;
    }
    Ok(())
}

fn check_key(path: &str, key: &str) -> Result<(), EngineError> {
    validate_key(key).map_err(|reason| invalid(path, reason))
}

fn check_value(path: &str, value: &FilterValue) -> Result<(), EngineError> {
    match value {
        FilterValue::Float(number) if number.is_nan() => {
            Err(invalid(path, "NaN is not a comparable value".to_owned()))
        }
        FilterValue::String(text) => validate_string(text).map_err(|reason| invalid(path, reason)),
        _ => Ok(()),
    }
}

fn check_range(path: &str, range: &Range) -> Result<(), EngineError> {
    let mut kind = None;
    for (name, bound) in range.named_bounds() {
        let bound_path = format!("{path}.{name}");
        check_value(&bound_path, bound)?;
        let this = match bound {
            FilterValue::Integer(_) | FilterValue::Float(_) => RangeKind::Number,
            FilterValue::String(_) => RangeKind::String,
            FilterValue::Bool(_) => {
                return Err(invalid(
                    &bound_path,
                    "a range bound must be a number or a string, not a bool".to_owned(),
                ))
            }
        };
        if kind.is_some_and(|kind| kind != this) {
            return Err(invalid(
                &bound_path,
                "all bounds of a range must be numbers, or all strings".to_owned(),
            ));
        }
        kind = Some(this);
    }
    if kind.is_none() {
        return Err(invalid(
            path,
            "needs at least one of gt, gte, lt, lte".to_owned(),
        ));
    }
    Ok(())
}

/// Appends a set of self-delimiting encodings in sorted order without
/// repeats, so that order and repetition do not change the bytes.
fn put_set(out: &mut Vec<u8>, parts: impl Iterator<Item = Vec<u8>>) {
    let mut parts: Vec<Vec<u8>> = parts.collect();
    parts.sort_unstable();
    parts.dedup();
    put_len(out, parts.len());
    for part in parts {
        out.extend_from_slice(&part);
    }
}

fn encode_value(out: &mut Vec<u8>, value: &FilterValue) {
    match value {
        FilterValue::String(text) => {
            out.push(1);
            put_str(out, text);
        }
        FilterValue::Integer(number) => {
            out.push(2);
            out.extend_from_slice(&number.to_le_bytes());
        }
        FilterValue::Float(number) => {
            // -0.0 and 0.0 are the same filter (and equal as f64s); so are all NaNs.
            let canonical = if *number == 0.0 {
                0.0
            } else if number.is_nan() {
                f64::NAN
            } else {
                *number
            };
            out.push(3);
            out.extend_from_slice(&canonical.to_bits().to_le_bytes());
        }
        FilterValue::Bool(flag) => {
            out.push(4);
            out.push(u8::from(*flag));
        }
    }
}

fn invalid(path: &str, reason: String) -> EngineError {
    EngineError::InvalidFilter {
        path: path.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_POW_53: i64 = 1 << 53;

    #[test]
    fn integers_beyond_2_pow_53_compare_exactly_with_floats() {
        let float = Number::Float(TWO_POW_53 as f64);
        assert_eq!(
            Number::Integer(TWO_POW_53).compare(float),
            Some(Ordering::Equal)
        );
        assert_eq!(
            Number::Integer(TWO_POW_53 + 1).compare(float),
            Some(Ordering::Greater)
        );
        assert_eq!(
            float.compare(Number::Integer(TWO_POW_53 + 1)),
            Some(Ordering::Less)
        );
        assert_eq!(
            Number::Integer(i64::MAX).compare(Number::Float(i64::MAX as f64)),
            Some(Ordering::Less),
            "i64::MAX as f64 rounds up to 2^63"
        );
        assert_eq!(
            Number::Integer(i64::MIN).compare(Number::Float(i64::MIN as f64)),
            Some(Ordering::Equal)
        );
    }

    #[test]
    fn fractional_floats_order_between_neighbouring_integers() {
        assert_eq!(
            Number::Integer(-5).compare(Number::Float(-5.5)),
            Some(Ordering::Greater)
        );
        assert_eq!(
            Number::Integer(-6).compare(Number::Float(-5.5)),
            Some(Ordering::Less)
        );
        assert_eq!(
            Number::Integer(5).compare(Number::Float(5.5)),
            Some(Ordering::Less)
        );
        assert_eq!(
            Number::Integer(0).compare(Number::Float(-0.0)),
            Some(Ordering::Equal)
        );
        assert_eq!(
            Number::Integer(i64::MIN).compare(Number::Float(f64::NEG_INFINITY)),
            Some(Ordering::Greater)
        );
        assert_eq!(Number::Integer(1).compare(Number::Float(f64::NAN)), None);
    }
}
