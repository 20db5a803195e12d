//! The classification every error that crosses a retry loop carries.

/// Whether trying the same operation again can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Throttling, 5xx, timeouts, connection failures, expired iterators:
    /// back off and try again.
    Retriable,
    /// Validation errors, access denied, missing resources, malformed data:
    /// trying again gives the same answer.
    Permanent,
}

impl ErrorKind {
    /// True for [`ErrorKind::Retriable`].
    pub fn is_retriable(self) -> bool {
        matches!(self, ErrorKind::Retriable)
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ErrorKind::Retriable => "retriable",
            ErrorKind::Permanent => "permanent",
        })
    }
}
