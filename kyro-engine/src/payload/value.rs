//! What a point carries besides its vector: [`Payload`], a map from field key
//! to [`PayloadValue`], with the limits every stored payload keeps.

use std::collections::BTreeMap;

use crate::error::EngineError;

/// Most fields one payload may hold.
pub const MAX_FIELDS: usize = 64;
/// Longest field key, in bytes. Keys are 1..=`MAX_KEY_BYTES` bytes of
/// `[A-Za-z0-9_.-]`: plain enough to appear unquoted in error paths, URLs and
/// query strings.
pub const MAX_KEY_BYTES: usize = 128;
/// Longest string value (and list element), in UTF-8 bytes.
pub const MAX_STRING_BYTES: usize = 4096;
/// Most elements a string list may hold.
pub const MAX_LIST_ITEMS: usize = 256;
/// Largest payload, measured as its encoding ([`Payload::encoded_len`]). Bounds
/// the RocksDB value written per point whatever mix of fields a client sends.
pub const MAX_ENCODED_BYTES: usize = 64 * 1024;

/// One field's value.
///
/// Integers and floats are both numbers to a filter: they compare with each
/// other exactly (`2^53 + 1` is not equal to the float `2^53`).
#[derive(Debug, Clone, PartialEq)]
pub enum PayloadValue {
    /// UTF-8 text, at most [`MAX_STRING_BYTES`].
    String(String),
    /// A signed 64-bit integer.
    Integer(i64),
    /// A finite 64-bit float (NaN and ±∞ are refused by validation).
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
    /// Up to [`MAX_LIST_ITEMS`] strings (tags, categories). A filter's `eq`/`in`
    /// matches the list when it contains the value; `range` when any element is
    /// in range.
    StringList(Vec<String>),
}

impl From<&str> for PayloadValue {
    fn from(value: &str) -> Self {
        PayloadValue::String(value.to_owned())
    }
}

impl From<String> for PayloadValue {
    fn from(value: String) -> Self {
        PayloadValue::String(value)
    }
}

impl From<i64> for PayloadValue {
    fn from(value: i64) -> Self {
        PayloadValue::Integer(value)
    }
}

impl From<f64> for PayloadValue {
    fn from(value: f64) -> Self {
        PayloadValue::Float(value)
    }
}

impl From<bool> for PayloadValue {
    fn from(value: bool) -> Self {
        PayloadValue::Bool(value)
    }
}

impl From<Vec<String>> for PayloadValue {
    fn from(value: Vec<String>) -> Self {
        PayloadValue::StringList(value)
    }
}

impl From<Vec<&str>> for PayloadValue {
    fn from(value: Vec<&str>) -> Self {
        PayloadValue::StringList(value.into_iter().map(str::to_owned).collect())
    }
}

/// A point's payload: field key → value, kept in key order so that iteration
/// and the byte encoding are deterministic.
///
/// Building a payload checks nothing; call [`Payload::validate`] before storing
/// one (the limits are this module's constants). Updates come in two kinds:
/// *replace* stores the new payload as it is; *merge* ([`Payload::merge`])
/// overwrites only the keys the update names.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Payload {
    fields: BTreeMap<String, PayloadValue>,
}

impl Payload {
    /// An empty payload.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `key`, if the payload has that field.
    pub fn get(&self, key: &str) -> Option<&PayloadValue> {
        self.fields.get(key)
    }

    /// Sets `key` to `value`, returning the value it replaces.
    pub fn insert(
        &mut self,
        key: impl Into<String>,
        value: impl Into<PayloadValue>,
    ) -> Option<PayloadValue> {
        self.fields.insert(key.into(), value.into())
    }

    /// The same payload with `key` set to `value` (for building in one
    /// expression).
    pub fn with(mut self, key: impl Into<String>, value: impl Into<PayloadValue>) -> Self {
        self.insert(key, value);
        self
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<PayloadValue> {
        self.fields.remove(key)
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether the payload has no field.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The fields in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &PayloadValue)> {
        self.fields.iter().map(|(key, value)| (key.as_str(), value))
    }

    /// Merge update: every field of `update` overwrites (or adds) the field of
    /// the same key; fields `update` does not name are kept.
    ///
    /// Two valid payloads can merge into an invalid one (too many fields, too
    /// large), so validate the result before storing it.
    pub fn merge(&mut self, update: Payload) {
        self.fields.extend(update.fields);
    }

    /// Checks every limit, naming the field at fault: `payload.price` for a
    /// non-finite float, `payload.tags[3]` for an over-long list element,
    /// `payload` for too many fields, a bad key or an oversize payload.
    pub fn validate(&self) -> Result<(), EngineError> {
        if self.fields.len() > MAX_FIELDS {
            return Err(invalid(
                "payload".to_owned(),
                format!(
                    "has {} fields; at most {MAX_FIELDS} are allowed",
                    self.fields.len()
                ),
            ));
        }
        for (key, value) in &self.fields {
            validate_key(key).map_err(|reason| invalid("payload".to_owned(), reason))?;
            validate_value(key, value)?;
        }
        let size = self.encoded_len();
        if size > MAX_ENCODED_BYTES {
            return Err(invalid(
                "payload".to_owned(),
                format!("encodes to {size} bytes; at most {MAX_ENCODED_BYTES} are allowed"),
            ));
        }
        Ok(())
    }
}

impl FromIterator<(String, PayloadValue)> for Payload {
    fn from_iter<I: IntoIterator<Item = (String, PayloadValue)>>(fields: I) -> Self {
        Self {
            fields: fields.into_iter().collect(),
        }
    }
}

impl From<BTreeMap<String, PayloadValue>> for Payload {
    fn from(fields: BTreeMap<String, PayloadValue>) -> Self {
        Self { fields }
    }
}

impl IntoIterator for Payload {
    type Item = (String, PayloadValue);
    type IntoIter = std::collections::btree_map::IntoIter<String, PayloadValue>;

    fn into_iter(self) -> Self::IntoIter {
        self.fields.into_iter()
    }
}

/// Checks a field key against the key rules (shared by payloads and filters).
/// The reason quotes the key, shortened, since a bad key may be long or
/// unprintable.
pub(crate) fn validate_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("field key is empty".to_owned());
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(format!(
            "field key {} is {} bytes; at most {MAX_KEY_BYTES} are allowed",
            quote_key(key),
            key.len()
        ));
    }
    if let Some(bad) = key
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "field key {} contains {bad:?}; keys are made of A-Z a-z 0-9 _ . -",
            quote_key(key)
        ));
    }
    Ok(())
}

/// A key for an error message: debug-quoted and cut to 40 characters.
fn quote_key(key: &str) -> String {
    let mut shown: String = key.chars().take(40).collect();
    if shown.len() < key.len() {
        shown.push('…');
    }
    format!("{shown:?}")
}

fn validate_value(key: &str, value: &PayloadValue) -> Result<(), EngineError> {
    match value {
        PayloadValue::String(text) => {
            validate_string(text).map_err(|reason| invalid(format!("payload.{key}"), reason))
        }
        PayloadValue::Float(number) if !number.is_finite() => Err(invalid(
            format!("payload.{key}"),
            format!("float must be finite, got {number}"),
        )),
        PayloadValue::StringList(items) => {
            if items.len() > MAX_LIST_ITEMS {
                return Err(invalid(
                    format!("payload.{key}"),
                    format!(
                        "list has {} items; at most {MAX_LIST_ITEMS} are allowed",
                        items.len()
                    ),
                ));
            }
            for (position, item) in items.iter().enumerate() {
                validate_string(item)
                    .map_err(|reason| invalid(format!("payload.{key}[{position}]"), reason))?;
            }
            Ok(())
        }
        PayloadValue::Integer(_) | PayloadValue::Float(_) | PayloadValue::Bool(_) => Ok(()),
    }
}

/// Checks a string value's length (shared by payloads and filters).
pub(crate) fn validate_string(text: &str) -> Result<(), String> {
    if text.len() > MAX_STRING_BYTES {
        return Err(format!(
            "string is {} bytes; at most {MAX_STRING_BYTES} are allowed",
            text.len()
        ));
    }
    Ok(())
}

fn invalid(field: String, reason: String) -> EngineError {
    EngineError::InvalidPayload { field, reason }
}
