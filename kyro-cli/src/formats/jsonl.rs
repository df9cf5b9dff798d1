//! JSON Lines: one point per line, `{"id": 7, "vector": [0.1, …],
//! "payload": {"tool": "cargo"}}`. `id` may be left out (the record's
//! position plus `--id-start` is used), `payload` too. Blank lines are
//! skipped. Also the `--meta` side file of fvecs and npy: `{"id",
//! "payload"}` per row.
//!
//! Vectors are written with the shortest decimal that reads back as the
//! same `f32`, so an export re-imports bit for bit.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value as Json};

use super::{Place, Record, RecordReader, RecordWriter};
use crate::error::CliError;
use crate::payload::{self, Payload};

/// One line of a points file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PointLine {
    id: Option<u64>,
    vector: Vec<f32>,
    #[serde(default)]
    payload: Option<Box<RawValue>>,
}

/// One line of a `--meta` file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetaLine {
    id: u64,
    #[serde(default)]
    payload: Option<Box<RawValue>>,
}

/// A line as written.
#[derive(Serialize)]
struct PointOut<'a> {
    id: u64,
    vector: &'a [f32],
    payload: Map<String, Json>,
}

/// A `--meta` line as written.
#[derive(Serialize)]
struct MetaOut {
    id: u64,
    payload: Map<String, Json>,
}

/// Lines of a text file with their numbers, blank ones skipped.
struct Lines {
    path: PathBuf,
    input: BufReader<File>,
    line: u64,
    buffer: String,
}

impl Lines {
    fn open(path: &Path) -> Result<Self, CliError> {
        let file = File::open(path).map_err(|e| CliError::io(path, e))?;
        Ok(Lines {
            path: path.to_owned(),
            input: BufReader::with_capacity(1 << 20, file),
            line: 0,
            buffer: String::new(),
        })
    }

    /// The next non-blank line and its number (from 1).
    fn next_line(&mut self) -> Result<Option<(u64, &str)>, CliError> {
        loop {
            self.buffer.clear();
            let read = self.input.read_line(&mut self.buffer).map_err(|e| {
                if e.kind() == std::io::ErrorKind::InvalidData {
                    CliError::input_at(&self.path, Place::Line(self.line + 1), "not UTF-8 text")
                } else {
                    CliError::io(&self.path, e)
                }
            })?;
            if read == 0 {
                return Ok(None);
            }
            self.line += 1;
            if !self.buffer.trim().is_empty() {
                return Ok(Some((self.line, self.buffer.trim_end())));
            }
        }
    }
}

fn parse_payload(
    path: &Path,
    place: Place,
    payload: Option<Box<RawValue>>,
) -> Result<Payload, CliError> {
    match payload {
        None => Ok(Payload::new()),
        Some(raw) => payload::from_json_text(raw.get())
            .map_err(|message| CliError::input_at(path, place, message)),
    }
}

/// Reads a JSON Lines points file.
pub struct JsonlReader {
    lines: Lines,
}

impl JsonlReader {
    /// Opens `path`.
    pub fn open(path: &Path) -> Result<Self, CliError> {
        Ok(JsonlReader {
            lines: Lines::open(path)?,
        })
    }
}

impl RecordReader for JsonlReader {
    fn next_record(&mut self) -> Result<Option<Record>, CliError> {
        let Some((line, text)) = self.lines.next_line()? else {
            return Ok(None);
        };
        let place = Place::Line(line);
        let parsed = serde_json::from_str::<PointLine>(text);
        let parsed = parsed
            .map_err(|e| CliError::input_at(&self.lines.path, place, describe_json_error(&e)))?;
        let payload = parse_payload(&self.lines.path, place, parsed.payload)?;
        Ok(Some(Record {
            id: parsed.id,
            vector: parsed.vector,
            payload,
            place,
        }))
    }

    fn total(&self) -> Option<u64> {
        None
    }

    fn skip(&mut self, n: u64) -> Result<(), CliError> {
        // Lines already imported are not parsed again.
        for _ in 0..n {
            if self.lines.next_line()?.is_none() {
                return Err(CliError::Usage(format!(
                    "the checkpoint says {n} records were imported, but the input has fewer"
                )));
            }
        }
        Ok(())
    }
}

/// serde_json's message without its "at line 1 column N" (every record is
/// line 1 to it), with the column kept.
fn describe_json_error(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let message = match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message,
    };
    format!("{message} (column {})", error.column())
}

/// Writes a JSON Lines points file.
pub struct JsonlWriter {
    path: PathBuf,
    output: BufWriter<File>,
}

impl JsonlWriter {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path) -> Result<Self, CliError> {
        let file = File::create(path).map_err(|e| CliError::io(path, e))?;
        Ok(JsonlWriter {
            path: path.to_owned(),
            output: BufWriter::with_capacity(1 << 20, file),
        })
    }
}

fn write_line(
    path: &Path,
    output: &mut BufWriter<File>,
    value: &impl Serialize,
) -> Result<(), CliError> {
    serde_json::to_writer(&mut *output, value)
        .map_err(|e| CliError::io(path, std::io::Error::other(e)))?;
    output.write_all(b"\n").map_err(|e| CliError::io(path, e))
}

fn finish_file(path: &Path, output: BufWriter<File>) -> Result<(), CliError> {
    let file = output
        .into_inner()
        .map_err(|e| CliError::io(path, e.into_error()))?;
    file.sync_all().map_err(|e| CliError::io(path, e))
}

impl RecordWriter for JsonlWriter {
    fn write(&mut self, id: u64, vector: &[f32], payload: &Payload) -> Result<(), CliError> {
        let line = PointOut {
            id,
            vector,
            payload: payload::to_json(payload),
        };
        write_line(&self.path, &mut self.output, &line)
    }

    fn finish(self: Box<Self>) -> Result<(), CliError> {
        let this = *self;
        finish_file(&this.path, this.output)
    }
}

/// Reads a `--meta` file: id and payload per row of the vector file.
pub struct MetaReader {
    lines: Lines,
}

impl MetaReader {
    /// Opens `path`.
    pub fn open(path: &Path) -> Result<Self, CliError> {
        Ok(MetaReader {
            lines: Lines::open(path)?,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.lines.path
    }

    /// The next row's id and payload, and its line.
    pub fn next_meta(&mut self) -> Result<Option<(u64, Payload, Place)>, CliError> {
        let Some((line, text)) = self.lines.next_line()? else {
            return Ok(None);
        };
        let place = Place::Line(line);
        let parsed = serde_json::from_str::<MetaLine>(text);
        let parsed = parsed
            .map_err(|e| CliError::input_at(&self.lines.path, place, describe_json_error(&e)))?;
        let payload = parse_payload(&self.lines.path, place, parsed.payload)?;
        Ok(Some((parsed.id, payload, place)))
    }
}

/// Writes a `--meta` file.
pub struct MetaWriter {
    path: PathBuf,
    output: BufWriter<File>,
}

impl MetaWriter {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path) -> Result<Self, CliError> {
        let file = File::create(path).map_err(|e| CliError::io(path, e))?;
        Ok(MetaWriter {
            path: path.to_owned(),
            output: BufWriter::with_capacity(1 << 20, file),
        })
    }

    /// Appends one row's id and payload.
    pub fn write(&mut self, id: u64, payload: &Payload) -> Result<(), CliError> {
        let line = MetaOut {
            id,
            payload: payload::to_json(payload),
        };
        write_line(&self.path, &mut self.output, &line)
    }

    /// Completes the file.
    pub fn finish(self) -> Result<(), CliError> {
        finish_file(&self.path, self.output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(path: &Path) -> Result<Vec<Record>, CliError> {
        let mut reader = JsonlReader::open(path)?;
        let mut out = Vec::new();
        while let Some(record) = reader.next_record()? {
            out.push(record);
        }
        Ok(out)
    }

    #[test]
    fn floats_survive_the_decimal_text_bit_for_bit() {
        // A deterministic spread of bit patterns over the finite f32 range.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut vector = Vec::new();
        while vector.len() < 200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let x = f32::from_bits(state as u32);
            if x.is_finite() {
                vector.push(x);
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.jsonl");
        let mut writer = Box::new(JsonlWriter::create(&path).unwrap());
        for (i, chunk) in vector.chunks(1000).enumerate() {
            writer.write(i as u64, chunk, &Payload::new()).unwrap();
        }
        writer.finish().unwrap();
        let back: Vec<f32> = read_all(&path)
            .unwrap()
            .into_iter()
            .flat_map(|r| r.vector)
            .collect();
        assert_eq!(back.len(), vector.len());
        let differing = back
            .iter()
            .zip(&vector)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(differing, 0);
    }

    #[test]
    fn records_keep_ids_payloads_and_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.jsonl");
        std::fs::write(
            &path,
            "{\"id\": 5, \"vector\": [1, 2.5], \"payload\": {\"t\": \"x\", \"n\": 3}}\n\n{\"vector\": [0, 0]}\n",
        )
        .unwrap();
        let records = read_all(&path).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].id, Some(5));
        assert_eq!(records[0].vector, vec![1.0, 2.5]);
        assert_eq!(records[0].payload.len(), 2);
        assert_eq!((records[1].id, records[1].place), (None, Place::Line(3)));
    }

    #[test]
    fn a_malformed_line_is_named_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.jsonl");
        let cases = [
            (
                "{\"id\": 1, \"vector\": [1, 2]",
                "line 2: EOF while parsing an object",
            ),
            (
                "{\"id\": 1, \"vectors\": [1, 2]}",
                "line 2: unknown field `vectors`",
            ),
            (
                "{\"id\": -1, \"vector\": [1, 2]}",
                "line 2: invalid value: integer `-1`",
            ),
            (
                "{\"id\": 1, \"vector\": [\"a\"]}",
                "line 2: invalid type: string \"a\"",
            ),
            (
                "{\"id\": 1, \"vector\": [1], \"payload\": {\"k\": null}}",
                "line 2: payload.k: null",
            ),
        ];
        for (bad, expected) in cases {
            std::fs::write(&path, format!("{{\"id\": 0, \"vector\": [0, 1]}}\n{bad}\n")).unwrap();
            let error = read_all(&path).unwrap_err().to_string();
            assert!(error.contains(expected), "{bad}: {error}");
            assert!(matches!(read_all(&path), Err(CliError::Input(_))));
        }
    }
}
