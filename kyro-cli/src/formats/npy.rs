//! NumPy's `.npy` format for 2-D float arrays, one row per vector.
//!
//! The bytes: the magic `\x93NUMPY`, a major and minor version byte, the
//! header's length (`u16` little-endian in version 1, `u32` in 2 and 3),
//! the header (a Python dict literal: `{'descr': '<f4', 'fortran_order':
//! False, 'shape': (rows, dim), }` padded with spaces and a newline so the
//! data starts at a multiple of 64), then the rows in C order.
//!
//! Read: versions 1–3, `<f4` (and `<f8`, converted to f32), C order, shape
//! `(rows, dim)` or `(dim,)` (one row). Written: version 1, `<f4`, with a
//! fixed 128-byte header so the row count can be filled in at the end.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::fvecs::read_full;
use super::{Place, Record, RecordReader, RecordWriter};
use crate::error::CliError;
use crate::payload::Payload;

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// Magic, version and a `u16` length: 10 bytes, then the header text.
const WRITTEN_HEADER_BYTES: usize = 128;

/// The element type of the array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Element {
    F32,
    F64,
}

impl Element {
    fn size(self) -> usize {
        match self {
            Element::F32 => 4,
            Element::F64 => 8,
        }
    }
}

/// What a header says.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Header {
    element: Element,
    rows: u64,
    dim: usize,
    /// Where the data starts.
    data_offset: u64,
}

/// Parses the header at the start of `input`.
fn read_header(path: &Path, input: &mut impl Read) -> Result<Header, CliError> {
    let mut prefix = [0u8; 8];
    let got = read_full(input, &mut prefix).map_err(|e| CliError::io(path, e))?;
    if got < 8 || &prefix[..6] != MAGIC {
        return Err(CliError::input(
            path,
            "not an .npy file (no \\x93NUMPY magic)",
        ));
    }
    let major = prefix[6];
    let (header_len, prefix_len) = match major {
        1 => {
            let mut len = [0u8; 2];
            input
                .read_exact(&mut len)
                .map_err(|e| CliError::io(path, e))?;
            (u16::from_le_bytes(len) as usize, 10)
        }
        2 | 3 => {
            let mut len = [0u8; 4];
            input
                .read_exact(&mut len)
                .map_err(|e| CliError::io(path, e))?;
            (u32::from_le_bytes(len) as usize, 12)
        }
        other => {
            return Err(CliError::input(
                path,
                format!("npy format version {other} is not supported (1, 2 and 3 are)"),
            ))
        }
    };
    let mut text = vec![0u8; header_len];
    input.read_exact(&mut text).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            CliError::input(path, "truncated npy header")
        } else {
            CliError::io(path, e)
        }
    })?;
    let text =
        String::from_utf8(text).map_err(|_| CliError::input(path, "the npy header is not text"))?;
    let field = |key: &str| {
        dict_value(&text, key).ok_or_else(|| {
            CliError::input(path, format!("npy header has no '{key}': {}", text.trim()))
        })
    };
    let descr = field("descr")?;
    let element = match descr.trim_matches(|c| c == '\'' || c == '"') {
        "<f4" => Element::F32,
        "<f8" => Element::F64,
        other => {
            return Err(CliError::input(
                path,
                format!("npy element type {other} is not supported: expected little-endian float32 ('<f4') or float64 ('<f8')"),
            ))
        }
    };
    match field("fortran_order")? {
        "False" => {}
        "True" => {
            return Err(CliError::input(
                path,
                "the npy array is in Fortran order; save it in C order (numpy.ascontiguousarray)",
            ))
        }
        other => return Err(CliError::input(path, format!("npy fortran_order {other}?"))),
    }
    let shape = field("shape")?;
    let dims: Vec<u64> = shape
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim_end_matches('L').parse().map_err(|_| {
                CliError::input(path, format!("npy shape {shape} is not a tuple of sizes"))
            })
        })
        .collect::<Result<_, _>>()?;
    let (rows, dim) = match dims.as_slice() {
        [dim] => (1, *dim),
        [rows, dim] => (*rows, *dim),
        _ => {
            return Err(CliError::input(
                path,
                format!("npy shape {shape}: expected (rows, dim) or (dim,)"),
            ))
        }
    };
    Ok(Header {
        element,
        rows,
        dim: dim as usize,
        data_offset: (prefix_len + header_len) as u64,
    })
}

/// The value text of `'key':` in a Python dict literal: a quoted string, a
/// parenthesised tuple, or a bare word.
fn dict_value<'a>(dict: &'a str, key: &str) -> Option<&'a str> {
    let start = [format!("'{key}'"), format!("\"{key}\"")]
        .iter()
        .find_map(|quoted| dict.find(quoted.as_str()).map(|i| i + quoted.len()))?;
    let rest = dict[start..].trim_start().strip_prefix(':')?.trim_start();
    let end = match rest.chars().next()? {
        '(' => rest.find(')')? + 1,
        quote @ ('\'' | '"') => rest[1..].find(quote)? + 2,
        _ => rest.find([',', '}']).unwrap_or(rest.len()),
    };
    Some(rest[..end].trim())
}

/// Reads an `.npy` file row by row.
pub struct NpyReader {
    path: PathBuf,
    input: BufReader<File>,
    header: Header,
    row: u64,
}

impl NpyReader {
    /// Opens `path` and checks that its size matches its header.
    pub fn open(path: &Path) -> Result<Self, CliError> {
        let mut file = File::open(path).map_err(|e| CliError::io(path, e))?;
        let len = file.metadata().map_err(|e| CliError::io(path, e))?.len();
        let header = read_header(path, &mut file)?;
        let expected = header.rows * header.dim as u64 * header.element.size() as u64;
        let found = len.saturating_sub(header.data_offset);
        if found != expected {
            return Err(CliError::input(
                path,
                format!(
                    "the header says shape ({}, {}) ({expected} bytes of data), the file holds {found}",
                    header.rows, header.dim
                ),
            ));
        }
        Ok(NpyReader {
            path: path.to_owned(),
            input: BufReader::with_capacity(1 << 20, file),
            header,
            row: 0,
        })
    }

    /// The array's dimension (columns).
    pub fn dim(&self) -> usize {
        self.header.dim
    }
}

impl RecordReader for NpyReader {
    fn next_record(&mut self) -> Result<Option<Record>, CliError> {
        if self.row == self.header.rows {
            return Ok(None);
        }
        let size = self.header.element.size();
        let mut bytes = vec![0u8; self.header.dim * size];
        self.input
            .read_exact(&mut bytes)
            .map_err(|e| CliError::io(&self.path, e))?;
        let vector = match self.header.element {
            Element::F32 => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Element::F64 => bytes
                .chunks_exact(8)
                .map(|c| {
                    f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
                })
                .collect(),
        };
        let place = Place::Row(self.row);
        self.row += 1;
        Ok(Some(Record {
            id: None,
            vector,
            payload: Payload::new(),
            place,
        }))
    }

    fn total(&self) -> Option<u64> {
        Some(self.header.rows)
    }

    fn skip(&mut self, n: u64) -> Result<(), CliError> {
        if n > self.header.rows - self.row {
            return Err(CliError::Usage(format!(
                "the checkpoint says {n} records were imported, but the input has {}",
                self.header.rows
            )));
        }
        let row_bytes = (self.header.dim * self.header.element.size()) as i64;
        self.input
            .seek_relative(n as i64 * row_bytes)
            .map_err(|e| CliError::io(&self.path, e))?;
        self.row += n;
        Ok(())
    }
}

/// The version-1 header for a `(rows, dim)` float32 array, padded to
/// [`WRITTEN_HEADER_BYTES`].
fn header_bytes(rows: u64, dim: usize) -> Vec<u8> {
    let mut dict =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {dim}), }}");
    let text_len = WRITTEN_HEADER_BYTES - 10;
    // u64 row counts and dims keep the dict far below 118 bytes.
    while dict.len() < text_len - 1 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut bytes = Vec::with_capacity(WRITTEN_HEADER_BYTES);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&[1, 0]);
    bytes.extend_from_slice(&(text_len as u16).to_le_bytes());
    bytes.extend_from_slice(dict.as_bytes());
    bytes
}

/// Writes an `.npy` file of float32 rows; the row count goes into the
/// header at [`RecordWriter::finish`].
pub struct NpyWriter {
    path: PathBuf,
    output: BufWriter<File>,
    dim: usize,
    rows: u64,
}

impl NpyWriter {
    /// Creates (truncates) `path` for rows of `dim` floats.
    pub fn create(path: &Path, dim: usize) -> Result<Self, CliError> {
        let file = File::create(path).map_err(|e| CliError::io(path, e))?;
        let mut output = BufWriter::with_capacity(1 << 20, file);
        output
            .write_all(&header_bytes(0, dim))
            .map_err(|e| CliError::io(path, e))?;
        Ok(NpyWriter {
            path: path.to_owned(),
            output,
            dim,
            rows: 0,
        })
    }
}

impl RecordWriter for NpyWriter {
    fn write(&mut self, id: u64, vector: &[f32], _payload: &Payload) -> Result<(), CliError> {
        if vector.len() != self.dim {
            return Err(CliError::input(
                &self.path,
                format!(
                    "doc id {id} has {} dimensions, the array {}",
                    vector.len(),
                    self.dim
                ),
            ));
        }
        let mut bytes = Vec::with_capacity(4 * vector.len());
        for x in vector {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        self.output
            .write_all(&bytes)
            .map_err(|e| CliError::io(&self.path, e))?;
        self.rows += 1;
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<(), CliError> {
        let this = *self;
        let path = this.path;
        let mut file = this
            .output
            .into_inner()
            .map_err(|e| CliError::io(&path, e.into_error()))?;
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.write_all(&header_bytes(this.rows, this.dim)))
            .and_then(|_| file.sync_all())
            .map_err(|e| CliError::io(&path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(path: &Path) -> Result<Vec<Vec<f32>>, CliError> {
        let mut reader = NpyReader::open(path)?;
        let mut out = Vec::new();
        while let Some(record) = reader.next_record()? {
            out.push(record.vector);
        }
        Ok(out)
    }

    fn write(path: &Path, dim: usize, rows: &[Vec<f32>]) {
        let mut writer = Box::new(NpyWriter::create(path, dim).unwrap());
        for (i, row) in rows.iter().enumerate() {
            writer.write(i as u64, row, &Payload::new()).unwrap();
        }
        writer.finish().unwrap();
    }

    #[test]
    fn written_arrays_have_numpys_layout_and_read_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npy");
        let rows = vec![vec![0.1, -2.5, 3e-38], vec![f32::MAX, 0.0, -0.0]];
        write(&path, 3, &rows);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]) as usize + 10, 128);
        let header = std::str::from_utf8(&bytes[10..128]).unwrap();
        assert!(
            header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"),
            "{header:?}"
        );
        assert!(header.ends_with('\n'));
        assert_eq!(bytes.len(), 128 + 2 * 3 * 4);
        assert_eq!(&bytes[128..132], &0.1f32.to_le_bytes());
        let back = read_all(&path).unwrap();
        assert_eq!(back.len(), 2);
        for (a, b) in back.iter().flatten().zip(rows.iter().flatten()) {
            assert_eq!(a.to_bits(), b.to_bits());
        }
    }

    #[test]
    fn an_empty_export_is_a_valid_zero_row_array() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npy");
        write(&path, 16, &[]);
        let reader = NpyReader::open(&path).unwrap();
        assert_eq!((reader.total(), reader.dim()), (Some(0), 16));
    }

    /// A file as numpy 1.26 writes `np.arange(6, dtype='<f8').reshape(2, 3)`
    /// with format version 2.0, and a 1-D float32 array.
    #[test]
    fn reads_numpy_written_variants() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v2.npy");
        let mut dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }".to_string();
        while !(12 + dict.len() + 1).is_multiple_of(64) {
            dict.push(' ');
        }
        dict.push('\n');
        let mut bytes = b"\x93NUMPY\x02\x00".to_vec();
        bytes.extend_from_slice(&(dict.len() as u32).to_le_bytes());
        bytes.extend_from_slice(dict.as_bytes());
        for x in 0..6 {
            bytes.extend_from_slice(&(x as f64).to_le_bytes());
        }
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(
            read_all(&path).unwrap(),
            vec![vec![0.0, 1.0, 2.0], vec![3.0, 4.0, 5.0]]
        );

        let path = dir.path().join("one.npy");
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }          \n";
        bytes.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        bytes.extend_from_slice(dict.as_bytes());
        bytes.extend_from_slice(&1.5f32.to_le_bytes());
        bytes.extend_from_slice(&(-1.5f32).to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read_all(&path).unwrap(), vec![vec![1.5, -1.5]]);
    }

    #[test]
    fn unsupported_or_damaged_files_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&str, &str); 4] = [
            (
                "{'descr': '<i8', 'fortran_order': False, 'shape': (1, 2), }",
                "element type <i8",
            ),
            (
                "{'descr': '>f4', 'fortran_order': False, 'shape': (1, 2), }",
                "element type >f4",
            ),
            (
                "{'descr': '<f4', 'fortran_order': True, 'shape': (1, 2), }",
                "Fortran order",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3), }",
                "expected (rows, dim)",
            ),
        ];
        for (dict, expected) in cases {
            let path = dir.path().join("bad.npy");
            let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
            bytes.extend_from_slice(&(dict.len() as u16).to_le_bytes());
            bytes.extend_from_slice(dict.as_bytes());
            bytes.extend_from_slice(&[0u8; 8]);
            std::fs::write(&path, &bytes).unwrap();
            let error = NpyReader::open(&path).err().expect(dict).to_string();
            assert!(error.contains(expected), "{dict}: {error}");
        }
        // Truncated data.
        let path = dir.path().join("short.npy");
        write(&path, 4, &[vec![1.0; 4], vec![2.0; 4]]);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let error = NpyReader::open(&path).err().unwrap().to_string();
        assert!(
            error.contains("shape (2, 4) (32 bytes of data), the file holds 29"),
            "{error}"
        );
        // Not npy at all.
        std::fs::write(&path, b"id,vector\n").unwrap();
        let error = NpyReader::open(&path).err().unwrap().to_string();
        assert!(error.contains("not an .npy file"), "{error}");
    }

    #[test]
    fn skip_seeks_to_the_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npy");
        let rows: Vec<Vec<f32>> = (0..10).map(|i| vec![i as f32, -(i as f32)]).collect();
        write(&path, 2, &rows);
        let mut reader = NpyReader::open(&path).unwrap();
        reader.skip(7).unwrap();
        let record = reader.next_record().unwrap().unwrap();
        assert_eq!(
            (record.vector, record.place),
            (vec![7.0, -7.0], Place::Row(7))
        );
        assert!(reader.skip(3).is_err(), "only 2 rows are left");
    }
}
