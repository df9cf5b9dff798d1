//! Reading and writing the TEXMEX vector file formats used by ANN benchmarks.
//!
//! Every row is stored as a little-endian `i32` dimension followed by `dim`
//! values: `f32` for `.fvecs`, `i32` for `.ivecs` and `u8` for `.bvecs`.
//! There is no file header, so the only way to detect a damaged file is to
//! check each row: every row must declare the same dimension and carry all of
//! its bytes. Errors name the file and the zero-based row that failed, because
//! "unexpected end of file" on a 10 GB download is not actionable.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Size of the per-row dimension header.
const HEADER_BYTES: usize = 4;

/// Rows between two progress callbacks: often enough for a smooth bar,
/// rare enough that the callback never shows up in a profile.
const PROGRESS_EVERY: usize = 4096;

/// Errors produced while reading or writing vector files.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The operating system refused an open, read or write. The OS error is
    /// the `source`, not part of the message, so error chains (anyhow's
    /// `Caused by:`) do not print it twice.
    #[error("I/O error on {}", .path.display())]
    Io {
        /// File being accessed.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// The file ends in the middle of a row.
    #[error("{}: row {row} is truncated: expected {expected} bytes, file ends after {got}", .path.display())]
    Truncated {
        /// File being read.
        path: PathBuf,
        /// Zero-based index of the incomplete row.
        row: usize,
        /// Bytes the row should have (header included).
        expected: usize,
        /// Bytes actually present.
        got: usize,
    },
    /// A row declares a different dimension from row 0.
    #[error("{}: row {row} has dimension {found}, but row 0 has dimension {expected}", .path.display())]
    DimMismatch {
        /// File being read.
        path: PathBuf,
        /// Zero-based index of the offending row.
        row: usize,
        /// Dimension of row 0.
        expected: usize,
        /// Dimension declared by this row.
        found: i64,
    },
    /// Row 0 declares a dimension that cannot be right (zero or negative).
    #[error("{}: row 0 declares invalid dimension {dim}", .path.display())]
    InvalidDim {
        /// File being read.
        path: PathBuf,
        /// Declared dimension.
        dim: i64,
    },
    /// The file holds no rows at all.
    #[error("{}: file contains no vectors", .path.display())]
    Empty {
        /// File being read.
        path: PathBuf,
    },
    /// The extension is not one of the supported formats.
    #[error("{}: unsupported extension, expected one of {expected}", .path.display())]
    UnknownFormat {
        /// File being accessed.
        path: PathBuf,
        /// Human-readable list of accepted extensions.
        expected: &'static str,
    },
    /// A matrix cannot be written because its dimension overflows the `i32` header.
    #[error("{}: dimension {dim} does not fit in the i32 row header", .path.display())]
    DimTooLarge {
        /// File being written.
        path: PathBuf,
        /// Offending dimension.
        dim: usize,
    },
}

/// A dense row-major matrix: `rows()` vectors of `dim()` elements each.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix<T> {
    dim: usize,
    data: Vec<T>,
}

impl<T> Matrix<T> {
    /// Wraps row-major `data` with `dim` columns.
    ///
    /// # Panics
    /// If `dim` is zero or `data.len()` is not a multiple of `dim`; both are
    /// programming errors, never a property of an input file.
    pub fn new(dim: usize, data: Vec<T>) -> Self {
        assert!(dim > 0, "matrix dimension must be positive");
        assert_eq!(data.len() % dim, 0, "data length is not a multiple of dim");
        Self { dim, data }
    }

    /// Number of elements per row.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.data.len() / self.dim
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Row `i`.
    ///
    /// # Panics
    /// If `i >= self.rows()`.
    pub fn row(&self, i: usize) -> &[T] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Iterator over all rows in order.
    pub fn iter_rows(&self) -> std::slice::ChunksExact<'_, T> {
        self.data.chunks_exact(self.dim)
    }

    /// The whole matrix as one row-major slice.
    pub fn as_slice(&self) -> &[T] {
        &self.data
    }

    /// Keeps only the first `rows` rows (no-op when there are fewer).
    pub fn truncate_rows(&mut self, rows: usize) {
        self.data.truncate(rows.saturating_mul(self.dim));
    }
}

/// The on-disk formats this module understands, chosen by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VecFormat {
    /// `f32` elements.
    Fvecs,
    /// `i32` elements (ground-truth neighbour ids).
    Ivecs,
    /// `u8` elements (e.g. SIFT1B), widened to `f32` on load.
    Bvecs,
}

impl VecFormat {
    /// Detects the format from the extension of `path` (case-insensitive).
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "fvecs" => Some(Self::Fvecs),
            "ivecs" => Some(Self::Ivecs),
            "bvecs" => Some(Self::Bvecs),
            _ => None,
        }
    }

    fn element_bytes(self) -> usize {
        match self {
            Self::Fvecs | Self::Ivecs => 4,
            Self::Bvecs => 1,
        }
    }
}

/// Reads float vectors from a `.fvecs` or `.bvecs` file (chosen by extension),
/// keeping at most `limit` rows.
pub fn read_vectors(path: &Path, limit: Option<usize>) -> Result<Matrix<f32>, DatasetError> {
    read_vectors_with_progress(path, limit, &mut |_, _| {})
}

/// Like [`read_vectors`], calling `progress(rows_read, rows_expected)` every
/// few thousand rows and once at the end. `rows_expected` is derived from
/// the file size and the dimension of row 0, capped by `limit`.
pub fn read_vectors_with_progress(
    path: &Path,
    limit: Option<usize>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Matrix<f32>, DatasetError> {
    match VecFormat::from_path(path) {
        Some(VecFormat::Fvecs) => read_rows(path, VecFormat::Fvecs, limit, progress, |b| {
            f32::from_le_bytes([b[0], b[1], b[2], b[3]])
        }),
        Some(VecFormat::Bvecs) => {
            read_rows(path, VecFormat::Bvecs, limit, progress, |b| f32::from(b[0]))
        }
        _ => Err(DatasetError::UnknownFormat {
            path: path.to_path_buf(),
            expected: ".fvecs, .bvecs",
        }),
    }
}

/// Reads a `.fvecs` file regardless of its extension.
pub fn read_fvecs(path: &Path, limit: Option<usize>) -> Result<Matrix<f32>, DatasetError> {
    read_rows(path, VecFormat::Fvecs, limit, &mut |_, _| {}, |b| {
        f32::from_le_bytes([b[0], b[1], b[2], b[3]])
    })
}

/// Reads a `.bvecs` file regardless of its extension, widening bytes to `f32`.
pub fn read_bvecs(path: &Path, limit: Option<usize>) -> Result<Matrix<f32>, DatasetError> {
    read_rows(path, VecFormat::Bvecs, limit, &mut |_, _| {}, |b| {
        f32::from(b[0])
    })
}

/// Reads a `.ivecs` file (typically ground-truth neighbour ids).
pub fn read_ivecs(path: &Path, limit: Option<usize>) -> Result<Matrix<i32>, DatasetError> {
    read_rows(path, VecFormat::Ivecs, limit, &mut |_, _| {}, |b| {
        i32::from_le_bytes([b[0], b[1], b[2], b[3]])
    })
}

/// Writes `matrix` as `.fvecs`.
pub fn write_fvecs(path: &Path, matrix: &Matrix<f32>) -> Result<(), DatasetError> {
    write_rows(path, matrix, |v| v.to_le_bytes())
}

/// Writes `matrix` as `.ivecs`.
pub fn write_ivecs(path: &Path, matrix: &Matrix<i32>) -> Result<(), DatasetError> {
    write_rows(path, matrix, |v| v.to_le_bytes())
}

/// Fills `buf` from `reader`, returning how many bytes were read; fewer than
/// `buf.len()` means end of file. `read_exact` cannot tell us how far it got,
/// which the truncation error needs.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn read_rows<T>(
    path: &Path,
    format: VecFormat,
    limit: Option<usize>,
    progress: &mut dyn FnMut(usize, usize),
    decode: impl Fn(&[u8]) -> T,
) -> Result<Matrix<T>, DatasetError> {
    let io_err = |source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let file_len = file.metadata().map_err(io_err)?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let elem = format.element_bytes();
    let limit = limit.unwrap_or(usize::MAX);

    let mut header = [0u8; HEADER_BYTES];
    let mut row_buf = Vec::new();
    let mut data = Vec::new();
    let mut dim = 0usize;
    let mut expected_rows = 0usize;
    let mut row = 0usize;

    while row < limit {
        let got = read_full(&mut reader, &mut header).map_err(io_err)?;
        if got == 0 {
            break;
        }
        let declared = i64::from(i32::from_le_bytes(header));
        if row == 0 {
            if declared <= 0 {
                return Err(DatasetError::InvalidDim {
                    path: path.to_path_buf(),
                    dim: declared,
                });
            }
            dim = declared as usize;
            row_buf.resize(dim * elem, 0);
            // Reserve up front from the file size: avoids repeated doubling
            // (and the 2x peak memory it causes) on multi-GB files.
            let row_bytes = (HEADER_BYTES + dim * elem) as u64;
            expected_rows = usize::try_from(file_len / row_bytes)
                .unwrap_or(usize::MAX)
                .min(limit);
            data.reserve_exact(expected_rows.saturating_mul(dim));
        }
        let row_bytes = HEADER_BYTES + dim * elem;
        if got < HEADER_BYTES {
            return Err(DatasetError::Truncated {
                path: path.to_path_buf(),
                row,
                expected: row_bytes,
                got,
            });
        }
        if declared != dim as i64 {
            return Err(DatasetError::DimMismatch {
                path: path.to_path_buf(),
                row,
                expected: dim,
                found: declared,
            });
        }
        let got = read_full(&mut reader, &mut row_buf).map_err(io_err)?;
        if got < row_buf.len() {
            return Err(DatasetError::Truncated {
                path: path.to_path_buf(),
                row,
                expected: row_bytes,
                got: HEADER_BYTES + got,
            });
        }
        data.extend(row_buf.chunks_exact(elem).map(&decode));
        row += 1;
        if row.is_multiple_of(PROGRESS_EVERY) {
            progress(row, expected_rows.max(row));
        }
    }

    if row == 0 {
        return Err(DatasetError::Empty {
            path: path.to_path_buf(),
        });
    }
    progress(row, row);
    Ok(Matrix::new(dim, data))
}

fn write_rows<T, const N: usize>(
    path: &Path,
    matrix: &Matrix<T>,
    encode: impl Fn(&T) -> [u8; N],
) -> Result<(), DatasetError> {
    let io_err = |source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dim = i32::try_from(matrix.dim()).map_err(|_| DatasetError::DimTooLarge {
        path: path.to_path_buf(),
        dim: matrix.dim(),
    })?;
    let file = File::create(path).map_err(io_err)?;
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    for row in matrix.iter_rows() {
        writer.write_all(&dim.to_le_bytes()).map_err(io_err)?;
        for value in row {
            writer.write_all(&encode(value)).map_err(io_err)?;
        }
    }
    // An explicit flush surfaces write errors that Drop would swallow.
    writer.flush().map_err(io_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(dir: &tempfile::TempDir, name: &str) -> PathBuf {
        dir.path().join(name)
    }

    #[test]
    fn fvecs_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = tmp(&dir, "a.fvecs");
        let m = Matrix::new(3, vec![1.0, -2.5, 3.25, 0.0, f32::MIN_POSITIVE, 1e30]);
        write_fvecs(&path, &m).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 2 * (4 + 3 * 4));
        assert_eq!(read_fvecs(&path, None).unwrap(), m);
        assert_eq!(read_vectors(&path, None).unwrap(), m);
    }

    #[test]
    fn ivecs_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = tmp(&dir, "gt.ivecs");
        let m = Matrix::new(2, vec![0, 7, i32::MAX, -1, 5, 5]);
        write_ivecs(&path, &m).unwrap();
        assert_eq!(read_ivecs(&path, None).unwrap(), m);
    }

    #[test]
    fn limit_keeps_first_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = tmp(&dir, "a.fvecs");
        let m = Matrix::new(2, (0..20).map(|v| v as f32).collect());
        write_fvecs(&path, &m).unwrap();
        let got = read_fvecs(&path, Some(3)).unwrap();
        assert_eq!(got.rows(), 3);
        assert_eq!(got.row(2), &[4.0, 5.0]);
        // A limit larger than the file is not an error.
        assert_eq!(read_fvecs(&path, Some(1000)).unwrap().rows(), 10);
    }

    #[test]
    fn bvecs_widen_to_f32() {
        let dir = tempfile::tempdir().unwrap();
        let path = tmp(&dir, "b.bvecs");
        let mut bytes = Vec::new();
        for row in [[0u8, 128, 255], [1, 2, 3]] {
            bytes.extend_from_slice(&3i32.to_le_bytes());
            bytes.extend_from_slice(&row);
        }
        std::fs::write(&path, bytes).unwrap();
        let m = read_vectors(&path, None).unwrap();
        assert_eq!(m.as_slice(), &[0.0, 128.0, 255.0, 1.0, 2.0, 3.0]);
        assert_eq!(read_bvecs(&path, Some(1)).unwrap().rows(), 1);
    }

    #[test]
    fn truncated_row_names_file_and_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = tmp(&dir, "cut.fvecs");
        let m = Matrix::new(4, vec![1.0f32; 12]);
        write_fvecs(&path, &m).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        // Cut two floats off the last row.
        std::fs::write(&path, &bytes[..bytes.len() - 8]).unwrap();
        let err = read_fvecs(&path, None).unwrap_err();
        assert!(
            matches!(
                err,
                DatasetError::Truncated {
                    row: 2,
                    expected: 20,
                    got: 12,
                    ..
                }
            ),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("cut.fvecs") && msg.contains("row 2"), "{msg}");
        // Rows before the cut are still readable with a limit.
        assert_eq!(read_fvecs(&path, Some(2)).unwrap().rows(), 2);
    }

    #[test]
    fn truncated_header_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = tmp(&dir, "cut.ivecs");
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&1i32.to_le_bytes());
        bytes.extend_from_slice(&9i32.to_le_bytes());
        bytes.extend_from_slice(&[1, 0]);
        std::fs::write(&path, bytes).unwrap();
        let err = read_ivecs(&path, None).unwrap_err();
        assert!(
            matches!(err, DatasetError::Truncated { row: 1, got: 2, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn inconsistent_dims_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = tmp(&dir, "mixed.fvecs");
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&2i32.to_le_bytes());
        bytes.extend_from_slice(&[0u8; 8]);
        bytes.extend_from_slice(&3i32.to_le_bytes());
        bytes.extend_from_slice(&[0u8; 12]);
        std::fs::write(&path, bytes).unwrap();
        let err = read_fvecs(&path, None).unwrap_err();
        assert!(
            matches!(
                err,
                DatasetError::DimMismatch {
                    row: 1,
                    expected: 2,
                    found: 3,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn empty_and_bad_files_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let empty = tmp(&dir, "empty.fvecs");
        std::fs::write(&empty, []).unwrap();
        assert!(matches!(
            read_fvecs(&empty, None),
            Err(DatasetError::Empty { .. })
        ));

        let negative = tmp(&dir, "neg.fvecs");
        std::fs::write(&negative, (-5i32).to_le_bytes()).unwrap();
        assert!(matches!(
            read_fvecs(&negative, None),
            Err(DatasetError::InvalidDim { dim: -5, .. })
        ));

        let missing = tmp(&dir, "missing.fvecs");
        let err = read_fvecs(&missing, None).unwrap_err();
        assert!(err.to_string().contains("missing.fvecs"));

        let txt = tmp(&dir, "vectors.txt");
        assert!(matches!(
            read_vectors(&txt, None),
            Err(DatasetError::UnknownFormat { .. })
        ));
    }

    #[test]
    fn progress_reports_completion() {
        let dir = tempfile::tempdir().unwrap();
        let path = tmp(&dir, "p.fvecs");
        write_fvecs(&path, &Matrix::new(1, vec![0.0; 10_000])).unwrap();
        let mut calls = Vec::new();
        read_vectors_with_progress(&path, None, &mut |done, total| calls.push((done, total)))
            .unwrap();
        assert_eq!(calls.first(), Some(&(4096, 10_000)));
        assert_eq!(calls.last(), Some(&(10_000, 10_000)));
    }
}
