//! The one error type of the tool, and the exit status each kind maps to.

use std::path::{Path, PathBuf};

/// Everything that can make a `kyro` command fail. Each variant says whose
/// fault it is (the flags, the input file, the network, the server), which
/// decides the exit status (see `docs/cli.md`).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Flags that do not fit together, or a state the command refuses to
    /// work from (an unfinished import without `--resume`).
    #[error("{0}")]
    Usage(String),
    /// An input file that does not parse or does not fit the instance; the
    /// message names the file and the line or row.
    #[error("{0}")]
    Input(String),
    /// Reading or writing a local file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The server (or gateway) could not be reached at all.
    #[error("cannot reach {what} at {url}: {reason}")]
    Connect {
        /// `kyro-server` or `the gateway`.
        what: &'static str,
        /// The address tried.
        url: String,
        /// Why.
        reason: String,
    },
    /// kyro-server answered an RPC with an error status.
    #[error("{rpc}: {} ({}){}", describe(.status), code_name(.status.code()), hint(.status.code()))]
    Server {
        /// The RPC that failed.
        rpc: &'static str,
        /// The status it returned.
        status: tonic::Status,
    },
    /// The gateway answered with an error.
    #[error("gateway {method} {path}: HTTP {status} {code}: {message}")]
    Gateway {
        /// The request's method.
        method: &'static str,
        /// The request's path.
        path: String,
        /// The HTTP status.
        status: u16,
        /// The gateway's error code (`unauthenticated`, `not_found`, …).
        code: String,
        /// The gateway's message.
        message: String,
    },
    /// Some points of a BulkInsert batch were refused by the server.
    #[error("{0}")]
    Refused(String),
    /// A local program the command runs (`kyro-server restore`) failed.
    #[error("{0}")]
    External(String),
}

impl CliError {
    /// A usage error.
    pub fn usage(message: impl Into<String>) -> Self {
        CliError::Usage(message.into())
    }

    /// An input error at a place in a file: `data.jsonl: line 7: …`.
    pub fn input_at(
        path: &Path,
        place: impl std::fmt::Display,
        message: impl std::fmt::Display,
    ) -> Self {
        CliError::Input(format!("{}: {place}: {message}", path.display()))
    }

    /// An input error about a whole file.
    pub fn input(path: &Path, message: impl std::fmt::Display) -> Self {
        CliError::Input(format!("{}: {message}", path.display()))
    }

    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        CliError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// A failed RPC; transport failures become [`CliError::Connect`]-like
    /// server errors with code UNAVAILABLE, as tonic reports them.
    pub fn server(rpc: &'static str, status: tonic::Status) -> Self {
        CliError::Server { rpc, status }
    }

    /// The process exit status for this error (documented in `docs/cli.md`).
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Input(_) => 3,
            CliError::Connect { .. } => 4,
            CliError::Server { status, .. } if is_transport_failure(status) => 4,
            CliError::Server { status, .. } => match status.code() {
                tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => 5,
                _ => 6,
            },
            CliError::Gateway { status, .. } => match status {
                401 | 403 => 5,
                503 => 4,
                _ => 6,
            },
            CliError::Refused(_) => 6,
            CliError::Io { .. } | CliError::External(_) => 1,
        }
    }
}

/// The gRPC name of a status code, as the API documentation writes them.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Whether the status is a local transport failure (the connection broke)
/// rather than an answer of the server: tonic keeps the transport error as
/// the status's source; statuses the server sent have none.
pub fn is_transport_failure(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::Unavailable || std::error::Error::source(status).is_some()
}

/// The status message with the transport errors behind it.
fn describe(status: &tonic::Status) -> String {
    match std::error::Error::source(status) {
        Some(source) => {
            let chain = error_chain(source);
            if status.message().contains(&chain) {
                status.message().to_owned()
            } else {
                format!("{}: {chain}", status.message())
            }
        }
        None => status.message().to_owned(),
    }
}

fn hint(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::Unauthenticated => "; pass a key with --key or KYRO_API_KEY",
        tonic::Code::PermissionDenied => "; the key lacks the scope named",
        _ => "",
    }
}

/// An error with its sources, `a: b: c`.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let next = e.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = e.source();
    }
    text
}
