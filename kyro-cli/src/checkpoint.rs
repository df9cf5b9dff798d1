//! The checkpoint of an import: how many records of the input the server
//! has acknowledged, rewritten (atomically: write, sync, rename) after each
//! acknowledged batch and removed when the import completes. `--resume`
//! skips that many records and goes on; points are upserts, so a batch sent
//! twice (acknowledged but not yet recorded when the import stopped) leaves
//! no duplicates.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::CliError;
use crate::formats::{with_suffix, Format};

/// What a checkpoint file holds (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The file format version (1).
    pub version: u32,
    /// The input file, absolute.
    pub input: PathBuf,
    /// Its format.
    pub format: Format,
    /// The namespace imported into.
    pub namespace: String,
    /// The server URL.
    pub url: String,
    /// Records of the input acknowledged by the server, from the start.
    pub acknowledged: u64,
    /// Batches acknowledged.
    pub batches: u64,
    /// When it was written (seconds since the Unix epoch).
    pub updated_at: u64,
}

impl Checkpoint {
    /// The default checkpoint path of an input file: `<input>.kyro-import`.
    pub fn default_path(input: &Path) -> PathBuf {
        with_suffix(input, ".kyro-import")
    }

    /// Reads `path`; `None` when it does not exist.
    pub fn read(path: &Path) -> Result<Option<Checkpoint>, CliError> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(CliError::io(path, e)),
        };
        let checkpoint: Checkpoint = serde_json::from_str(&text).map_err(|e| {
            CliError::usage(format!(
                "{}: not a kyro import checkpoint ({e}); delete it to start over",
                path.display()
            ))
        })?;
        if checkpoint.version != 1 {
            return Err(CliError::usage(format!(
                "{}: checkpoint version {} is not understood by this kyro",
                path.display(),
                checkpoint.version
            )));
        }
        Ok(Some(checkpoint))
    }

    /// Writes it to `path`: a temporary file, synced, renamed over it.
    pub fn write(&self, path: &Path) -> Result<(), CliError> {
        let temporary = with_suffix(path, ".tmp");
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| CliError::io(path, std::io::Error::other(e)))?;
        let mut file = fs::File::create(&temporary).map_err(|e| CliError::io(&temporary, e))?;
        file.write_all(text.as_bytes())
            .and_then(|_| file.write_all(b"\n"))
            .and_then(|_| file.sync_all())
            .map_err(|e| CliError::io(&temporary, e))?;
        fs::rename(&temporary, path).map_err(|e| CliError::io(path, e))
    }

    /// Refuses to resume an import of something else.
    pub fn check_matches(&self, path: &Path, other: &Checkpoint) -> Result<(), CliError> {
        let mismatch = |what: &str, theirs: String, ours: String| {
            Err(CliError::usage(format!(
                "{}: the checkpoint is of an import with {what} {theirs}, not {ours}; delete it to start over",
                path.display()
            )))
        };
        if self.input != other.input {
            return mismatch(
                "input",
                self.input.display().to_string(),
                other.input.display().to_string(),
            );
        }
        if self.namespace != other.namespace {
            return mismatch("namespace", self.namespace.clone(), other.namespace.clone());
        }
        if self.format != other.format {
            return mismatch(
                "format",
                self.format.name().into(),
                other.format.name().into(),
            );
        }
        Ok(())
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_reads_back_and_guards_its_import() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl.kyro-import");
        assert_eq!(Checkpoint::read(&path).unwrap(), None);
        let checkpoint = Checkpoint {
            version: 1,
            input: dir.path().join("in.jsonl"),
            format: Format::Jsonl,
            namespace: "episodes".into(),
            url: "http://127.0.0.1:50051".into(),
            acknowledged: 2000,
            batches: 4,
            updated_at: now(),
        };
        checkpoint.write(&path).unwrap();
        let back = Checkpoint::read(&path).unwrap().unwrap();
        assert_eq!(back, checkpoint);
        assert!(!with_suffix(&path, ".tmp").exists());
        let other = Checkpoint {
            namespace: "other".into(),
            ..checkpoint.clone()
        };
        let error = back.check_matches(&path, &other).unwrap_err().to_string();
        assert!(error.contains("namespace episodes, not other"), "{error}");
        std::fs::write(&path, "garbage").unwrap();
        assert!(matches!(Checkpoint::read(&path), Err(CliError::Usage(_))));
    }
}
