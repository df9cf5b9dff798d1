//! How engine errors become gRPC statuses: the caller's mistakes are
//! INVALID_ARGUMENT or NOT_FOUND with the engine's message (which names the
//! field); failures of the server itself are INTERNAL and logged.
//!
//! Handlers fail with [`RpcError`], so that `?` works on engine calls and on
//! the server's own checks alike; every engine error reaches the wire
//! through [`from_storage`] / [`from_engine`].

use kyro_engine::storage::StorageError;
use kyro_engine::EngineError;
use tonic::Status;

/// Why a handler failed: an engine error, mapped here, or a status the
/// server decided itself (a scope, a count, a malformed message).
#[derive(Debug)]
pub enum RpcError {
    Storage(StorageError),
    Engine(EngineError),
    Status(Status),
}

impl From<StorageError> for RpcError {
    fn from(error: StorageError) -> Self {
        RpcError::Storage(error)
    }
}

impl From<EngineError> for RpcError {
    fn from(error: EngineError) -> Self {
        RpcError::Engine(error)
    }
}

impl From<Status> for RpcError {
    fn from(status: Status) -> Self {
        RpcError::Status(status)
    }
}

impl From<RpcError> for Status {
    fn from(error: RpcError) -> Self {
        match error {
            RpcError::Storage(e) => from_storage(e),
            RpcError::Engine(e) => from_engine(e),
            RpcError::Status(status) => status,
        }
    }
}

/// The status a storage error is reported with.
pub fn from_storage(error: StorageError) -> Status {
    match error {
        StorageError::Invalid(e) => from_engine(e),
        e @ (StorageError::NamespaceNotFound { .. } | StorageError::DocNotFound { .. }) => {
            Status::not_found(e.to_string())
        }
        e @ StorageError::Snapshot { .. } => Status::failed_precondition(e.to_string()),
        e @ StorageError::ConfigMismatch { .. } => Status::failed_precondition(e.to_string()),
        e => {
            tracing::error!(error = %e, "storage failure");
            Status::internal(format!("storage failure: {e}"))
        }
    }
}

/// The status an engine validation error is reported with.
pub fn from_engine(error: EngineError) -> Status {
    match error {
        EngineError::CapacityExceeded { .. } => Status::resource_exhausted(error.to_string()),
        // Only shutdown cancels engine work: the client may retry elsewhere.
        EngineError::Cancelled { .. } => Status::unavailable(error.to_string()),
        e => Status::invalid_argument(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_errors_keep_their_field_names() {
        let status = from_storage(StorageError::Invalid(EngineError::DimensionMismatch {
            expected: 384,
            got: 3,
        }));
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status.message().starts_with("vector:"),
            "{}",
            status.message()
        );
        let status = from_storage(StorageError::NamespaceNotFound {
            tenant: "a".into(),
            namespace: "b".into(),
        });
        assert_eq!(status.code(), tonic::Code::NotFound);
    }
}
