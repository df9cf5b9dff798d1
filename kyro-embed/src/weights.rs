//! Reading the model's `model.safetensors` into `f32` tensors.
//!
//! The format is small enough to read without a library: an 8-byte
//! little-endian header length, a JSON header naming each tensor's dtype,
//! shape and byte range, then the raw little-endian data.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::EmbedError;

/// The `f32` tensors of one safetensors file, by name.
pub(crate) struct SafeTensors {
    path: PathBuf,
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

impl SafeTensors {
    /// Reads every `F32` tensor of the file (other dtypes, such as BERT's
    /// `I64` position ids, are skipped).
    pub(crate) fn read(path: &Path) -> Result<SafeTensors, EmbedError> {
        let invalid = |reason: String| EmbedError::InvalidModel {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|source| EmbedError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let header_len = bytes
            .get(..8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
            .ok_or_else(|| invalid("shorter than its 8-byte header length".into()))?;
        let data_start = usize::try_from(header_len)
            .ok()
            .and_then(|n| n.checked_add(8))
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| invalid("header length beyond the end of the file".into()))?;
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..data_start])
            .map_err(|e| invalid(format!("header is not JSON: {e}")))?;
        let entries = header
            .as_object()
            .ok_or_else(|| invalid("header is not a JSON object".into()))?;
        let data = &bytes[data_start..];
        let mut tensors = HashMap::new();
        for (name, entry) in entries {
            if name == "__metadata__" || entry.get("dtype").and_then(|d| d.as_str()) != Some("F32")
            {
                continue;
            }
            let shape: Vec<usize> = entry
                .get("shape")
                .and_then(|s| s.as_array())
                .map(|dims| {
                    dims.iter()
                        .filter_map(|d| d.as_u64())
                        .map(|d| d as usize)
                        .collect()
                })
                .ok_or_else(|| invalid(format!("{name}: no shape")))?;
            let range = entry
                .get("data_offsets")
                .and_then(|o| o.as_array())
                .filter(|o| o.len() == 2)
                .and_then(|o| Some((o[0].as_u64()? as usize, o[1].as_u64()? as usize)))
                .ok_or_else(|| invalid(format!("{name}: no data_offsets")))?;
            let numel: usize = shape.iter().product();
            let raw = data
                .get(range.0..range.1)
                .filter(|raw| raw.len() == numel * 4)
                .ok_or_else(|| invalid(format!("{name}: byte range does not match its shape")))?;
            let values = raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            // Checkpoints saved from `BertForX` prefix the encoder's names with `bert.`.
            let name = name.strip_prefix("bert.").unwrap_or(name).to_string();
            tensors.insert(name, (shape, values));
        }
        Ok(SafeTensors {
            path: path.to_path_buf(),
            tensors,
        })
    }

    /// Takes the tensor `name` out, checking that its shape is `shape`.
    pub(crate) fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, EmbedError> {
        let (found, values) =
            self.tensors
                .remove(name)
                .ok_or_else(|| EmbedError::InvalidModel {
                    path: self.path.clone(),
                    reason: format!("no F32 tensor named {name}"),
                })?;
        if found != shape {
            return Err(EmbedError::InvalidModel {
                path: self.path.clone(),
                reason: format!("{name} has shape {found:?}, expected {shape:?}"),
            });
        }
        Ok(values)
    }
}
