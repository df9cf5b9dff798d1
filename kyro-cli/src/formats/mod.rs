//! The file formats `kyro import`/`export` read and write: fvecs, npy,
//! JSON Lines and Parquet, behind one reader and one writer trait.
//!
//! fvecs and npy hold vectors only; their ids and payloads travel in an
//! optional JSON Lines side file (`--meta`, one `{"id", "payload"}` per
//! row, in row order). Without it, ids are row numbers (plus `--id-start`).

pub mod fvecs;
pub mod jsonl;
pub mod npy;
pub mod parquet;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::CliError;
use crate::payload::Payload;

/// A point read from a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The id the file gives, if it gives one.
    pub id: Option<u64>,
    /// The vector.
    pub vector: Vec<f32>,
    /// The payload (empty when the file has none).
    pub payload: Payload,
    /// Where in the file it came from, for messages.
    pub place: Place,
}

/// A record's place in its file, as messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// A line of a text file, from 1.
    Line(u64),
    /// A row of a binary file, from 0 (as numpy indexes it).
    Row(u64),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Line(n) => write!(f, "line {n}"),
            Place::Row(n) => write!(f, "row {n}"),
        }
    }
}

/// The formats, chosen by `--format` or the file's extension.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Little-endian `i32` dimension then that many `f32`, per vector.
    Fvecs,
    /// A NumPy `.npy` array of shape (rows, dim), little-endian f32 (f64 is
    /// read and converted).
    Npy,
    /// One JSON object per line: `{"id", "vector", "payload"}`.
    Jsonl,
    /// Parquet: `id` (uint64), `vector` (fixed-size or variable list of
    /// float), `payload` (JSON text).
    Parquet,
}

impl Format {
    /// The format `--format` names, else the one the extension says.
    pub fn resolve(explicit: Option<Format>, path: &Path) -> Result<Format, CliError> {
        if let Some(format) = explicit {
            return Ok(format);
        }
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("fvecs") => Ok(Format::Fvecs),
            Some("npy") => Ok(Format::Npy),
            Some("jsonl") | Some("ndjson") => Ok(Format::Jsonl),
            Some("parquet") | Some("pq") => Ok(Format::Parquet),
            _ => Err(CliError::usage(format!(
                "{}: cannot tell the format from the extension; pass --format fvecs|npy|jsonl|parquet",
                path.display()
            ))),
        }
    }

    /// Whether the format holds vectors only (ids and payloads need `--meta`).
    pub fn vectors_only(self) -> bool {
        matches!(self, Format::Fvecs | Format::Npy)
    }

    /// The name `--format` takes.
    pub fn name(self) -> &'static str {
        match self {
            Format::Fvecs => "fvecs",
            Format::Npy => "npy",
            Format::Jsonl => "jsonl",
            Format::Parquet => "parquet",
        }
    }
}

/// Reads records one at a time.
pub trait RecordReader {
    /// The next record, or `None` at the end of the file.
    fn next_record(&mut self) -> Result<Option<Record>, CliError>;

    /// How many records the file holds, when the format says so up front.
    fn total(&self) -> Option<u64>;

    /// Skips `n` records (a resumed import); fails when the file has fewer.
    fn skip(&mut self, n: u64) -> Result<(), CliError> {
        for _ in 0..n {
            if self.next_record()?.is_none() {
                return Err(CliError::Usage(format!(
                    "the checkpoint says {n} records were imported, but the input has fewer"
                )));
            }
        }
        Ok(())
    }
}

/// Writes points one at a time; `finish` completes the file.
pub trait RecordWriter {
    /// Appends one point.
    fn write(&mut self, id: u64, vector: &[f32], payload: &Payload) -> Result<(), CliError>;

    /// Completes the file (headers that need the row count, footers).
    fn finish(self: Box<Self>) -> Result<(), CliError>;
}

/// Opens `path` as `format`, with the ids and payloads of `meta` when given.
pub fn open_reader(
    format: Format,
    path: &Path,
    meta: Option<&Path>,
) -> Result<Box<dyn RecordReader>, CliError> {
    let reader: Box<dyn RecordReader> = match format {
        Format::Fvecs => Box::new(fvecs::FvecsReader::open(path)?),
        Format::Npy => Box::new(npy::NpyReader::open(path)?),
        Format::Jsonl => Box::new(jsonl::JsonlReader::open(path)?),
        Format::Parquet => Box::new(parquet::ParquetReader::open(path)?),
    };
    match meta {
        None => Ok(reader),
        Some(_) if !format.vectors_only() => Err(CliError::usage(format!(
            "--meta is for fvecs and npy files; {} files carry ids and payloads themselves",
            format.name()
        ))),
        Some(meta) => Ok(Box::new(WithMeta {
            vectors: reader,
            meta: jsonl::MetaReader::open(meta)?,
        })),
    }
}

/// Creates `path` as `format` for vectors of `dim` (the instance's), with a
/// side file `meta` for ids and payloads when given.
pub fn create_writer(
    format: Format,
    path: &Path,
    dim: usize,
    meta: Option<&Path>,
) -> Result<Box<dyn RecordWriter>, CliError> {
    let writer: Box<dyn RecordWriter> = match format {
        Format::Fvecs => Box::new(fvecs::FvecsWriter::create(path)?),
        Format::Npy => Box::new(npy::NpyWriter::create(path, dim)?),
        Format::Jsonl => Box::new(jsonl::JsonlWriter::create(path)?),
        Format::Parquet => Box::new(parquet::ParquetWriter::create(path, dim)?),
    };
    match meta {
        None => Ok(writer),
        Some(_) if !format.vectors_only() => Err(CliError::usage(format!(
            "--meta is for fvecs and npy files; {} files carry ids and payloads themselves",
            format.name()
        ))),
        Some(meta) => Ok(Box::new(WriterWithMeta {
            vectors: writer,
            meta: jsonl::MetaWriter::create(meta)?,
        })),
    }
}

/// A vectors-only reader joined row by row with a `--meta` file.
struct WithMeta {
    vectors: Box<dyn RecordReader>,
    meta: jsonl::MetaReader,
}

impl RecordReader for WithMeta {
    fn next_record(&mut self) -> Result<Option<Record>, CliError> {
        let vector = self.vectors.next_record()?;
        let meta = self.meta.next_meta()?;
        match (vector, meta) {
            (None, None) => Ok(None),
            (Some(mut record), Some((id, payload, _))) => {
                record.id = Some(id);
                record.payload = payload;
                Ok(Some(record))
            }
            (Some(record), None) => Err(CliError::input(
                self.meta.path(),
                format!(
                    "ends before the vectors do: no line for {} of the vector file",
                    record.place
                ),
            )),
            (None, Some((_, _, line))) => Err(CliError::input_at(
                self.meta.path(),
                line,
                "has no vector: the vector file ended before it",
            )),
        }
    }

    fn total(&self) -> Option<u64> {
        self.vectors.total()
    }
}

/// A vectors-only writer that puts ids and payloads in a `--meta` file.
struct WriterWithMeta {
    vectors: Box<dyn RecordWriter>,
    meta: jsonl::MetaWriter,
}

impl RecordWriter for WriterWithMeta {
    fn write(&mut self, id: u64, vector: &[f32], payload: &Payload) -> Result<(), CliError> {
        self.vectors.write(id, vector, payload)?;
        self.meta.write(id, payload)
    }

    fn finish(self: Box<Self>) -> Result<(), CliError> {
        let this = *self;
        this.vectors.finish()?;
        this.meta.finish()
    }
}

/// `path` with `suffix` appended to its file name (`out.npy.partial`).
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(suffix);
    path.with_file_name(name)
}
