//! The payload byte format: how a [`Payload`] is stored (as the RocksDB value
//! keyed by point id). `docs/storage.md` describes it byte for byte.
//!
//! A hand-written tagged format rather than a serialisation library, so that
//! the bytes are documented, versioned, and decoded with every length checked
//! against what is left: corrupt bytes give an error, never a panic or a huge
//! allocation.

use crate::error::EngineError;

use super::value::{Payload, PayloadValue};

/// Version byte every encoded payload starts with; [`Payload::decode`] refuses
/// others.
pub const PAYLOAD_FORMAT_VERSION: u8 = 1;

const TAG_STRING: u8 = 1;
const TAG_INTEGER: u8 = 2;
const TAG_FLOAT: u8 = 3;
const TAG_BOOL: u8 = 4;
const TAG_STRING_LIST: u8 = 5;

impl Payload {
    /// The payload's bytes: version, field count, then each field in key order
    /// (see `docs/storage.md`). Equal payloads encode to equal bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.push(PAYLOAD_FORMAT_VERSION);
        put_len(&mut out, self.len());
        for (key, value) in self.iter() {
            put_str(&mut out, key);
            match value {
                PayloadValue::String(text) => {
                    out.push(TAG_STRING);
                    put_str(&mut out, text);
                }
                PayloadValue::Integer(number) => {
                    out.push(TAG_INTEGER);
                    out.extend_from_slice(&number.to_le_bytes());
                }
                PayloadValue::Float(number) => {
                    out.push(TAG_FLOAT);
                    out.extend_from_slice(&number.to_bits().to_le_bytes());
                }
                PayloadValue::Bool(flag) => {
                    out.push(TAG_BOOL);
                    out.push(u8::from(*flag));
                }
                PayloadValue::StringList(items) => {
                    out.push(TAG_STRING_LIST);
                    put_len(&mut out, items.len());
                    for item in items {
                        put_str(&mut out, item);
                    }
                }
            }
        }
        out
    }

    /// Length of [`Payload::encode`]'s output, computed without encoding.
    pub fn encoded_len(&self) -> usize {
        let fields: usize = self
            .iter()
            .map(|(key, value)| {
                let value_len = match value {
                    PayloadValue::String(text) => 4 + text.len(),
                    PayloadValue::Integer(_) | PayloadValue::Float(_) => 8,
                    PayloadValue::Bool(_) => 1,
                    PayloadValue::StringList(items) => {
                        4 + items.iter().map(|item| 4 + item.len()).sum::<usize>()
                    }
                };
                4 + key.len() + 1 + value_len
            })
            .sum();
        1 + 4 + fields
    }

    /// Reads bytes written by [`Payload::encode`].
    ///
    /// Checks that the bytes are well formed — version, tags, every length,
    /// UTF-8, keys in strictly increasing order, nothing left over — and
    /// returns [`EngineError::InvalidPayload`] otherwise. It does not re-apply
    /// the limits of [`Payload::validate`], so data written under other limits
    /// still reads.
    pub fn decode(bytes: &[u8]) -> Result<Payload, EngineError> {
        let mut reader = Reader { bytes, at: 0 };
        let version = reader.byte("version").map_err(whole_payload_corrupt)?;
        if version != PAYLOAD_FORMAT_VERSION {
            return Err(corrupt(
                "payload",
                format!(
                    "unknown format version {version}; this build reads {PAYLOAD_FORMAT_VERSION}"
                ),
            ));
        }
        let count = reader
            .length("field count")
            .map_err(whole_payload_corrupt)?;
        // A field takes at least 6 bytes (key length, tag, a bool), which
        // bounds the allocation by the bytes actually present.
        let mut fields: Vec<(String, PayloadValue)> =
            Vec::with_capacity(count.min(reader.remaining() / 6));
        for _ in 0..count {
            let key = reader.text("field key").map_err(whole_payload_corrupt)?;
            if let Some((previous, _)) = fields.last() {
                if key.as_str() <= previous.as_str() {
                    return Err(corrupt(
                        "payload",
                        format!("field key {key:?} is out of order or repeated"),
                    ));
                }
            }
            let value = reader
                .value()
                .map_err(|reason| corrupt(&format!("payload.{key}"), reason))?;
            fields.push((key, value));
        }
        if reader.remaining() > 0 {
            return Err(corrupt(
                "payload",
                format!(
                    "{} bytes left over after the last field",
                    reader.remaining()
                ),
            ));
        }
        Ok(fields.into_iter().collect())
    }
}

/// Appends a length as a little-endian `u32`. Validated payloads are at most
/// 64 KiB; a longer length cannot come from a request, and saturating makes
/// such an encoding fail to decode rather than misread.
pub(super) fn put_len(out: &mut Vec<u8>, len: usize) {
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
}

/// Appends a string as its `u32` length and UTF-8 bytes.
pub(super) fn put_str(out: &mut Vec<u8>, text: &str) {
    put_len(out, text.len());
    out.extend_from_slice(text.as_bytes());
}

/// A cursor over untrusted bytes: every read checks what is left.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if n > self.remaining() {
            return Err(format!(
                "truncated: {what} needs {n} bytes at offset {}, {} left",
                self.at,
                self.remaining()
            ));
        }
        let taken = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(taken)
    }

    fn byte(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.take(1, what)?[0])
    }

    fn eight(&mut self, what: &str) -> Result<[u8; 8], String> {
        let mut word = [0u8; 8];
        word.copy_from_slice(self.take(8, what)?);
        Ok(word)
    }

    fn length(&mut self, what: &str) -> Result<usize, String> {
        let mut word = [0u8; 4];
        word.copy_from_slice(self.take(4, what)?);
        Ok(u32::from_le_bytes(word) as usize)
    }

    fn text(&mut self, what: &str) -> Result<String, String> {
        let len = self.length(what)?;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
    }

    fn value(&mut self) -> Result<PayloadValue, String> {
        Ok(match self.byte("value tag")? {
            TAG_STRING => PayloadValue::String(self.text("string")?),
            TAG_INTEGER => PayloadValue::Integer(i64::from_le_bytes(self.eight("integer")?)),
            TAG_FLOAT => {
                PayloadValue::Float(f64::from_bits(u64::from_le_bytes(self.eight("float")?)))
            }
            TAG_BOOL => match self.byte("bool")? {
                0 => PayloadValue::Bool(false),
                1 => PayloadValue::Bool(true),
                other => return Err(format!("bool byte is {other}, not 0 or 1")),
            },
            TAG_STRING_LIST => {
                let count = self.length("list length")?;
                // Each element takes at least its 4-byte length, which bounds
                // the allocation by the bytes actually present.
                let mut items = Vec::with_capacity(count.min(self.remaining() / 4));
                for _ in 0..count {
                    items.push(self.text("list element")?);
                }
                PayloadValue::StringList(items)
            }
            other => return Err(format!("unknown value tag {other}")),
        })
    }
}

fn whole_payload_corrupt(reason: String) -> EngineError {
    corrupt("payload", reason)
}

fn corrupt(field: &str, reason: String) -> EngineError {
    EngineError::InvalidPayload {
        field: field.to_owned(),
        reason: format!("corrupt encoding: {reason}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_bytes_are_as_documented_in_storage_md() {
        let payload = Payload::new()
            .with("b", true)
            .with("a", 1_i64)
            .with("c", vec!["x", "yz"]);
        let mut want = vec![1u8, 3, 0, 0, 0];
        want.extend([1, 0, 0, 0, b'a', TAG_INTEGER, 1, 0, 0, 0, 0, 0, 0, 0]);
        want.extend([1, 0, 0, 0, b'b', TAG_BOOL, 1]);
        want.extend([1, 0, 0, 0, b'c', TAG_STRING_LIST, 2, 0, 0, 0]);
        want.extend([1, 0, 0, 0, b'x', 2, 0, 0, 0, b'y', b'z']);
        assert_eq!(payload.encode(), want);
        assert_eq!(payload.encoded_len(), want.len());
    }

    #[test]
    fn keys_out_of_order_are_refused() {
        let mut bytes = vec![1u8, 2, 0, 0, 0];
        bytes.extend([1, 0, 0, 0, b'b', TAG_BOOL, 0]);
        bytes.extend([1, 0, 0, 0, b'a', TAG_BOOL, 0]);
        assert!(Payload::decode(&bytes).is_err());
        bytes[10..17].copy_from_slice(&[1, 0, 0, 0, b'b', TAG_BOOL, 1]);
        assert!(Payload::decode(&bytes).is_err(), "repeated key");
    }

    #[test]
    fn a_bool_byte_other_than_0_or_1_names_the_field() {
        let bytes = [1u8, 1, 0, 0, 0, 1, 0, 0, 0, b'f', TAG_BOOL, 2];
        match Payload::decode(&bytes) {
            Err(EngineError::InvalidPayload { field, .. }) => assert_eq!(field, "payload.f"),
            other => panic!("expected InvalidPayload, got {other:?}"),
        }
    }
}
