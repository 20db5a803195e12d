//! Errors: [`ApiError`], what an operation answers a client (an exception
//! name, a message and an HTTP status, as the real service does), and
//! [`LocalKinesisError`], why the server could not start or persist.

use std::path::PathBuf;

/// Account id used in ARNs and error messages.
pub(crate) const ACCOUNT_ID: &str = "000000000000";

/// An error answered to a client: `{"__type": exception, "message": ...}`
/// with `status` (400 for client errors, 500 for `InternalFailure`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{exception}: {message}")]
pub struct ApiError {
    /// The exception name, e.g. `ResourceNotFoundException`.
    pub exception: &'static str,
    /// Human-readable message, worded like the service's.
    pub message: String,
    /// HTTP status code.
    pub status: u16,
}

impl ApiError {
    fn client(exception: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { exception, message: message.into(), status: 400 }
    }

    /// `ResourceNotFoundException` for a stream.
    pub(crate) fn stream_not_found(stream: &str) -> ApiError {
        Self::client("ResourceNotFoundException", format!("Stream {stream} under account {ACCOUNT_ID} not found."))
    }

    /// `ResourceNotFoundException` for a shard.
    pub(crate) fn shard_not_found(stream: &str, shard_id: &str) -> ApiError {
        Self::client(
            "ResourceNotFoundException",
            format!("Shard {shard_id} in stream {stream} under account {ACCOUNT_ID} does not exist"),
        )
    }

    /// `ResourceNotFoundException` with a free message.
    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        Self::client("ResourceNotFoundException", message)
    }

    /// `ResourceInUseException`.
    pub(crate) fn in_use(message: impl Into<String>) -> ApiError {
        Self::client("ResourceInUseException", message)
    }

    /// `InvalidArgumentException`.
    pub(crate) fn invalid_argument(message: impl Into<String>) -> ApiError {
        Self::client("InvalidArgumentException", message)
    }

    /// `ValidationException` for one member that breaks a model constraint,
    /// worded as the service words it.
    pub(crate) fn validation(value: &str, member: &str, constraint: &str) -> ApiError {
        Self::client(
            "ValidationException",
            format!("1 validation error detected: Value {value} at '{member}' failed to satisfy constraint: {constraint}"),
        )
    }

    /// `SerializationException`: the body is not a valid request document.
    pub(crate) fn serialization(message: impl Into<String>) -> ApiError {
        Self::client("SerializationException", message)
    }

    /// `ExpiredIteratorException`.
    pub(crate) fn expired_iterator(message: impl Into<String>) -> ApiError {
        Self::client("ExpiredIteratorException", message)
    }

    /// `ExpiredNextTokenException`.
    pub(crate) fn expired_next_token(message: impl Into<String>) -> ApiError {
        Self::client("ExpiredNextTokenException", message)
    }

    /// `LimitExceededException`.
    pub(crate) fn limit_exceeded(message: impl Into<String>) -> ApiError {
        Self::client("LimitExceededException", message)
    }

    /// `UnknownOperationException` for a target this server does not serve.
    pub(crate) fn unknown_operation(target: &str) -> ApiError {
        Self::client("UnknownOperationException", format!("Operation {target} is not supported by shardline local-kinesis"))
    }

    /// `InternalFailure` (HTTP 500): storage failed; the client may retry.
    pub(crate) fn internal(message: impl Into<String>) -> ApiError {
        ApiError { exception: "InternalFailure", message: message.into(), status: 500 }
    }
}

impl From<LocalKinesisError> for ApiError {
    fn from(e: LocalKinesisError) -> ApiError {
        tracing::error!(error = %e, "storage error");
        ApiError::internal(e.to_string())
    }
}

/// Why the server failed to start, or a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LocalKinesisError {
    /// The listening socket could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address asked for.
        address: std::net::SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// A file or directory in the data directory could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, e.g. `write`.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Another server uses the data directory.
    #[error("data directory {path} is in use by another local kinesis server: {source}")]
    Locked {
        /// The data directory.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The metadata file is not what this version writes.
    #[error("metadata file {path} is invalid: {message}")]
    Metadata {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl LocalKinesisError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> LocalKinesisError {
        let path = path.into();
        move |source| LocalKinesisError::Io { action, path, source }
    }
}
