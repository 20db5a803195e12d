//! The sink's errors, each with the endpoint it concerns and classified as
//! retriable or permanent before it crosses the engine's retry loop.

use shardline_plugin_sdk::{ErrorKind, SinkError};

use crate::retry::status_kind;

/// What went wrong talking to the cluster.
#[derive(Debug, thiserror::Error)]
pub enum EsError {
    /// No connection, or it broke (refused, reset, DNS, TLS handshake).
    #[error("cannot reach {endpoint} ({what}): {message}")]
    Connect {
        /// The cluster's base URL.
        endpoint: String,
        /// The request, e.g. `POST /_bulk`.
        what: String,
        /// The transport's error, with its causes.
        message: String,
    },
    /// No answer within `request_timeout`.
    #[error("{what} to {endpoint} timed out after {timeout:?}")]
    Timeout {
        /// The cluster's base URL.
        endpoint: String,
        /// The request.
        what: String,
        /// The limit.
        timeout: std::time::Duration,
    },
    /// An HTTP error status for the whole request.
    #[error("{endpoint} answered {status} to {what}: {body}")]
    Status {
        /// The cluster's base URL.
        endpoint: String,
        /// The request.
        what: String,
        /// The HTTP status.
        status: u16,
        /// The start of the answer's body.
        body: String,
    },
    /// The healthcheck's credentials were refused (401/403).
    #[error("{endpoint} refused the credentials ({status}) to GET / (healthcheck): {body}")]
    CredentialsRefused {
        /// The cluster's base URL.
        endpoint: String,
        /// 401 or 403.
        status: u16,
        /// The start of the answer's body.
        body: String,
    },
    /// A 2xx answer that is not what the request should get.
    #[error("unexpected answer from {endpoint} to {what}: {message}")]
    BadAnswer {
        /// The cluster's base URL.
        endpoint: String,
        /// The request.
        what: String,
        /// What is wrong with it.
        message: String,
    },
    /// AWS credentials could not be had or the request not signed.
    #[error("cannot sign the request to {endpoint} with SigV4: {message}")]
    Signing {
        /// The cluster's base URL.
        endpoint: String,
        /// Why.
        message: String,
    },
    /// The HTTP client could not be set up (no CA certificates, say).
    #[error("cannot set up the HTTP client for {endpoint}: {message}")]
    Setup {
        /// The cluster's base URL.
        endpoint: String,
        /// Why.
        message: String,
    },
}

impl EsError {
    /// Retriable or permanent.
    pub fn kind(&self) -> ErrorKind {
        match self {
            EsError::Connect { .. } | EsError::Timeout { .. } | EsError::BadAnswer { .. } | EsError::Signing { .. } => {
                ErrorKind::Retriable
            }
            EsError::Status { status, .. } => status_kind(*status),
            EsError::Setup { .. } | EsError::CredentialsRefused { .. } => ErrorKind::Permanent,
        }
    }
}

impl From<EsError> for SinkError {
    fn from(e: EsError) -> SinkError {
        SinkError { kind: e.kind(), message: e.to_string() }
    }
}

/// An error and its causes on one line.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = cause.source();
    }
    text
}
