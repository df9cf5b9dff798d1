//! Error signatures: an error trace with what varies between two runs of
//! the same failure stripped (directories, user names, line and column
//! numbers, hex addresses, temp dirs, timestamps, UUIDs, ports, long
//! numbers), and its fingerprint. Repeats of a fingerprint are counted on
//! the existing episode instead of being stored again.

use std::sync::LazyLock;

use regex::Regex;
use sha2::{Digest, Sha256};

/// The normalised text and its fingerprint (16 hex digits of SHA-256 over
/// the error class and the normalised text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorSignature {
    pub normalized: String,
    pub fingerprint: String,
}

struct Step {
    regex: Regex,
    replacement: &'static str,
}

fn step(pattern: &str, replacement: &'static str) -> Step {
    Step {
        // Constant patterns, exercised by the tests below.
        regex: Regex::new(pattern).unwrap_or_else(|e| panic!("signature pattern: {e}")),
        replacement,
    }
}

/// In order: the specific shapes first, so that a later generic step never
/// sees half of one.
static STEPS: LazyLock<Vec<Step>> = LazyLock::new(|| {
    vec![
        step(r"\[REDACTED:[a-z_]+\]", "<redacted>"),
        step(
            r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b",
            "<uuid>",
        ),
        step(
            r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?",
            "<time>",
        ),
        step(r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b", "<time>"),
        step(r"\b0x[0-9a-fA-F]+\b", "<hex>"),
        // Directories of a path (Unix or Windows), keeping the file name:
        // /tmp/pytest-of-x/pytest-3/test_a0/app.py → <dir>/app.py
        step(
            r"(?:[A-Za-z]:)?(?:[\\/][^\\/\s:'`\x22()<>\[\],]+)+[\\/]",
            "<dir>/",
        ),
        // Ports after a host or an address marker.
        step(
            r"(?i)((?:localhost|<redacted>|[a-z0-9-]+(?:\.[a-z0-9-]+)+)):\d{1,5}\b",
            "$1:<port>",
        ),
        step(r"(?i)\bport\s+\d{1,5}\b", "port <n>"),
        // Line and column numbers: `line 42`, `:42:7`, `(42,7)`.
        step(r"(?i)\bline\s+\d+", "line <n>"),
        step(r"(?i)\b(col|column)\s+\d+", "$1 <n>"),
        step(r":\d+(?::\d+)?\b", ":<n>"),
        step(r"\(\d+,\s*\d+\)", "(<n>)"),
        // pids, sizes, durations: long numbers vary from run to run.
        step(r"\b\d{4,}\b", "<n>"),
        step(r"[ \t]+", " "),
    ]
});

/// Normalises `trace` and fingerprints it with `error_class`.
pub fn signature(error_class: &str, trace: &str) -> ErrorSignature {
    let mut text = trace.trim().to_owned();
    for step in STEPS.iter() {
        if step.regex.is_match(&text) {
            text = step.regex.replace_all(&text, step.replacement).into_owned();
        }
    }
    let normalized = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    let mut hasher = Sha256::new();
    hasher.update(error_class.as_bytes());
    hasher.update([0]);
    hasher.update(normalized.as_bytes());
    let fingerprint = hex::encode(&hasher.finalize()[..8]);
    ErrorSignature {
        normalized,
        fingerprint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_one_failure_share_a_fingerprint() {
        let a = "Traceback (most recent call last):\n  File \"/home/alice/proj/app.py\", line 42, in main\n    connect()\nConnectionRefusedError: [Errno 111] connect to db.internal:5432 refused at 2026-12-03T18:47:32Z (pid 48213, obj at 0x7f3a2b1c) request 550e8400-e29b-41d4-a716-446655440000 tmp /tmp/tmpa8f3k2/cache.db";
        let b = "Traceback (most recent call last):\n  File \"/Users/bob/work/proj/app.py\", line 57, in main\n    connect()\nConnectionRefusedError: [Errno 111] connect to db.internal:6543 refused at 2026-12-04T09:01:02+01:00 (pid 1193, obj at 0x55aa00ff) request 123e4567-e89b-12d3-a456-426614174000 tmp /tmp/tmpzz91qq/cache.db";
        let sa = signature("network_error", a);
        let sb = signature("network_error", b);
        assert_eq!(sa.normalized, sb.normalized);
        assert_eq!(sa.fingerprint, sb.fingerprint);
        for gone in [
            "alice",
            "42",
            "5432",
            "48213",
            "0x7f3a2b1c",
            "550e8400",
            "tmpa8f3k2",
            "2026",
        ] {
            assert!(!sa.normalized.contains(gone), "{gone} in {}", sa.normalized);
        }
        assert!(sa.normalized.contains("app.py"));
        assert!(sa.normalized.contains("ConnectionRefusedError"));
    }

    #[test]
    fn different_errors_or_classes_differ() {
        let a = signature(
            "dependency_error",
            "ModuleNotFoundError: No module named 'numpy'",
        );
        let b = signature(
            "dependency_error",
            "ModuleNotFoundError: No module named 'pandas'",
        );
        let c = signature("unknown", "ModuleNotFoundError: No module named 'numpy'");
        assert_ne!(a.fingerprint, b.fingerprint);
        assert_ne!(a.fingerprint, c.fingerprint);
        assert_eq!(a.fingerprint.len(), 16);
    }

    #[test]
    fn compiler_positions_are_stripped() {
        let a = signature(
            "validation_error",
            "error[E0308]: mismatched types\n --> src/main.rs:10:5",
        );
        let b = signature(
            "validation_error",
            "error[E0308]: mismatched types\n --> src/main.rs:99:17",
        );
        assert_eq!(a.fingerprint, b.fingerprint);
    }
}
