//! fvecs (the TEXMEX / ann-benchmarks vector format): per vector, its
//! dimension as a little-endian `i32`, then that many little-endian `f32`.
//! No ids, no payloads.

use std::fs::File;
use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use super::{Place, Record, RecordReader, RecordWriter};
use crate::error::CliError;
use crate::payload::Payload;

/// Dimensions above this are taken for a corrupt header, not a vector.
const MAX_DIM: i32 = 1 << 20;

/// Reads an fvecs file.
pub struct FvecsReader {
    path: PathBuf,
    input: BufReader<File>,
    row: u64,
    offset: u64,
    total: Option<u64>,
}

impl FvecsReader {
    /// Opens `path`; the total is known when the file's size is a multiple
    /// of the first vector's record size.
    pub fn open(path: &Path) -> Result<Self, CliError> {
        let file = File::open(path).map_err(|e| CliError::io(path, e))?;
        let len = file.metadata().map_err(|e| CliError::io(path, e))?.len();
        let mut input = BufReader::with_capacity(1 << 20, file);
        let mut total = None;
        let mut head = [0u8; 4];
        if len >= 4 {
            input
                .read_exact(&mut head)
                .map_err(|e| CliError::io(path, e))?;
            let dim = i32::from_le_bytes(head);
            if dim > 0 {
                let record = 4 + 4 * dim as u64;
                if len.is_multiple_of(record) {
                    total = Some(len / record);
                }
            }
            // Back to the start: the header is read again as row 0's.
            input = BufReader::with_capacity(
                1 << 20,
                File::open(path).map_err(|e| CliError::io(path, e))?,
            );
        } else if len == 0 {
            total = Some(0);
        }
        Ok(FvecsReader {
            path: path.to_owned(),
            input,
            row: 0,
            offset: 0,
            total,
        })
    }
}

impl RecordReader for FvecsReader {
    fn next_record(&mut self) -> Result<Option<Record>, CliError> {
        let place = Place::Row(self.row);
        let mut head = [0u8; 4];
        match read_full(&mut self.input, &mut head).map_err(|e| CliError::io(&self.path, e))? {
            0 => return Ok(None),
            4 => {}
            n => {
                return Err(CliError::input_at(
                    &self.path,
                    place,
                    format!(
                        "truncated: {n} of the 4 bytes of a dimension header at byte {}",
                        self.offset
                    ),
                ))
            }
        }
        let dim = i32::from_le_bytes(head);
        if dim <= 0 || dim > MAX_DIM {
            return Err(CliError::input_at(
                &self.path,
                place,
                format!(
                    "dimension header {dim} at byte {} is not a vector's (is this an fvecs file?)",
                    self.offset
                ),
            ));
        }
        let mut bytes = vec![0u8; dim as usize * 4];
        let got =
            read_full(&mut self.input, &mut bytes).map_err(|e| CliError::io(&self.path, e))?;
        if got != bytes.len() {
            return Err(CliError::input_at(
                &self.path,
                place,
                format!(
                    "truncated: the header says {dim} dimensions ({} bytes), the file ends after {got}",
                    bytes.len()
                ),
            ));
        }
        self.row += 1;
        self.offset += 4 + bytes.len() as u64;
        let vector = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(Some(Record {
            id: None,
            vector,
            payload: Payload::new(),
            place,
        }))
    }

    fn total(&self) -> Option<u64> {
        self.total
    }
}

/// Reads until `buf` is full or the input ends; how many bytes were read.
pub(crate) fn read_full(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Writes an fvecs file.
pub struct FvecsWriter {
    path: PathBuf,
    output: BufWriter<File>,
}

impl FvecsWriter {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path) -> Result<Self, CliError> {
        let file = File::create(path).map_err(|e| CliError::io(path, e))?;
        Ok(FvecsWriter {
            path: path.to_owned(),
            output: BufWriter::with_capacity(1 << 20, file),
        })
    }
}

impl RecordWriter for FvecsWriter {
    fn write(&mut self, _id: u64, vector: &[f32], _payload: &Payload) -> Result<(), CliError> {
        let dim = i32::try_from(vector.len())
            .map_err(|_| CliError::input(&self.path, "vector too long for fvecs"))?;
        let mut bytes = Vec::with_capacity(4 + 4 * vector.len());
        bytes.extend_from_slice(&dim.to_le_bytes());
        for x in vector {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        self.output
            .write_all(&bytes)
            .map_err(|e| CliError::io(&self.path, e))
    }

    fn finish(self: Box<Self>) -> Result<(), CliError> {
        let this = *self;
        let file = this
            .output
            .into_inner()
            .map_err(|e| CliError::io(&this.path, e.into_error()))?;
        file.sync_all().map_err(|e| CliError::io(&this.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(path: &Path) -> Result<Vec<Vec<f32>>, CliError> {
        let mut reader = FvecsReader::open(path)?;
        let mut out = Vec::new();
        while let Some(record) = reader.next_record()? {
            out.push(record.vector);
        }
        Ok(out)
    }

    #[test]
    fn vectors_round_trip_bit_for_bit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.fvecs");
        let vectors = vec![
            vec![1.0, -0.0, f32::MIN_POSITIVE, 3.5],
            vec![0.1, 0.2, 0.3, f32::MAX],
            vec![-1e-30, 7.0, 8.0, 9.0],
        ];
        let mut writer = Box::new(FvecsWriter::create(&path).unwrap());
        for (i, v) in vectors.iter().enumerate() {
            writer.write(i as u64, v, &Payload::new()).unwrap();
        }
        writer.finish().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 3 * (4 + 16));
        assert_eq!(FvecsReader::open(&path).unwrap().total(), Some(3));
        let back = read_all(&path).unwrap();
        let bits = |v: &Vec<Vec<f32>>| -> Vec<Vec<u32>> {
            v.iter()
                .map(|r| r.iter().map(|x| x.to_bits()).collect())
                .collect()
        };
        assert_eq!(bits(&back), bits(&vectors));
    }

    #[test]
    fn a_truncated_file_names_the_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.fvecs");
        let mut bytes = Vec::new();
        for row in 0..2 {
            bytes.extend_from_slice(&3i32.to_le_bytes());
            for x in 0..3 {
                bytes.extend_from_slice(&((row * 3 + x) as f32).to_le_bytes());
            }
        }
        bytes.truncate(bytes.len() - 2);
        std::fs::write(&path, &bytes).unwrap();
        let error = read_all(&path).unwrap_err().to_string();
        assert!(error.contains("row 1: truncated"), "{error}");
    }

    #[test]
    fn a_file_that_is_not_fvecs_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.fvecs");
        std::fs::write(&path, b"{\"id\": 1, \"vector\": [1, 2]}\n").unwrap();
        let error = read_all(&path).unwrap_err().to_string();
        assert!(
            error.contains("row 0: dimension header") && error.contains("is this an fvecs file"),
            "{error}"
        );
    }
}
