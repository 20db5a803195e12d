//! Lease store errors, each classified as retriable or permanent.

use std::path::PathBuf;

use shardline_api::ErrorKind;

/// A boxed error from a backend (SDK or I/O).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong with a lease table operation.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// A conditional write lost (another worker owns the lease or its counter
    /// moved), or the lease was given up locally. Not retriable: re-read the
    /// lease first.
    #[error("lease {lease_key} in table {table} lost: {reason}")]
    Lost {
        /// Table name.
        table: String,
        /// The lease (shard id).
        lease_key: String,
        /// Why, e.g. `conditional check failed`.
        reason: String,
    },
    /// The table does not exist (permanent until [`crate::LeaseStore::ensure_table`] runs).
    #[error("lease table {table} does not exist ({operation})")]
    TableMissing {
        /// Table name.
        table: String,
        /// The store operation, e.g. `renew`.
        operation: &'static str,
    },
    /// Throttling, 5xx, timeouts, connection failures: retry later.
    #[error("lease table {table} unavailable during {operation}: {message}")]
    Unavailable {
        /// Table name.
        table: String,
        /// The store operation.
        operation: &'static str,
        /// The backend's message.
        message: String,
        /// The backend error.
        #[source]
        source: BoxError,
    },
    /// The credentials may not use the table.
    #[error("access to lease table {table} denied during {operation}: {message}")]
    AccessDenied {
        /// Table name.
        table: String,
        /// The store operation.
        operation: &'static str,
        /// The backend's message.
        message: String,
        /// The backend error.
        #[source]
        source: BoxError,
    },
    /// The backend rejected the request as invalid.
    #[error("lease table {table} rejected {operation}: {message}")]
    Validation {
        /// Table name.
        table: String,
        /// The store operation.
        operation: &'static str,
        /// The backend's message.
        message: String,
        /// The backend error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// A stored row cannot be read as a lease.
    #[error("lease {lease_key} in table {table} is corrupt: attribute {attribute}: {reason}")]
    Corrupt {
        /// Table name.
        table: String,
        /// The lease (shard id), or `?` when the key itself is missing.
        lease_key: String,
        /// The attribute, e.g. `checkpoint`.
        attribute: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Another embedded store (in this or another process) has the table
    /// open in the same state directory.
    #[error("lease table {table}: state directory {path} is in use by another shardline process or pipeline with the same table (lock file {lock_file}): {source}")]
    Locked {
        /// Table name.
        table: String,
        /// The state directory.
        path: PathBuf,
        /// The lock file in it.
        lock_file: PathBuf,
        /// Why the lock was refused.
        #[source]
        source: std::io::Error,
    },
    /// The embedded store could not read or write its file.
    #[error("lease table {table}: i/o error on {path}: {source}")]
    Io {
        /// Table name.
        table: String,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl LeaseError {
    /// Whether retrying the same operation may succeed.
    pub fn kind(&self) -> ErrorKind {
        match self {
            LeaseError::Unavailable { .. } => ErrorKind::Retriable,
            LeaseError::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::PermissionDenied
                | std::io::ErrorKind::NotFound
                | std::io::ErrorKind::InvalidInput
                | std::io::ErrorKind::InvalidData => ErrorKind::Permanent,
                _ => ErrorKind::Retriable,
            },
            LeaseError::Lost { .. }
            | LeaseError::TableMissing { .. }
            | LeaseError::AccessDenied { .. }
            | LeaseError::Validation { .. }
            | LeaseError::Locked { .. }
            | LeaseError::Corrupt { .. } => ErrorKind::Permanent,
        }
    }

    /// True for [`LeaseError::Lost`].
    pub fn is_lost(&self) -> bool {
        matches!(self, LeaseError::Lost { .. })
    }

    /// A [`LeaseError::Lost`] for a failed condition.
    pub(crate) fn lost(table: &str, lease_key: &str, reason: impl Into<String>) -> Self {
        LeaseError::Lost {
            table: table.to_owned(),
            lease_key: lease_key.to_owned(),
            reason: reason.into(),
        }
    }
}
