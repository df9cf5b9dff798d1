//! The segment file format: a 64-byte header, then one payload.
//!
//! ```text
//! offset size  field
//!  0      8    magic  b"KYROSEG\0"
//!  8      4    format version (u32 LE, currently 1)
//! 12      4    kind (u32 LE, see FileKind)
//! 16      8    rows (u64 LE)
//! 24      8    width: elements per row (u64 LE)
//! 32      8    payload length in bytes (u64 LE)
//! 40      4    CRC-32 of the payload
//! 44      4    CRC-32 of bytes 0..44
//! 48     16    reserved, zero
//! 64      …    payload
//! ```
//!
//! A reader refuses a file whose magic, version, kind, lengths or either
//! checksum disagree, and names the file in the error, so a torn or corrupt
//! segment is never served. Files are written to a temporary name, fsynced,
//! renamed into place and the directory fsynced: a crash leaves either the
//! whole file or none.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use thiserror::Error;

/// First eight bytes of every segment file.
pub const MAGIC: [u8; 8] = *b"KYROSEG\0";
/// The format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes before the payload; a multiple of 64 so payloads are cache-line
/// (and therefore `f32`/`u32`/`u64`) aligned in a page-aligned mmap.
pub const HEADER_BYTES: usize = 64;

/// What a segment file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum FileKind {
    /// Prepared `f32` vectors, `width` = dimension.
    VectorsF32 = 1,
    /// `i8` quantised vectors, `width` = dimension.
    VectorsI8 = 2,
    /// External id (`u64`) per internal id.
    Ids = 3,
    /// Deleted bitmap, `u64` words, bit `i % 64` of word `i / 64`.
    Deleted = 4,
    /// HNSW graph: parameters, levels and neighbour lists.
    Graph = 5,
    /// The storage engine's point table: `(point id, slot, doc id)` triples
    /// (`u64` each, `width` = 3) of a segment's live points, sorted by point id.
    PointTable = 6,
}

/// Why a segment file could not be written or opened.
#[derive(Debug, Error)]
pub enum SegmentError {
    /// The operating system refused an operation on `path`.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// `path` is not a valid segment file of the expected kind.
    #[error("{path}: corrupt segment file: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

impl SegmentError {
    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        SegmentError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn corrupt(path: &Path, reason: impl Into<String>) -> Self {
        SegmentError::Corrupt {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// Writes `payload` as a segment file at `path`, atomically (temp file,
/// fsync, rename, fsync of the directory).
pub fn write_file(
    path: &Path,
    kind: FileKind,
    rows: u64,
    width: u64,
    payload: &[u8],
) -> Result<(), SegmentError> {
    let mut header = [0u8; HEADER_BYTES];
    header[0..8].copy_from_slice(&MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[12..16].copy_from_slice(&(kind as u32).to_le_bytes());
    header[16..24].copy_from_slice(&rows.to_le_bytes());
    header[24..32].copy_from_slice(&width.to_le_bytes());
    header[32..40].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    header[40..44].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    let header_crc = crc32fast::hash(&header[..44]);
    header[44..48].copy_from_slice(&header_crc.to_le_bytes());

    let tmp = path.with_extension("tmp");
    let write = || -> io::Result<()> {
        let mut file = File::create(&tmp)?;
        file.write_all(&header)?;
        file.write_all(payload)?;
        file.sync_all()
    };
    write().map_err(|e| SegmentError::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| SegmentError::io(path, e))?;
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| SegmentError::io(dir, e))?;
    }
    Ok(())
}

/// CRC-32 of everything after the header, read with `pread` rather than
/// through the mapping: pages read this way sit in the page cache without
/// counting towards the process's resident set, so verifying a large vector
/// file at open does not make the whole file resident (searches touch only the
/// rows they need).
fn payload_crc(file: &File) -> io::Result<u32> {
    const CHUNK: usize = 1 << 20;
    let mut hasher = crc32fast::Hasher::new();
    let mut buffer = vec![0u8; CHUNK];
    let mut offset = HEADER_BYTES as u64;
    loop {
        let read = file.read_at(&mut buffer, offset)?;
        if read == 0 {
            return Ok(hasher.finalize());
        }
        hasher.update(&buffer[..read]);
        offset += read as u64;
    }
}

/// A validated, memory-mapped segment file.
pub struct MappedFile {
    mmap: Mmap,
    path: PathBuf,
    rows: u64,
    width: u64,
}

impl MappedFile {
    /// Maps `path` and checks that it is a whole, uncorrupted file of `kind`.
    pub fn open(path: &Path, kind: FileKind) -> Result<Self, SegmentError> {
        let file = File::open(path).map_err(|e| SegmentError::io(path, e))?;
        // SAFETY: segment files are immutable once renamed into place and
        // only this engine writes them; nothing truncates or rewrites a file
        // while it is mapped (a segment is replaced by a new file, never
        // modified).
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| SegmentError::io(path, e))?;
        if mmap.len() < HEADER_BYTES {
            return Err(SegmentError::corrupt(
                path,
                format!("{} bytes is shorter than the header", mmap.len()),
            ));
        }
        let header = &mmap[..HEADER_BYTES];
        let u32_at = |at: usize| {
            u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
        };
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&header[at..at + 8]);
            u64::from_le_bytes(b)
        };
        if header[0..8] != MAGIC {
            return Err(SegmentError::corrupt(path, "bad magic"));
        }
        if crc32fast::hash(&header[..44]) != u32_at(44) {
            return Err(SegmentError::corrupt(path, "header checksum mismatch"));
        }
        let version = u32_at(8);
        if version != FORMAT_VERSION {
            return Err(SegmentError::corrupt(
                path,
                format!("format version {version}, this build reads {FORMAT_VERSION}"),
            ));
        }
        if u32_at(12) != kind as u32 {
            return Err(SegmentError::corrupt(
                path,
                format!("holds kind {}, expected {kind:?}", u32_at(12)),
            ));
        }
        let payload_len = u64_at(32);
        let actual = (mmap.len() - HEADER_BYTES) as u64;
        if payload_len != actual {
            return Err(SegmentError::corrupt(
                path,
                format!(
                    "header promises {payload_len} payload bytes, file has {actual} (torn write?)"
                ),
            ));
        }
        if payload_crc(&file).map_err(|e| SegmentError::io(path, e))? != u32_at(40) {
            return Err(SegmentError::corrupt(path, "payload checksum mismatch"));
        }
        Ok(Self {
            rows: u64_at(16),
            width: u64_at(24),
            path: path.to_path_buf(),
            mmap,
        })
    }

    /// Rows, as written in the header.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Elements per row, as written in the header.
    pub fn width(&self) -> u64 {
        self.width
    }

    /// The file's path, for error messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.mmap[HEADER_BYTES..]
    }

    /// `len` elements of `T` starting `byte_offset` bytes into the payload,
    /// or an error naming the file when they do not fit or are misaligned.
    pub fn section<T: bytemuck::Pod>(
        &self,
        byte_offset: usize,
        len: usize,
    ) -> Result<&[T], SegmentError> {
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .and_then(|n| byte_offset.checked_add(n).map(|end| (byte_offset, end)))
            .and_then(|(start, end)| self.payload().get(start..end))
            .ok_or_else(|| {
                SegmentError::corrupt(
                    &self.path,
                    format!("section at {byte_offset} of {len} elements is out of bounds"),
                )
            })?;
        bytemuck::try_cast_slice(bytes).map_err(|e| {
            SegmentError::corrupt(&self.path, format!("section at {byte_offset}: {e}"))
        })
    }
}
